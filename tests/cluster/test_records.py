"""Run records through the real API server: 1,000 full-size records written with ClusterIO.write_records into
ConfigMaps of at most DEFAULT_CHUNK_BYTES, read back intact with ClusterIO.read_records and read_chunks, and one
more record rewrites only the ConfigMap that changed.

A full-size record is made the way the operator makes a real run's record (core/status.run_record) from what a
GPU run on a MIG slice would show: the pod watch and the kubelet's events with long real-world names, the node's
cache evidence, a pod clock ahead of the operator's (a clock check that corrects it), and an in-pod
report with every metric and every device field. No padding: it is as large as a real record gets."""

from __future__ import annotations

import datetime
import json
import uuid

import pytest

from startbench.core.cache import NodeEvidence
from startbench.core.kubelet_events import parse_event
from startbench.core.manifests import BenchmarkRef
from startbench.core.planner import plan
from startbench.core.records import DEFAULT_CHUNK_BYTES, chunk_records, read_chunks
from startbench.core.spec import BenchmarkSpec
from startbench.core.status import run_outcome, run_record
from startbench.core.timeline import Observations, observe_event, observe_pod, read_report
from startbench.runtime.kube import ClusterIO
from startbench.workload.marks import MARKS
from startbench.workload.report import build_report, encode_report
from tests.cluster import benchmarks as bm

RUNS = 1000
CONFIGMAP_LIMIT = 1024 * 1024  # the API server's limit on a ConfigMap's data (keys and values together)
REPOSITORY = "registry.internal.example.com:5000/ml-platform/training/startbench-pytorch"
DIGEST = "sha256:" + "3f9a" * 16
OLD_DIGEST = "sha256:" + "77c1" * 16
T0 = 1_764_000_000_000.0
# Marks of the workload, each after the one before (ms): a ResNet-50 run of 600 steps on a slice of an H100.
MARK_STEPS = (0.0, 180.4, 6211.9, 2403.7, 871.2, 1450.6, 21345.8, 60123.4)
POD_CLOCK_AHEAD_MS = 2750.25
DEVICE = {"kind": "gpu", "name": "NVIDIA H100 80GB HBM3 MIG 3g.40gb", "count": 1,
          "uuid": "MIG-4b1f7d2e-9c3a-5e8b-a1d0-6f2c8e7b3a95", "mig": {"slices": 3, "sms": 60, "share": 0.454545}}
METRICS = {"samples_per_s": 2471.381204, "step_time_p50_ms": 103.617382, "step_time_p90_ms": 104.904115,
           "tflops": 312.771904, "mfu": 0.316251, "gpu_util_mean": 97.412371, "gpu_util_max": 100.0,
           "mem_util_mean": 61.902313, "mem_util_max": 74.0, "mem_used_max_mib": 38871.0, "power_mean_w": 402.118274,
           "sm_clock_mean_mhz": 1978.341207, "framework_mem_peak_mib": 35121.447266}


def _iso(ms: float) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _plan(benchmark: str):
    """1,200 runs with the longest names a Benchmark allows (63-character run names) on ten GPU nodes."""
    names = ["pytorch-2-9-cuda-12-8-naive-torchvision", "jax-0-7-cuda-12-slim-multistage-bf16-xla"]
    spec = BenchmarkSpec.from_dict({
        "images": [{"name": n, "image": f"{REPOSITORY}:{n}", "framework": "pytorch", "variant": "naive"}
                   for n in names],
        "nodes": {"selector": {"matchLabels": {"startbench.dev/pool": "gpu"}}, "maxNodes": 10},
        "cache": "both", "repetitions": 30, "purgeImageBeforeColdRun": True})
    nodes = [f"gke-ml-prod-europe-west4-a3-highgpu-8g-pool-7f3c2a91-{i:04d}" for i in range(10)]
    return plan(benchmark, spec, nodes)


