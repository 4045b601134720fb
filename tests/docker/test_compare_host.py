"""`startbench compare-host` against the real local Docker engine: the JAX slim CPU image is built from this
checkout's dockerfiles/ (so the container runs this checkout's workload), then the workload runs on the host
and in the container, interleaved, and the overhead table comes out of real reports on both sides."""

from __future__ import annotations

import json

import pytest

from startbench.cli import main as cli
from startbench.workload.report import parse_report

# The host side of compare-host runs the JAX workload in this interpreter.
pytestmark = [pytest.mark.docker, pytest.mark.framework("jax")]


ARGS = ["--framework", "jax", "--model", "resnet18", "--steps", "3", "--batch-size", "2", "--shape", "tiny-imagenet",
        "--device", "cpu"]


def test_compare_host_runs_both_sides_interleaved_and_prints_overhead(jax_image, docker_host, tmp_path, monkeypatch,
                                                                      capsys):
    monkeypatch.setenv("DOCKER_HOST", docker_host)
    out_json = tmp_path / "compare.json"
    rc = cli.main(["compare-host", *ARGS, "--image", jax_image, "--repeats", "2", "--warmup", "0",
                   "--json", str(out_json)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err[-3000:]
    data = json.loads(out_json.read_text())
    assert len(data["host"]) == 2 and len(data["container"]) == 2
    for report in data["host"] + data["container"]:
        assert parse_report(json.dumps(report))["ok"]
        assert report["framework"] == "jax" and report["device"]["kind"] == "cpu"
    # The container's interpreter is the image's, not the host's: the two sides really differ.
    assert {r["versions"]["python"] for r in data["container"]} and data["container"][0]["marks_ms"] != data["host"][0]["marks_ms"]
    rows = {row["metric"]: row for row in data["rows"]}
    assert {"samples_per_s", "step_time_p50_ms", "imports_ms", "first_step_ms"} <= set(rows)
    assert "gpu_util_mean" not in rows  # a CPU run measures no GPU: nothing to compare, nothing invented
    for row in rows.values():
        assert row["n"] == 2 and row["low_pct"] <= row["overhead_pct"] <= row["high_pct"]
    table = captured.out.splitlines()
    assert any(line.startswith("samples_per_s (1/s)") for line in table)
    # Interleaving: pair 1 runs the host first, pair 2 the container first.
    order = [line.rsplit(": ", 1)[1] for line in captured.err.splitlines() if "compare-host: pair" in line]
    assert order == ["host", "container", "container", "host"]


def test_compare_host_names_a_missing_image(docker_host, monkeypatch, capsys):
    monkeypatch.setenv("DOCKER_HOST", docker_host)
    rc = cli.main(["compare-host", *ARGS, "--image", "127.0.0.1:5000/startbench-nope:absent", "--repeats", "1"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "127.0.0.1:5000/startbench-nope:absent" in err and "--image" in err


def test_compare_host_reports_a_failing_container_side(jax_image, docker_host, monkeypatch, capsys):
    monkeypatch.setenv("DOCKER_HOST", docker_host)
    rc = cli.main(["compare-host", "--framework", "jax", "--model", "resnet18", "--image", jax_image,
                   "--repeats", "1", "--warmup", "0", "--steps", "2", "--batch-size", "0"])
    err = capsys.readouterr().err
    assert rc == 1 and "failed before framework_imported" in err and "--batch-size 0" in err
