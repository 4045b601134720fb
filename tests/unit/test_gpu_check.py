"""bench/gpu_check.py's plan, deadline and summary, without running anything (the script itself runs on the
CPU in tests/slow/test_gpu_check_cpu.py, and on a GPU only by hand: docs/workload.md)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

PATH = Path(__file__).resolve().parents[2] / "bench" / "gpu_check.py"
spec = importlib.util.spec_from_file_location("gpu_check", PATH)
gc = importlib.util.module_from_spec(spec)
sys.modules.setdefault("gpu_check", gc)  # dataclasses look their module up
spec.loader.exec_module(gc)


def test_the_gpu_plan_is_the_issues_matrix_each_with_and_without_the_sampler():
    runs = gc.plan("gpu")
    configs = {r.config for r in runs}
    assert {(c.framework, c.model, c.precision, c.batch_size) for c in configs} == (
        {(fw, "resnet50", p, b) for fw in ("pytorch", "jax") for p in ("bf16", "fp32") for b in (64, 256)}
        | {(fw, m, "bf16", 256) for fw in ("pytorch", "jax") for m in ("resnet18", "alexnet")})
    assert len(runs) == 2 * len(configs) == 24
    for on, off in zip(runs[::2], runs[1::2]):  # each configuration: the sampler run, then at once without it
        assert on.config == off.config and on.sampler and not off.sampler
    assert runs[0].config == gc.Config("pytorch", "resnet50", "bf16", 256)
    assert "--no-gpu-sampler" in gc.workload_argv(runs[1], "gpu") and "--no-gpu-sampler" not in gc.workload_argv(
        runs[0], "gpu")
    assert gc.workload_argv(runs[0], "gpu")[-6:] == ["--steps", "30", "--shape", "imagenet", "--device", "gpu"]


def test_the_cpu_plan_is_the_same_plan_with_tiny_settings():
    gpu, cpu = gc.plan("gpu"), gc.plan("cpu")
    assert [(r.config.framework, r.config.model, r.config.precision, r.sampler) for r in gpu] == \
           [(r.config.framework, r.config.model, r.config.precision, r.sampler) for r in cpu]
    argv = gc.workload_argv(cpu[0], "cpu")
    assert argv[argv.index("--shape") + 1] == "tiny-imagenet" and argv[argv.index("--device") + 1] == "cpu"
    assert {r.config.batch_size for r in cpu} == {2, 4}


def test_only_and_limit_keep_configurations():
    assert {r.config.model for r in gc.plan("cpu", only="resnet18")} == {"resnet18"}
    assert len(gc.plan("gpu", only="pytorch-alexnet,jax-resnet18")) == 4
    assert len(gc.plan("gpu", limit=1)) == 2


def test_a_run_expected_to_end_past_the_deadline_is_not_started():
    run = gc.plan("gpu")[2]  # JAX, cold
    assert gc.estimate_s(run, "gpu", {}) == gc.DEFAULT_ESTIMATES_S["gpu"][("jax", "cold")]
    assert gc.estimate_s(run, "gpu", {("jax", "cold"): 140.0}) == 140.0  # the longest seen so far
    assert gc.fits(100.0, 90.0, 330.0) and not gc.fits(250.0, 90.0, 330.0)


def report(sps, sampler_metrics=True):
    return {"ok": True, "error": None, "marks_ms": {"process_start": 0.0, "interpreter_ready": 50.0,
                                                     "framework_imported": 3000.0, "device_ready": 4000.0,
                                                     "model_built": 5000.0, "data_ready": 5100.0,
                                                     "first_step": 20000.0, "steady_end": 30000.0},
            "metrics": {"samples_per_s": sps, "step_time_p50_ms": 256000 / sps, "tflops": 60.0, "mfu": 0.06,
                        "gpu_util_mean": 98.0 if sampler_metrics else None},
            "device": {"kind": "gpu", "name": "NVIDIA H200", "count": 1}, "notes": {"sampler": "x"},
            "versions": {"torch": "2.11"}}


def test_summary_lines_and_the_sampler_ratio():
    runs = gc.plan("gpu", only="pytorch-resnet50-bf16-b256,jax-resnet50-bf16-b256")
    lines = [gc.summarize_run(runs[0], report(2000.0), 21.0, None),
             gc.summarize_run(runs[1], report(2040.0, False), 19.5, None),
             gc.summarize_run(runs[2], report(3000.0), 80.0, None),
             gc.summarize_run(runs[3], None, 180.0, "stopped after 180 s (SIGTERM)")]
    first = lines[0]
    assert first["ok"] and first["sampler"] and first["metrics"]["gpu_util_mean"] == 98.0
    assert first["phases_ms"] == {"interpreter": 50.0, "imports": 2950.0, "device_init": 1000.0, "model_build": 1000.0,
                                  "data": 100.0, "first_step": 14900.0, "process_to_first_step": 20000.0}
    assert not lines[3]["ok"] and "SIGTERM" in lines[3]["error"]
    over = gc.sampler_overhead(lines)
    assert over["pairs"] == 1 and over["per_config"]["pytorch-resnet50-bf16-b256"]["throughput_on_over_off"] == \
        pytest.approx(2000 / 2040, abs=1e-4)
    assert over["median_throughput_on_over_off"] == pytest.approx(2000 / 2040, abs=1e-4)