def full_record(run, at_ms: float, jitter: int) -> dict:
    """The record of a run created at `at_ms` that reached its first step and finished: a cold run downloads
    7.4 GB after a purge, a warm one finds the image its cold run got there."""
    cold = run.cache == "cold"
    evidence = NodeEvidence(image_on_node=not cold, digests=() if cold else (DIGEST, OLD_DIGEST), purged=cold,
                            pulled_by=None if cold else run.after)
    meta = {"annotations": evidence.annotations()}
    reference = f"{REPOSITORY}:{run.image}"
    obs = Observations(created_ms=at_ms)
    t = at_ms + 41.7 + jitter
    obs = observe_pod(obs, {"metadata": meta, "spec": {"nodeName": run.node}, "status": {
        "phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]}}, t)
    obs = observe_event(obs, parse_event("Scheduled", f"Successfully assigned team/{run.name} to {run.node}"), t + 3.1)
    t += 812.4
    obs = observe_event(obs, parse_event("Pulling", f'Pulling image "{reference}"'), t)
    if cold:
        pull = 41.873 + jitter * 0.731
        t += pull * 1000 + 1234.5
        message = (f'Successfully pulled image "{reference}" in {pull:.3f}s ({pull + 1.2345:.3f}s including waiting). '
                   f"Image size: 7412345678 bytes.")
    else:
        t += 302.2
        message = f'Container image "{reference}" already present on machine'
    obs = observe_event(obs, parse_event("Pulled", message), t)
    start = t + 611.3
    marks, mark = {}, start + POD_CLOCK_AHEAD_MS
    for name, step in zip(MARKS, MARK_STEPS):
        mark += step
        marks[name] = mark
    container = {"name": "workload", "imageID": f"{REPOSITORY}@{DIGEST}"}
    obs = observe_pod(obs, {"metadata": meta, "status": {"phase": "Running", "containerStatuses": [
        {**container, "state": {"running": {"startedAt": _iso(start)}}}]}}, start + 517.8)
    obs = observe_event(obs, parse_event("Started", "Started container workload"), start + 12.4)
    report = encode_report(build_report(
        framework="pytorch", model="resnet50", marks_ms=marks, device=DEVICE, metrics=METRICS,
        config={"steps": 600, "batch_size": 256, "precision": "bf16", "image_size": 224, "data": "synthetic"},
        flops={"per_sample": 24.6e9, "source": "counter"},
        versions={"python": "3.12.7", "torch": "2.9.0+cu128", "cuda": "12.8", "driver": "570.172.08"},
        notes={"mfu": "MFU against the MIG slice's share of the H100 SXM bf16 dense peak.",
               "sampler": "NVML sampled every 100 ms on the device the framework trained on."}))
    end = marks["steady_end"] - POD_CLOCK_AHEAD_MS + 850.0
    obs = observe_pod(obs, {"metadata": meta, "status": {"phase": "Succeeded", "containerStatuses": [
        {**container, "state": {"terminated": {"exitCode": 0, "reason": "Completed", "message": report,
                                               "startedAt": _iso(start), "finishedAt": _iso(end)}}}]}}, end + 400)
    view = read_report(obs.termination_message)
    outcome = run_outcome(obs, view, end + 450, 1800)
    return run_record(run, obs, view, outcome, finished_ms=end + 450.0)


def full_records(benchmark: str, count: int) -> list[dict]:
    records, at = [], T0
    for i, run in enumerate(_plan(benchmark)[:count]):
        record = full_record(run, at, jitter=i % 17)
        records.append(record)
        at = record["finishedMs"] + 200.0
    return records


def test_a_full_size_record_has_every_part_of_a_real_runs_record():
    [record] = full_records("nightly-pytorch-vs-jax-startup-on-a3-highgpu-cold-and-warm-ab12", 1)
    assert record["result"] == "Succeeded" and len(record["name"]) >= 60, record
    timeline = record["timeline"]
    assert len(timeline["phases"]) == 7 and timeline["end"] == "first_step"
    assert timeline["cacheObserved"] == "miss" and timeline["cacheEvidence"]["why"]
    assert timeline["clock"]["corrected"] is True
    assert set(record["pull"]) == {"seconds", "withWaitSeconds", "imageSizeBytes", "imageID"}
    assert record["report"]["valid"] is True and record["report"]["ok"] is True
    assert set(record["report"]["metrics"]) == set(METRICS)
    assert record["report"]["device"] == DEVICE


class CountingCore:
    """ClusterIO's CoreV1Api, counting its calls that write."""

    def __init__(self, core):
        self._core = core
        self.calls: list[tuple[str, str]] = []   # every write request sent: (method, object name)
        self.writes: list[tuple[str, str]] = []  # those the API server carried out

    def __getattr__(self, name):
        method = getattr(self._core, name)
        if not name.startswith(("create_", "replace_", "patch_", "delete_")):
            return method

        def counted(*args, **kwargs):
            body = kwargs.get("body", args[-1] if args else None)
            target = args[0] if name.startswith(("replace_", "patch_", "delete_")) else body["metadata"]["name"]
            self.calls.append((name, target))
            result = method(*args, **kwargs)
            self.writes.append((name, target))
            return result

        return counted

    def clear(self) -> None:
        self.calls.clear()
        self.writes.clear()


@pytest.fixture
def records_benchmark(crd, core, custom):
    """A Benchmark to own the records ConfigMaps (the garbage collector deletes ConfigMaps whose owner does not
    exist), in a namespace of its own that no test operator watches (they watch t-*)."""
    namespace = f"records-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": namespace, "labels": {"startbench.dev/test": "true"}}})
    body = bm.benchmark("nightly-pytorch-vs-jax-startup-on-a3-highgpu-cold-and-warm-ab12",
                        [{"name": "base", "image": bm.BASE_IMAGE, "framework": "none"}])
    created = bm.create(custom, namespace, body)
    yield BenchmarkRef.from_body(created)
    core.delete_namespace(namespace, grace_period_seconds=0)


