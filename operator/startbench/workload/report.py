"""The in-pod report (docs/contracts.md): build, encode, write, parse and validate. Standard library only:
it runs in framework images without jsonschema and in the operator, which imports it to read reports.

Validation uses jsonschema when it is importable and otherwise a small built-in validator that covers
exactly the keywords report.schema.json uses (a unit test keeps the two in step); cross-field rules
that JSON Schema cannot say (mark order, failed_phase = first absent mark) are checked here in both cases.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from startbench.workload.marks import MARKS, check_marks, next_mark

SCHEMA_ID = "startbench.dev/workload-report/v1"
SCHEMA_PATH = Path(__file__).with_name("report.schema.json")
MAX_BYTES = 4096          # Kubernetes keeps at most 4096 bytes of a termination message
MAX_ERROR_CHARS = 500
DEFAULT_REPORT_PATH = "/dev/termination-log"
METRIC_KEYS: tuple[str, ...] = (
    "samples_per_s", "step_time_p50_ms", "step_time_p90_ms", "tflops", "mfu", "gpu_util_mean", "gpu_util_max",
    "mem_util_mean", "mem_util_max", "mem_used_max_mib", "power_mean_w", "sm_clock_mean_mhz",
)
# Optional metrics: in the report only when the run measured them (a GPU run).
OPTIONAL_METRIC_KEYS: tuple[str, ...] = ("framework_mem_peak_mib",)
CONFIG_KEYS: tuple[str, ...] = ("steps", "batch_size", "precision", "image_size", "data")
# Optional notes, a sentence each, saying what a number does or does not mean on this run.
NOTE_KEYS: tuple[str, ...] = ("gpus", "mfu", "memory", "sampler")
MAX_NOTE_CHARS = 200

_schema_cache: dict[str, Any] = {}


class ReportError(ValueError):
    """A text that is not a valid workload report; `reason` says what is wrong and where."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def load_schema() -> dict[str, Any]:
    if "schema" not in _schema_cache:
        _schema_cache["schema"] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return _schema_cache["schema"]


