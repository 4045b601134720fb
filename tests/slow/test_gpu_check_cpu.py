"""bench/gpu_check.sh --cpu: the device check's own script, run end to end on the CPU with tiny settings, so a
mistake in it shows here and not in a device lease. The GPU run itself is by hand (docs/workload.md)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from startbench.workload.report import parse_report

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.framework("torch", "jax")]


def test_cpu_mode_runs_every_planned_run_and_writes_the_reports_and_the_summary(tmp_path):
    env = dict(os.environ, OUT=str(tmp_path))
    proc = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), "--cpu", "--only", "resnet18"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["schema"] == "startbench.dev/gpu-check/v1" and summary["mode"] == "cpu" and summary["finished"]
    assert summary["date"] and summary["commit"] and summary["command"].startswith("bench/gpu_check.sh --cpu")
    assert summary["machine"]["cpus"] and "nvidia_smi" not in summary["machine"]
    names = [r["name"] for r in summary["runs"]]
    assert names == [f"{fw}-resnet18-bf16-b4-sampler-{s}" for fw in ("pytorch", "jax") for s in ("on", "off")]
    for run in summary["runs"]:
        assert run["ok"], run
        assert run["metrics"]["samples_per_s"] > 0 and run["metrics"]["tflops"] > 0
        assert run["metrics"]["mfu"] is None and run["metrics"]["gpu_util_mean"] is None  # a CPU: null, never 0
        assert run["phases_ms"]["first_step"] > 0 and run["phases_ms"]["process_to_first_step"] > 0
        assert run["elapsed_s"] > 0 and ("--no-gpu-sampler" in run["command"]) == (not run["sampler"])
    assert summary["skipped"] == [] and summary["deadline_reached"] is False
    over = summary["sampler_overhead"]
    assert over["pairs"] == 2 and set(over["per_config"]) == {"pytorch-resnet18-bf16-b4", "jax-resnet18-bf16-b4"}
    lines = (tmp_path / "reports.jsonl").read_text().splitlines()
    assert len(lines) == 4
    for line in lines:
        entry = json.loads(line)
        assert parse_report(json.dumps(entry["report"]))["ok"]
    assert "pytorch-resnet18-bf16-b4-sampler-on:" in proc.stdout and "done: 4 ok" in proc.stdout
    assert (tmp_path / "gpu_check.log").read_text().count("$ ") == 4


def test_a_deadline_leaves_runs_unstarted_and_the_summary_says_so(tmp_path):
    proc = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), "--cpu", "--only", "pytorch-alexnet",
                           "--out", str(tmp_path), "--deadline-s", "5"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={k: v for k, v in os.environ.items() if k != "OUT"})
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["runs"] == [] and summary["deadline_reached"] is True
    assert [s["name"] for s in summary["skipped"]] == ["pytorch-alexnet-bf16-b4-sampler-on",
                                                       "pytorch-alexnet-bf16-b4-sampler-off"]
    assert all(s["reason"].startswith("deadline: ") for s in summary["skipped"])
    assert "not started (deadline near" in proc.stdout and proc.returncode == 1