def test_a_thousand_full_size_records_go_through_the_api_server_intact(kube_api, core, records_benchmark):
    ref = records_benchmark
    records = full_records(ref.name, RUNS + 1)
    first, last = records[:RUNS], records[RUNS]
    io = ClusterIO(kube_api)
    io.core = counting = CountingCore(io.core)

    chunks = chunk_records(first)
    sizes = [len(c.encode("utf-8")) for c in chunks]
    assert all(n <= DEFAULT_CHUNK_BYTES for n in sizes), sizes
    names = io.write_records(ref, chunks, previous=[])
    assert len(names) == len(chunks) >= 2, "1,000 full-size records should need more than one ConfigMap"
    assert counting.writes == [("create_namespaced_config_map", n) for n in names], counting.writes

    # Each ConfigMap as the API server stores it stays below its limit (its data, and the whole object).
    for name in names:
        stored = core.read_namespaced_config_map(name, ref.namespace, _preload_content=False).data
        data = json.loads(stored)["data"]
        assert sum(len(k.encode()) + len(v.encode()) for k, v in data.items()) < CONFIGMAP_LIMIT

    texts = io.read_records(ref.namespace, ref.name)
    assert sorted(texts) == sorted(chunks)
    assert read_chunks(texts) == sorted(first, key=lambda r: (r["order"], r["name"]))
    assert read_chunks(io.read_records(ref.namespace, ref.name, names)) == read_chunks(chunks)

    # One more run ends: only the last ConfigMap changes (or one is added), and only it is written.
    versions = {n: core.read_namespaced_config_map(n, ref.namespace).metadata.resource_version for n in names}
    counting.clear()
    more = chunk_records(first + [last])
    assert more[:-1] == chunks[:-1], "an earlier chunk changed: finishing order should keep them as they were"
    names_after = io.write_records(ref, more, previous=chunks)
    assert names_after[:-1] == names[:-1]
    assert counting.calls == counting.writes == [("replace_namespaced_config_map", names_after[-1])], counting.calls
    for name in names_after[:-1]:
        assert core.read_namespaced_config_map(name, ref.namespace).metadata.resource_version == versions[name], name
    assert read_chunks(io.read_records(ref.namespace, ref.name)) == sorted(first + [last], key=lambda r: r["order"])

    # Writing the same chunks again writes nothing.
    counting.clear()
    io.write_records(ref, more, previous=more)
    assert counting.calls == []
