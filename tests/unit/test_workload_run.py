"""Runs of `python -m startbench.workload`. With PyTorch on the CPU (marked `framework("torch")`; torch from
hack/ci/setup-20-workload.sh): a valid report with every phase in order, injected failures at a phase, a real
SIGTERM mid-run. Without any framework (the unit tier): bad arguments, --help, a run in an interpreter where no
framework can be imported, and the SIGTERM fallback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from startbench.workload.marks import MARKS
from startbench.workload.perf import formula_flops_per_sample
from startbench.workload.report import MAX_BYTES, parse_report

needs_torch = pytest.mark.framework("torch")

TINY = ["--framework", "pytorch", "--model", "resnet18", "--batch-size", "2", "--shape", "tiny-imagenet",
        "--device", "cpu"]
GPU_FIELDS = ("mfu", "gpu_util_mean", "gpu_util_max", "mem_util_mean", "mem_util_max", "mem_used_max_mib",
              "power_mean_w", "sm_clock_mean_mhz")


def workload(args, tmp_path: Path, env_extra=None, python_args=(), timeout=300):
    env = dict(os.environ, STARTBENCH_REPORT_PATH=str(tmp_path / "termination-log"), OMP_NUM_THREADS="1")
    env.pop("STARTBENCH_WORKLOAD_FAIL_AT", None)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, *python_args, "-m", "startbench.workload", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def last_line(text: str) -> str:
    return text.rstrip("\n").splitlines()[-1]


@needs_torch
def test_pytorch_resnet18_cpu_run_reports_every_phase_in_order(tmp_path):
    t0 = time.time() * 1000
    proc = workload([*TINY, "--steps", "3"], tmp_path)
    t1 = time.time() * 1000
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = last_line(proc.stdout)
    assert (tmp_path / "termination-log").read_text() == line
    assert len(line.encode()) <= MAX_BYTES
    report = parse_report(line)
    assert report["ok"] is True and report["failed_phase"] is None and report["error"] is None
    assert (report["framework"], report["model"]) == ("pytorch", "resnet18")
    assert report["device"]["kind"] == "cpu" and report["device"]["count"] >= 1
    assert report["config"] == {"steps": 3, "batch_size": 2, "precision": "fp32", "image_size": 64, "data": "synthetic"}
    marks = report["marks_ms"]
    assert list(marks) == list(MARKS)
    values = list(marks.values())
    assert values == sorted(values)
    assert t0 - 50 <= marks["process_start"] and marks["steady_end"] <= t1
    # Importing torch takes real time; the first step includes one-off work on top of a step.
    assert marks["framework_imported"] - marks["interpreter_ready"] > 100
    m = report["metrics"]
    assert m["samples_per_s"] > 0 and 0 < m["step_time_p50_ms"] <= m["step_time_p90_ms"]
    # Two timed steps of 2 samples: throughput and step times describe the same window.
    assert m["samples_per_s"] == pytest.approx(2 * 2 / (marks["steady_end"] - marks["first_step"]) * 1000, rel=0.05)
    assert all(m[k] is None for k in GPU_FIELDS), "GPU fields on a CPU run must be null, never zero"
    # torch's own FLOP counter and the formula used for the other frameworks agree exactly.
    assert report["flops"] == {"per_sample": formula_flops_per_sample("resnet18", 64, 200), "source": "counter"}
    assert m["tflops"] == pytest.approx(m["samples_per_s"] * report["flops"]["per_sample"] / 1e12, rel=1e-4)
    assert report["versions"]["torch"]
    stderr_marks = [line.split()[1] for line in proc.stderr.splitlines() if line.startswith("startbench-workload: ")
                    and " at +" in line]
    assert stderr_marks == list(MARKS[1:])


@needs_torch
@pytest.mark.parametrize("fail_at, how", [
    ("framework_imported", "env"),
    ("device_ready", "env"),
    ("steady_end", "flag"),
])
def test_injected_failure_names_the_phase(tmp_path, fail_at, how):
    args = [*TINY, "--steps", "2"] + (["--fail-at", fail_at] if how == "flag" else [])
    env = {"STARTBENCH_WORKLOAD_FAIL_AT": fail_at} if how == "env" else None
    proc = workload(args, tmp_path, env)
    assert proc.returncode == 1
    report = parse_report(last_line(proc.stdout))
    assert (tmp_path / "termination-log").read_text() == last_line(proc.stdout)
    assert report["ok"] is False and report["failed_phase"] == fail_at
    assert "InjectedFailure" in report["error"] and fail_at in report["error"]
    reached = list(MARKS[:MARKS.index(fail_at)])
    assert list(report["marks_ms"]) == reached


def _wait_for_line(stream, needle: str, timeout: float) -> list[str]:
    seen: list[str] = []
    done = threading.Event()

    def read():
        for line in stream:
            seen.append(line)
            if needle in line:
                done.set()
                return
        done.set()

    threading.Thread(target=read, daemon=True).start()
    done.wait(timeout)
    return seen


@needs_torch
@pytest.mark.parametrize("after_line, expected_phase", [
    ("first_step at +", "steady_end"),             # killed while training
    ("interpreter_ready at +", "framework_imported"),  # killed while `import torch` runs
])
def test_sigterm_mid_run_writes_a_report_naming_the_phase(tmp_path, after_line, expected_phase):
    env = dict(os.environ, STARTBENCH_REPORT_PATH=str(tmp_path / "termination-log"), OMP_NUM_THREADS="1")
    env.pop("STARTBENCH_WORKLOAD_FAIL_AT", None)
    proc = subprocess.Popen([sys.executable, "-m", "startbench.workload", *TINY, "--steps", "100000"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        seen = _wait_for_line(proc.stderr, after_line, timeout=240)
        assert any(after_line in line for line in seen), "".join(seen)[-2000:]
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signal.SIGTERM
    report = parse_report(last_line(out))
    assert (tmp_path / "termination-log").read_text() == last_line(out)
    assert report["ok"] is False and report["failed_phase"] == expected_phase
    assert "SIGTERM" in report["error"]
    assert expected_phase not in report["marks_ms"]


def test_invalid_arguments_still_produce_a_report(tmp_path):
    proc = workload(["--framework", "pytorch", "--model", "vgg16"], tmp_path)
    assert proc.returncode == 1
    report = parse_report(last_line(proc.stdout))
    assert report["failed_phase"] == "framework_imported"
    assert report["model"] == "vgg16" and "invalid arguments" in report["error"] and "vgg16" in report["error"]
    proc = workload([*TINY, "--steps", "1"], tmp_path)
    assert proc.returncode == 1 and "at least 2" in parse_report(last_line(proc.stdout))["error"]
    proc = workload(["--framework", "pytorch"], tmp_path, {"STARTBENCH_WORKLOAD_FAIL_AT": "compile"})
    assert proc.returncode == 1 and "compile" in parse_report(last_line(proc.stdout))["error"]


def test_help_exits_cleanly_without_a_report(tmp_path):
    proc = workload(["--help"], tmp_path)
    assert proc.returncode == 0 and "--framework" in proc.stdout
    assert not (tmp_path / "termination-log").exists()


def test_missing_framework_is_a_report_not_a_traceback(tmp_path):
    """In an image without the framework the workload still starts (it imports none before its first
    timestamps) and reports the import as the failed phase."""
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text(
        "import importlib.abc, sys\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in {'torch', 'torchvision', 'numpy'}:\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, Block())\n")
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    proc = workload([*TINY, "--steps", "2"], tmp_path, env)
    assert proc.returncode == 1, proc.stderr[-2000:]
    report = parse_report(last_line(proc.stdout))
    assert report["failed_phase"] == "framework_imported"
    assert "ModuleNotFoundError" in report["error"] and "torch" in report["error"]
    assert list(report["marks_ms"]) == ["process_start", "interpreter_ready"]


def test_sigterm_is_never_swallowed_even_without_the_watcher_thread(tmp_path):
    """The Python-level handler is the fallback when the wakeup-socket thread is gone."""
    code = r"""
import os, signal, sys, time
from startbench.workload.marks import Marks
from startbench.workload.runner import Run, _watch_sigterm
marks = Marks()
marks.mark("interpreter_ready")
run = Run(marks, "jax", "alexnet")
_watch_sigterm(run)
reader, writer = run.wakeup_sockets
signal.set_wakeup_fd(-1)
writer.close()                      # the watcher reads end-of-file and returns
for _ in range(100):
    if not [t for t in __import__("threading").enumerate() if t.name == "startbench-sigterm"]:
        break
    time.sleep(0.05)
os.kill(os.getpid(), signal.SIGTERM)
time.sleep(10)
print("SIGTERM was swallowed")
"""
    env = dict(os.environ, STARTBENCH_REPORT_PATH=str(tmp_path / "termination-log"))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, proc.stdout + proc.stderr
    report = parse_report(last_line(proc.stdout))
    assert report["failed_phase"] == "framework_imported" and "SIGTERM" in report["error"]
