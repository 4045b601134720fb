"""compare-host refuses to compare a host and a container that trained on different devices (a GPU host and a
CPU container is what `--device auto` gives when the container is not handed the GPUs). No GPU and no Docker
engine here: the two sides' runs are replaced by reports built with the real report builder."""

from __future__ import annotations

import argparse

import pytest

from startbench.cli import compare_host
from startbench.workload.marks import MARKS
from startbench.workload.report import build_report

H100 = {"kind": "gpu", "name": "NVIDIA H100 80GB HBM3", "count": 1}
CPU = {"kind": "cpu", "name": "AMD EPYC 9454 48-Core Processor", "count": 16}


def report(device):
    return build_report(framework="pytorch", model="resnet18", marks_ms={m: 1e12 + i for i, m in enumerate(MARKS)},
                        device=device, config={"steps": 15, "batch_size": 32, "precision": "fp32",
                                               "image_size": 64, "data": "synthetic"},
                        metrics={"samples_per_s": 100.0})


def parse(*argv):
    parser = argparse.ArgumentParser()
    compare_host.add_parser(parser.add_subparsers())
    return parser.parse_args(["compare-host", "--framework", "pytorch", "--model", "resnet18", "--image", "img",
                              *argv])


@pytest.mark.parametrize("host, container", [(H100, H100), (CPU, CPU)])
def test_same_device_passes(host, container):
    compare_host.check_same_device(report(host), report(container), "auto")


@pytest.mark.parametrize("host, container, requested, fragment", [
    (H100, CPU, "auto", "pass --device gpu"),
    (H100, CPU, "gpu", "NVIDIA container toolkit"),
    (H100, dict(H100, name="NVIDIA H100 80GB HBM3 MIG 1g.10gb"), "gpu", "MIG 1g.10gb"),
])
def test_a_device_mismatch_is_refused_with_the_fix(host, container, requested, fragment):
    with pytest.raises(compare_host.CompareError) as exc:
        compare_host.check_same_device(report(host), report(container), requested)
    message = str(exc.value)
    assert message.startswith("device mismatch: the host ran on gpu (NVIDIA H100 80GB HBM3), the container on")
    assert fragment in message


def test_compare_host_stops_at_the_first_mismatched_pair_and_exits_1(monkeypatch, capsys):
    """The command itself, with the two sides' runs replaced: a GPU host and a CPU container under --device
    auto stop at the warm-up with the reason, before any measured pair, and nothing is tabulated."""
    runs = []
    monkeypatch.setattr(compare_host, "docker_client", lambda: type("Engine", (), {"images": type(
        "Images", (), {"get": staticmethod(lambda ref: None)})})())
    monkeypatch.setattr(compare_host, "run_host", lambda args, wargs: runs.append("host") or report(H100))
    monkeypatch.setattr(compare_host, "run_container", lambda c, args, wargs: runs.append("container") or report(CPU))
    assert compare_host.run_compare_host(parse("--repeats", "3")) == 1
    err = capsys.readouterr()
    assert "device mismatch: the host ran on gpu" in err.err and "overhead" not in err.out
    assert runs == ["host", "container"]


def test_compare_host_without_warmup_checks_the_first_measured_pair(monkeypatch, capsys):
    monkeypatch.setattr(compare_host, "docker_client", lambda: type("Engine", (), {"images": type(
        "Images", (), {"get": staticmethod(lambda ref: None)})})())
    monkeypatch.setattr(compare_host, "run_host", lambda args, wargs: report(CPU))
    monkeypatch.setattr(compare_host, "run_container", lambda c, args, wargs: report(H100))
    assert compare_host.run_compare_host(parse("--repeats", "2", "--warmup", "0", "--device", "auto")) == 1
    assert "the host ran on cpu" in capsys.readouterr().err
