"""The in-pod report: building, encoding under 4 KB, tolerant parsing, schema and cross-field validation."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from startbench.workload import report as rp
from startbench.workload.marks import MARKS

T0 = 1_764_000_000_000.0


def marks_upto(last: str | None, step: float = 100.0) -> dict[str, float]:
    """Marks from process_start through `last` inclusive (None: none after process_start)."""
    out = {"process_start": T0}
    for i, name in enumerate(MARKS[1:], start=1):
        if last is None:
            break
        out[name] = T0 + i * step
        if name == last:
            break
    return out


def ok_report(**overrides):
    kwargs = dict(framework="pytorch", model="resnet18", marks_ms=marks_upto("steady_end"),
                  device={"kind": "gpu", "name": "NVIDIA H100 80GB HBM3", "count": 1},
                  config={"steps": 15, "batch_size": 32, "precision": "fp32", "image_size": 224, "data": "synthetic"},
                  metrics={"samples_per_s": 1234.5, "step_time_p50_ms": 25.9, "step_time_p90_ms": 27.0,
                           "tflops": 13.4, "mfu": 0.0135, "gpu_util_mean": 97.5, "gpu_util_max": 100,
                           "mem_util_mean": 40.0, "mem_util_max": 55.0, "mem_used_max_mib": 12000.0,
                           "power_mean_w": 610.0, "sm_clock_mean_mhz": 1980.0},
                  flops={"per_sample": 1.09e10, "source": "counter"}, versions={"python": "3.11.7", "torch": "2.5.1"})
    kwargs.update(overrides)
    return rp.build_report(**kwargs)


def test_ok_report_round_trips_through_text_with_either_validator():
    doc = ok_report()
    assert doc["ok"] is True and doc["failed_phase"] is None and doc["error"] is None
    text = rp.encode_report(doc)
    assert "\n" not in text
    assert rp.parse_report(text) == doc
    assert rp.validate_report(doc, use_jsonschema=False) == []
    assert rp.validate_report(doc, use_jsonschema=True) == []


def test_contract_example_keys_are_exactly_the_report_keys():
    doc = ok_report()
    assert list(doc["marks_ms"]) == list(MARKS)
    assert set(doc["metrics"]) == set(rp.METRIC_KEYS)
    assert set(doc["config"]) == {"steps", "batch_size", "precision", "image_size", "data"}
    assert set(doc) == {"schema", "ok", "failed_phase", "error", "framework", "model", "device", "config",
                        "marks_ms", "metrics", "flops", "versions"}
    assert doc["schema"] == "startbench.dev/workload-report/v1"


@pytest.mark.parametrize("last", MARKS[1:-1])
def test_failure_names_the_first_mark_not_reached(last):
    doc = ok_report(marks_ms=marks_upto(last), error="RuntimeError: boom", metrics=None)
    expected = MARKS[MARKS.index(last) + 1]
    assert doc["ok"] is False
    assert doc["failed_phase"] == expected
    assert rp.parse_report(rp.encode_report(doc))["failed_phase"] == expected


def test_failure_before_any_phase_names_interpreter_ready_and_gpu_fields_are_null():
    doc = rp.build_report(framework="jax", model="alexnet", marks_ms={}, error="killed")
    assert doc["failed_phase"] == "interpreter_ready"
    assert doc["device"] == {"kind": None, "name": None, "count": None}
    assert all(v is None for v in doc["metrics"].values())
    rp.parse_report(rp.encode_report(doc))


def test_all_marks_but_an_error_fails_at_the_last_mark():
    doc = ok_report(error="FLOP counter crashed")
    assert doc["ok"] is False and doc["failed_phase"] == "steady_end"


def test_missing_marks_without_error_still_explains_itself():
    doc = ok_report(marks_ms=marks_upto("model_built"))
    assert doc["ok"] is False and doc["failed_phase"] == "data_ready"
    assert "data_ready" in doc["error"]


def test_nan_and_infinite_metrics_become_null_never_zero():
    doc = ok_report(metrics={"samples_per_s": float("nan"), "tflops": float("inf"), "mfu": None})
    assert doc["metrics"]["samples_per_s"] is None
    assert doc["metrics"]["tflops"] is None
    assert doc["metrics"]["gpu_util_mean"] is None
    json.loads(rp.encode_report(doc))


def test_unknown_mark_is_refused_when_building():
    with pytest.raises(ValueError, match="unknown marks"):
        rp.build_report(framework="pytorch", model="resnet18", marks_ms={"bogus": 1.0})


def test_report_stays_under_4_kib_with_huge_error_and_long_names():
    doc = ok_report(error="x" * 100_000, device={"kind": "gpu", "name": "N" * 1000, "count": 8},
                    framework="f" * 200, model="m" * 200, marks_ms=marks_upto("first_step"),
                    versions={f"k{i}": "v" * 300 for i in range(20)})
    text = rp.encode_report(doc)
    assert len(text.encode()) <= rp.MAX_BYTES
    parsed = rp.parse_report(text)
    assert len(parsed["error"]) <= rp.MAX_ERROR_CHARS
    assert parsed["error"].endswith("\u2026")


def test_parse_finds_the_last_report_line_of_a_log_with_noise_and_timestamps():
    first = rp.encode_report(ok_report(model="alexnet"))
    last = rp.encode_report(ok_report(model="resnet50"))
    log = "\n".join([
        "2026-01-01T00:00:00.000Z Epoch 1 ...", first, '{"not": "a report"}', "warning: something",
        "2026-01-01T00:00:05.123456789Z " + last, "I0000 some framework shutdown chatter", "",
    ])
    assert rp.parse_report(log)["model"] == "resnet50"


@pytest.mark.parametrize("text, fragment", [
    ("", "empty text"),
    ("   \n  ", "empty text"),
    ("Traceback (most recent call last):\n  boom", "no JSON report found"),
    ("[1, 2]", "must be a JSON object"),
    ('{"schema": "startbench.dev/workload-report/v0"}', "this startbench reads"),
])
def test_parse_rejects_non_reports_with_a_reason(text, fragment):
    with pytest.raises(rp.ReportError) as exc:
        rp.parse_report(text)
    assert fragment in exc.value.reason


def _mutations():
    def drop(key):
        return lambda d: d.pop(key)

    def setter(path, value):
        def f(d):
            target = d
            for k in path[:-1]:
                target = target[k]
            target[path[-1]] = value
        return f

    return {
        "missing metrics": (drop("metrics"), "metrics"),
        "ok is a string": (setter(["ok"], "true"), "ok"),
        "extra top-level field": (setter(["surprise"], 1), "surprise"),
        "extra metric": (setter(["metrics", "gpu_temp"], 50), "gpu_temp"),
        "negative throughput": (setter(["metrics", "samples_per_s"], -1.0), "samples_per_s"),
        "utilisation over 100": (setter(["metrics", "gpu_util_max"], 101.0), "gpu_util_max"),
        "bool as number": (setter(["metrics", "tflops"], True), "tflops"),
        "device kind unknown": (setter(["device", "kind"], "tpu"), "kind"),
        "precision unknown": (setter(["config", "precision"], "fp8"), "precision"),
        "one step only": (setter(["config", "steps"], 1), "steps"),
        "error too long": (setter(["error"], "e" * 501), "error"),
        "failed phase unknown": (setter(["failed_phase"], "compiling"), "failed_phase"),
        "flops source unknown": (setter(["flops", "source"], "guess"), "source"),
        "mark is a string": (setter(["marks_ms", "model_built"], "soon"), "model_built"),
        "unknown mark": (setter(["marks_ms", "warmup"], T0), "warmup"),
    }


@pytest.mark.parametrize("name", sorted(_mutations()))
@pytest.mark.parametrize("use_jsonschema", [False, True])
def test_schema_violations_are_reported_by_both_validators(name, use_jsonschema):
    mutate, field = _mutations()[name]
    doc = copy.deepcopy(ok_report())
    mutate(doc)
    errors = rp.validate_report(doc, use_jsonschema=use_jsonschema)
    assert errors, f"{name}: no error"
    assert any(field in e for e in errors), errors


@pytest.mark.parametrize("mutate, fragment", [
    (lambda d: d["marks_ms"].pop("model_built"), "absent"),
    (lambda d: d["marks_ms"].__setitem__("device_ready", T0 - 5), "earlier than"),
    (lambda d: d.update(ok=False, failed_phase=None, error="x"), "failed_phase is null"),
    (lambda d: d.update(ok=False, failed_phase="device_ready", error="x"), "first absent mark"),
    (lambda d: d.update(ok=False, failed_phase="steady_end", error=None), "error is empty"),
    (lambda d: d.update(error="leftover"), "ok is true but"),
])
def test_cross_field_rules(mutate, fragment):
    doc = copy.deepcopy(ok_report())
    mutate(doc)
    with pytest.raises(rp.ReportError) as exc:
        rp.parse_report(json.dumps(doc))
    assert fragment in exc.value.reason


def test_builtin_validator_knows_every_keyword_the_schema_uses():
    seen = set()

    def walk(node, in_properties=False):
        if isinstance(node, dict):
            if not in_properties:
                seen.update(node)
            for key, value in node.items():
                walk(value, in_properties=(key == "properties" and not in_properties))
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(rp.load_schema())
    assert seen <= rp.BUILTIN_KEYWORDS | rp.ANNOTATION_KEYWORDS, seen - rp.BUILTIN_KEYWORDS - rp.ANNOTATION_KEYWORDS


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 200) | st.floats(-5, 200, allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6)
_paths = st.sampled_from([
    (), ("ok",), ("error",), ("failed_phase",), ("device",), ("device", "count"), ("device", "kind"),
    ("config", "steps"), ("config", "data"), ("marks_ms",), ("marks_ms", "first_step"), ("metrics", "mfu"),
    ("metrics", "gpu_util_mean"), ("flops",), ("versions",), ("versions", "torch"), ("framework",),
    ("device", "uuid"), ("device", "mig"), ("notes",), ("metrics", "framework_mem_peak_mib"),
])


@settings(max_examples=300, deadline=None)
@given(path=_paths, value=_json_values)
def test_builtin_and_jsonschema_agree_on_random_field_values(path, value):
    doc = copy.deepcopy(ok_report())
    if path:
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    else:
        doc = value
    assert bool(rp.builtin_errors(doc, rp.load_schema())) == bool(rp._jsonschema_errors(doc, rp.load_schema()))


def test_write_report_writes_the_file_and_prints_the_last_line(tmp_path, monkeypatch, capsys):
    target = tmp_path / "termination-log"
    monkeypatch.setenv("STARTBENCH_REPORT_PATH", str(target))
    text = rp.write_report(ok_report())
    out = capsys.readouterr().out
    assert out.endswith(text + "\n")
    assert target.read_text() == text


def test_unwritable_report_path_is_logged_and_the_report_still_printed(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("STARTBENCH_REPORT_PATH", str(tmp_path / "no" / "such" / "dir" / "log"))
    text = rp.write_report(ok_report())
    captured = capsys.readouterr()
    assert captured.out.strip().splitlines()[-1] == text
    assert "report not written" in captured.err and "STARTBENCH_REPORT_PATH" in captured.err


def test_workload_modules_import_with_no_framework_and_no_third_party_package():
    """The report is read by the operator and the workload runs in bare framework images: both must import
    without torch, jax, tensorflow, numpy, jsonschema or kubernetes."""
    code = r"""
import importlib.abc, sys
BLOCKED = {"torch", "torchvision", "jax", "flax", "optax", "tensorflow", "keras", "numpy", "jsonschema",
           "kubernetes", "kopf", "docker", "pynvml", "PIL", "yaml"}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"blocked {name}")
sys.meta_path.insert(0, Block())
import startbench.workload.report as rp, startbench.workload.runner, startbench.workload.overhead
import startbench.workload.frameworks, startbench.workload.gpu, startbench.workload.data
for mod in ("pytorch_backend", "jax_backend", "tensorflow_backend"):
    importlib.import_module("startbench.workload.frameworks." + mod)
doc = rp.build_report(framework="pytorch", model="resnet18", marks_ms={"interpreter_ready": 1.0}, error="e")
assert rp.parse_report(rp.encode_report(doc))["failed_phase"] == "framework_imported"
assert rp.validate_report(doc) == []
print("imports-ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "imports-ok"