def truncate(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """`text` cut to at most `limit` characters, the cut marked with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _clean_number(value: Any) -> float | int | None:
    """A JSON-safe metric: None stays None; NaN and infinities (not measured properly) become None."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError(f"metric value must be a number or None, got {value!r}")
    if isinstance(value, int):
        return value
    value = float(value)
    return round(value, 6) if math.isfinite(value) else None


def build_report(*, framework: str, model: str, marks_ms: Mapping[str, float],
                 device: Mapping[str, Any] | None = None, config: Mapping[str, Any] | None = None,
                 metrics: Mapping[str, Any] | None = None, error: str | None = None,
                 flops: Mapping[str, Any] | None = None, versions: Mapping[str, str] | None = None,
                 notes: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A report dict. `ok` and `failed_phase` follow from the marks: a run is ok when every mark after
    process_start is present and no error was given; otherwise failed_phase is the first absent mark
    (steady_end when all are present but an error still occurred) and `error` says why.

    Optional parts appear only when given: device `uuid` and `mig` (the NVML device sampled), the metrics of
    OPTIONAL_METRIC_KEYS present in `metrics`, `flops`, `versions`, and `notes` (keys NOTE_KEYS)."""
    marks = {name: round(float(marks_ms[name]), 3) for name in MARKS if name in marks_ms}
    unknown = sorted(set(marks_ms) - set(MARKS))
    if unknown:
        raise ValueError(f"unknown marks {unknown}: marks are {', '.join(MARKS)}")
    missing = next_mark(marks)
    ok = missing is None and not error
    failed = None if ok else (missing or MARKS[-1])
    if not ok and not error:
        error = f"the run ended before mark {failed!r} without an error message"
    dev = dict(device or {})
    name = dev.get("name")
    device_doc: dict[str, Any] = {"kind": dev.get("kind"), "name": truncate(str(name), 128) if name else None,
                                  "count": dev.get("count")}
    if dev.get("uuid"):
        device_doc["uuid"] = truncate(str(dev["uuid"]), 96)
    if dev.get("mig") is not None:
        mig = dev["mig"]
        device_doc["mig"] = {"slices": mig.get("slices"), "sms": mig.get("sms"),
                             "share": _clean_number(mig.get("share"))}
    doc: dict[str, Any] = {
        "schema": SCHEMA_ID,
        "ok": ok,
        "failed_phase": failed,
        "error": truncate(str(error)) if error else None,
        "framework": truncate(str(framework), 32),
        "model": truncate(str(model), 32),
        "device": device_doc,
        "config": {key: (config or {}).get(key) for key in CONFIG_KEYS},
        "marks_ms": marks,
        "metrics": {key: _clean_number((metrics or {}).get(key)) for key in METRIC_KEYS},
    }
    for key in OPTIONAL_METRIC_KEYS:
        if key in (metrics or {}):
            doc["metrics"][key] = _clean_number(metrics[key])
    if flops is not None and flops.get("per_sample"):
        doc["flops"] = {"per_sample": float(flops["per_sample"]), "source": flops["source"]}
    if versions:
        doc["versions"] = {str(k)[:24]: truncate(str(v), 48) for k, v in list(versions.items())[:6]}
    if notes:
        unknown_notes = sorted(set(notes) - set(NOTE_KEYS))
        if unknown_notes:
            raise ValueError(f"unknown notes {unknown_notes}: notes are {', '.join(NOTE_KEYS)}")
        doc["notes"] = {key: truncate(str(notes[key]), MAX_NOTE_CHARS) for key in NOTE_KEYS if notes.get(key)}
    return doc


def encode_report(doc: Mapping[str, Any]) -> str:
    """Compact one-line JSON, at most MAX_BYTES bytes in UTF-8 (the error text is shortened if needed)."""
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    if len(text.encode()) > MAX_BYTES and doc.get("error"):
        over = len(text.encode()) - MAX_BYTES
        doc = dict(doc, error=truncate(doc["error"], max(1, len(doc["error"]) - over - 8)))
        text = json.dumps(doc, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    if len(text.encode()) > MAX_BYTES:
        raise ValueError(f"report is {len(text.encode())} bytes, over the {MAX_BYTES}-byte termination message limit")
    return text


def write_report(doc: Mapping[str, Any], path: str | None = None, stream=None) -> str:
    """Write the report to `path` (default: env STARTBENCH_REPORT_PATH, else /dev/termination-log) and print
    it as the last line of `stream` (stdout). An unwritable path is logged to stderr and skipped, so a run
    outside Kubernetes still prints its report. Returns the encoded text."""
    text = encode_report(doc)
    target = path or os.environ.get("STARTBENCH_REPORT_PATH") or DEFAULT_REPORT_PATH
    try:
        with open(target, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        print(f"startbench-workload: report not written to {target} ({exc.strerror or exc}); "
              "set STARTBENCH_REPORT_PATH to a writable file to keep it", file=sys.stderr, flush=True)
    out = stream or sys.stdout
    out.write(text + "\n")
    out.flush()
    return text


# ---------------------------------------------------------------------------------------------------------
# Parsing and validation


def _find_json(text: str) -> Any:
    stripped = text.strip()
    if not stripped:
        raise ReportError("empty text: no workload report (did the container exit before writing one?)")
    try:
        return json.loads(stripped)
    except json.JSONDecodeError:
        pass
    for line in reversed(stripped.splitlines()):
        line = line.strip()
        # A kubelet or Docker log line may carry a timestamp prefix: take from the first brace.
        start = line.find("{")
        if start < 0 or not line.endswith("}"):
            continue
        try:
            doc = json.loads(line[start:])
        except json.JSONDecodeError:
            continue
        if isinstance(doc, dict) and "schema" in doc:
            return doc
    raise ReportError("no JSON report found: expected the report as the whole text or as a line of the log "
                      f"(first characters: {stripped[:80]!r})")


_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    # JSON Schema: an integer is any number with a zero fractional part (1.0 included).
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
}
# Keywords the built-in validator enforces; keywords that only annotate are listed so that a schema
# using anything else is caught by the unit test instead of being silently ignored.
BUILTIN_KEYWORDS = frozenset({
    "type", "const", "enum", "properties", "required", "additionalProperties", "minimum", "maximum",
    "minLength", "maxLength", "maxProperties",
})
ANNOTATION_KEYWORDS = frozenset({"$schema", "$id", "title", "description"})


def builtin_errors(value: Any, schema: Mapping[str, Any], path: str = "$") -> list[str]:
    """Errors of `value` against `schema`, using only BUILTIN_KEYWORDS. Each error names the JSON path."""
    errors: list[str] = []
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_TYPES[t](value) for t in types):
            return [f"{path}: expected {' or '.join(types)}, got {type(value).__name__} {value!r:.60}"]
    if "const" in schema and value != schema["const"]:
        errors.append(f"{path}: must be {schema['const']!r}, got {value!r:.60}")
    if "enum" in schema and not any(value == e and type(value) is type(e) for e in schema["enum"]):
        errors.append(f"{path}: must be one of {schema['enum']}, got {value!r:.60}")
    if _TYPES["number"](value):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{path}: must be >= {schema['minimum']}, got {value}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{path}: must be <= {schema['maximum']}, got {value}")
    if isinstance(value, str):
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(f"{path}: longer than {schema['maxLength']} characters ({len(value)})")
        if "minLength" in schema and len(value) < schema["minLength"]:
            errors.append(f"{path}: shorter than {schema['minLength']} characters")
    if isinstance(value, dict):
        for key in schema.get("required", ()):
            if key not in value:
                errors.append(f"{path}: required field {key!r} is missing")
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            errors.append(f"{path}: more than {schema['maxProperties']} fields")
        for key, sub in value.items():
            if key in props:
                errors.extend(builtin_errors(sub, props[key], f"{path}.{key}"))
            elif extra is False:
                errors.append(f"{path}: unexpected field {key!r}")
            elif isinstance(extra, dict):
                errors.extend(builtin_errors(sub, extra, f"{path}.{key}"))
    return errors


def _jsonschema_errors(doc: Any, schema: Mapping[str, Any]) -> list[str] | None:
    try:
        import jsonschema  # optional: the operator has it, framework images need not
    except ImportError:
        return None
    validator = jsonschema.Draft202012Validator(schema)
    return [f"$.{'.'.join(str(p) for p in e.absolute_path)}: {e.message}".replace("$.:", "$:")
            for e in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))]


def semantic_errors(doc: Mapping[str, Any]) -> list[str]:
    """Cross-field rules of the contract that the schema cannot express."""
    errors = [f"$.marks_ms: {p}" for p in check_marks(doc["marks_ms"])]
    missing = next_mark(doc["marks_ms"])
    if doc["ok"]:
        if missing is not None:
            errors.append(f"$.ok is true but mark {missing!r} is absent")
        if doc["failed_phase"] is not None or doc["error"] is not None:
            errors.append("$.ok is true but failed_phase or error is set")
    else:
        if doc["failed_phase"] is None:
            errors.append("$.ok is false but failed_phase is null: it must name the first mark not reached")
        elif doc["failed_phase"] != (missing or MARKS[-1]):
            errors.append(f"$.failed_phase is {doc['failed_phase']!r} but the first absent mark is {missing!r}")
        if not doc["error"]:
            errors.append("$.ok is false but error is empty: it must say why the run failed")
    return errors


def validate_report(doc: Any, use_jsonschema: bool | None = None) -> list[str]:
    """All problems with `doc` (empty when valid). use_jsonschema: None = when importable, False = built-in only."""
    schema = load_schema()
    errors = _jsonschema_errors(doc, schema) if use_jsonschema is not False else None
    if errors is None:
        if use_jsonschema:
            raise ImportError("jsonschema is not installed: pip install jsonschema, or validate with use_jsonschema=None")
        errors = builtin_errors(doc, schema)
    if errors:
        return errors
    return semantic_errors(doc)


def parse_report(text: str) -> dict[str, Any]:
    """Parse and validate a report given as the whole text or as the last JSON line of a log.
    Raises ReportError with every problem found."""
    if not isinstance(text, str):
        raise ReportError(f"expected the report as text, got {type(text).__name__}")
    doc = _find_json(text)
    if not isinstance(doc, dict):
        raise ReportError(f"report must be a JSON object, got {type(doc).__name__}")
    if doc.get("schema") != SCHEMA_ID:
        raise ReportError(f"report field 'schema' is {doc.get('schema')!r}; this startbench reads {SCHEMA_ID!r}")
    errors = validate_report(doc)
    if errors:
        raise ReportError("invalid workload report: " + "; ".join(errors[:8]))
    return doc
