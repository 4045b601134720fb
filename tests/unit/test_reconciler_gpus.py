"""The operator warns when spec.nodes.gpusPerPod > 1: the workload trains on one GPU of each pod, so the others
sit idle (the in-pod report says so too). Runs the real reconciler's first step on tests/unit/fakes.py."""

from __future__ import annotations

import pytest

from fakes import FakeClock, FakeClusterIO, make_node
from startbench.runtime import config
from startbench.runtime.metrics import Metrics
from startbench.runtime.observer import Observer
from startbench.runtime.reconciler import BenchmarkReconciler

POOL = "startbench.dev/pool"


def events_after(gpus_per_pod: int, steps: int = 1) -> list[dict]:
    io = FakeClusterIO([make_node("gpu-0", {POOL: "gpu"}, gpus=8)])
    body = io.add_benchmark({
        "apiVersion": "startbench.dev/v1alpha1", "kind": "Benchmark",
        "metadata": {"name": "b", "namespace": "ns", "uid": "uid-b", "generation": 1},
        "spec": {"images": [{"name": "pt", "image": "registry.example/startbench/pytorch:slim",
                             "framework": "pytorch"}],
                 "nodes": {"selector": {"matchLabels": {POOL: "gpu"}}, "maxNodes": 1, "gpusPerPod": gpus_per_pod},
                 "cache": "warm", "repetitions": 1}})
    reconciler = BenchmarkReconciler(io, Observer(), Metrics(), config.load({}), clock_ms=FakeClock())
    for _ in range(steps):
        reconciler.step(io.get_benchmark("ns", "b"))
    assert body is not None
    return io.events


@pytest.mark.parametrize("gpus", [0, 1])
def test_one_gpu_or_none_per_pod_is_not_warned_about(gpus):
    assert [e for e in events_after(gpus) if e["reason"] == "GpusLeftIdle"] == []


def test_several_gpus_per_pod_give_one_warning_naming_the_idle_ones():
    events = events_after(4, steps=3)  # the nodes are chosen once: one warning, not one a step
    warnings = [e for e in events if e["reason"] == "GpusLeftIdle"]
    assert len(warnings) == 1 and warnings[0]["type"] == "Warning"
    assert "gpusPerPod is 4" in warnings[0]["message"] and "leaves 3 idle" in warnings[0]["message"]
    assert [e["reason"] for e in events].index("Planned") < [e["reason"] for e in events].index("GpusLeftIdle")
