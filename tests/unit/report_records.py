"""Realistic run records for the report's tests, made the way the operator makes them: a plan (core/planner),
what the watch and the kubelet's events would show (core/timeline's observe_pod and observe_event), the in-pod
report read back (read_report), the outcome (run_outcome) and the record (run_record)."""

from __future__ import annotations

import json

from startbench.core.kubelet_events import parse_event
from startbench.core.planner import plan
from startbench.core.spec import BenchmarkSpec
from startbench.core.status import progress_status, run_outcome, run_record
from startbench.core.timeline import Observations, observe_event, observe_pod, read_report

T0 = 1_764_000_000_000.0
NOW = "2025-11-24T16:30:00Z"
SPEC_DICT = {
    "images": [{"name": "naive", "image": "127.0.0.1:5000/startbench/startbench-pytorch:naive-cpu",
                "framework": "pytorch", "variant": "naive"},
               {"name": "slim", "image": "127.0.0.1:5000/startbench/startbench-pytorch:slim-cpu",
                "framework": "pytorch", "variant": "slim"}],
    "nodes": {"selector": {"matchLabels": {"startbench.dev/pool": "gpu"}}, "maxNodes": 2},
    "cache": "both", "repetitions": 2,
    "thresholds": [{"metric": "timeToFirstStep", "quantile": "p90", "maxSeconds": 30, "cache": "cold"},
                   {"metric": "pulling", "quantile": "p50", "maxSeconds": 5, "image": "slim"}],
}
NODES = ["gpu-00", "gpu-01"]
SIZE = {"naive": 3_000_000_000, "slim": 1_000_000_000}
PULL_S = {"naive": 25.0, "slim": 9.0}
IMPORTS_MS = {"naive": 6000.0, "slim": 4500.0}


def _pod(**status):
    return {"status": status}


def _run_pod(state, phase=None):
    return _pod(phase=phase, containerStatuses=[{"name": "workload", "state": state}])


def observe(run, start_ms, *, pull_s=None, hit=False, fail=None, jitter=0.0):
    """The observations and report of one run created at `start_ms`; `fail`: OOMKilled or ErrImagePull."""
    obs = Observations(created_ms=start_ms)
    t = start_ms + 40 + jitter
    obs = observe_pod(obs, _pod(phase="Pending", conditions=[{"type": "PodScheduled", "status": "True"}]), t)
    if fail == "ErrImagePull":
        obs = observe_event(obs, parse_event("Failed", f'Failed to pull image "{run.image}": not found'), t + 300)
        return obs, None
    wait_s = 0.3
    if hit:
        t += 200
        obs = observe_event(obs, parse_event("Pulled", 'Container image "x" already present on machine'), t)
    else:
        pull_s = pull_s if pull_s is not None else PULL_S[run.image]
        t += (wait_s + pull_s) * 1000
        obs = observe_event(obs, parse_event(
            "Pulled", f'Successfully pulled image "x" in {pull_s}s ({pull_s + wait_s}s including waiting). '
                      f'Image size: {SIZE[run.image]} bytes.'), t)
    process_start = t + 600
    obs = observe_pod(obs, _run_pod({"running": {}}, "Running"), process_start + 400)
    marks = {"process_start": process_start, "framework_imported": process_start + IMPORTS_MS[run.image] + jitter,
             "device_ready": process_start + IMPORTS_MS[run.image] + 150 + jitter}
    if fail != "OOMKilled":
        marks["first_step"] = marks["device_ready"] + 900
    text = json.dumps({"schema": "startbench.dev/workload-report/v1", "ok": True, "marks_ms": marks,
                       "metrics": {"samples_per_s": 120.0}, "device": {"kind": "cpu", "name": "x86_64"}})
    end = max(marks.values()) + 2000
    if fail == "OOMKilled":
        state = {"terminated": {"exitCode": 137, "reason": "OOMKilled", "message": ""}}
        obs = observe_pod(obs, _run_pod(state, "Failed"), end)
    else:
        state = {"terminated": {"exitCode": 0, "reason": "Completed", "message": text}}
        obs = observe_pod(obs, _run_pod(state, "Succeeded"), end)
    return obs, read_report(obs.termination_message)


def make_records(fail: dict[str, str] | None = None, only_failed: bool = False):
    """(benchmark, records) of a finished benchmark: 2 images x 2 nodes x cold and warm x 2 repetitions. `fail`:
    run name -> failure reason; `only_failed`: every run fails (half OOMKilled, half ErrImagePull)."""
    spec = BenchmarkSpec.from_dict(SPEC_DICT)
    runs = plan("compare", spec, NODES)
    fail = dict(fail or {})
    if only_failed:
        fail = {r.name: ("OOMKilled" if i % 2 else "ErrImagePull") for i, r in enumerate(runs)}
    records, at = [], T0
    for i, run in enumerate(runs):
        obs, report = observe(run, at, hit=run.cache == "warm", fail=fail.get(run.name), jitter=37.0 * (i % 5))
        now = (obs.terminated_ms or obs.created_ms + 400) + 50
        outcome = run_outcome(obs, report, now, 600)
        assert outcome is not None, run.name
        records.append(run_record(run, obs, report, outcome, finished_ms=now))
        at = now + 100
    status = progress_status(spec, runs, records, running=0, conditions=[], generation=1, now=NOW)
    status.update(nodes=NODES, startedAt="2025-11-24T16:00:00Z", finishedAt=NOW, images={
        "naive": {"reference": SPEC_DICT["images"][0]["image"], "digest": "sha256:" + "a" * 64,
                  "compressedBytes": 2_900_000_000, "layers": 9,
                  "layerMediaTypes": {"application/vnd.oci.image.layer.v1.tar+gzip": 9}},
        "slim": {"reference": SPEC_DICT["images"][1]["image"], "digest": "sha256:" + "b" * 64,
                 "compressedBytes": 950_000_000, "uncompressedBytes": 2_600_000_000, "layers": 4}})
    benchmark = {"apiVersion": "startbench.dev/v1alpha1", "kind": "Benchmark",
                 "metadata": {"name": "compare", "namespace": "team"}, "spec": SPEC_DICT, "status": status}
    return benchmark, records
