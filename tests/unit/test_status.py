import json

import pytest
from hypothesis import given, settings, strategies as st

from startbench.core.kubelet_events import parse_event
from startbench.core.planner import plan
from startbench.core.records import chunk_records, read_chunks
from startbench.core.spec import BenchmarkSpec
from startbench.core.status import (benchmark_phase, failure_summary, evaluate_thresholds, failed_status, get_condition,
                               progress_status, rejection_message, run_outcome, run_record, set_condition,
                               summaries, threshold_condition)
from startbench.core.timeline import Observations, observe_event, observe_pod, read_report

T0 = 1_764_000_000_000.0
NOW = "2025-11-24T16:00:00Z"
LATER = "2025-11-24T16:05:00Z"

SPEC = BenchmarkSpec.from_dict({
    "images": [{"name": "naive", "image": "r/naive:1", "framework": "pytorch"},
               {"name": "slim", "image": "r/slim:1", "framework": "pytorch"}],
    "nodes": {"selector": {"matchLabels": {"startbench.dev/pool": "gpu"}}},
    "repetitions": 1,
    "thresholds": [{"metric": "timeToFirstStep", "quantile": "p99", "maxSeconds": 60},
                   {"metric": "pulling", "quantile": "p50", "maxSeconds": 5, "image": "slim", "cache": "cold"}],
})
RUNS = plan("b1", SPEC, ["n0"])


def terminated_pod(exit_code=0, reason="Completed", message="", phase="Succeeded"):
    return {"status": {"phase": phase, "conditions": [{"type": "PodScheduled", "status": "True"}],
                       "containerStatuses": [{"name": "workload", "state": {"terminated": {
                           "exitCode": exit_code, "reason": reason, "message": message,
                           "startedAt": "2025-11-24T16:00:01Z"}}}]}}


def report(ok=True, first_step=T0 + 9000, **extra):
    marks = {"framework_imported": T0 + 5000, "device_ready": T0 + 6000}
    if first_step:
        marks["first_step"] = first_step
    return json.dumps({"schema": "startbench.dev/workload-report/v1", "ok": ok, "marks_ms": marks,
                       "metrics": {"samples_per_s": 100.0, "tflops": None}, **extra})


def finished(pull_s=2.0, hit=False, text=None, exit_code=0, reason="Completed", first_step=T0 + 9000):
    obs = observe_pod(Observations(created_ms=T0), {"status": {"conditions": [
        {"type": "PodScheduled", "status": "True"}]}}, T0 + 10)
    msg = ('Container image "x" already present on machine' if hit else
           f'Successfully pulled image "x" in {pull_s}s ({pull_s}s including waiting). Image size: 5000 bytes.')
    obs = observe_event(obs, parse_event("Pulled", msg), T0 + 3000)
    obs = observe_pod(obs, {"status": {"containerStatuses": [{"name": "workload", "state": {"running": {}}}]}},
                      T0 + 3500)
    text = report(first_step=first_step) if text is None else text
    obs = observe_pod(obs, terminated_pod(exit_code, reason, text, "Succeeded" if exit_code == 0 else "Failed"),
                      T0 + 20_000)
    return obs, read_report(obs.termination_message)


def test_successful_run_and_its_record():
    obs, rep = finished()
    out = run_outcome(obs, rep, T0 + 20_000, 600)
    assert (out.result, out.reason) == ("Succeeded", "Completed")
    rec = run_record(RUNS[0], obs, rep, out, finished_ms=T0 + 20_001)
    assert rec["timeToFirstStepMs"] == 9000
    assert rec["timeline"]["cacheObserved"] == "miss"
    assert rec["pull"] == {"seconds": 2.0, "withWaitSeconds": 2.0, "imageSizeBytes": 5000}
    assert rec["report"]["metrics"] == {"samples_per_s": 100.0}
    assert rec["node"] == "n0" and (rec["cache"], rec["cacheAsked"]) == ("miss", "cold")
    assert len(json.dumps(rec)) < 2000


@pytest.mark.parametrize("make, reason, words", [
    (lambda: finished(exit_code=137, reason="OOMKilled", text=""), "OOMKilled", "batchSize"),
    (lambda: finished(exit_code=1, reason="Error", text="Traceback\nboom"), "Error", "code 1"),
    (lambda: finished(exit_code=1, reason="Error", text=report(ok=False, first_step=None, failed_phase="first_step",
                                                               error="CUDA error: out of memory")),
     "WorkloadFailed", "CUDA error"),
    (lambda: finished(text="no json here"), "NoReport", "python -m startbench.workload"),
])
def test_failed_runs_name_reason_and_fix(make, reason, words):
    obs, rep = make()
    out = run_outcome(obs, rep, T0 + 20_000, 600)
    assert (out.result, out.reason) == ("Failed", reason)
    assert words in out.message


def test_image_pull_errors_end_the_run_at_once():
    obs = observe_event(Observations(created_ms=T0), parse_event("Failed", 'Failed to pull image "x": not found'),
                        T0 + 100)
    out = run_outcome(obs, None, T0 + 101, 600)
    assert (out.result, out.reason) == ("Failed", "ErrImagePull")
    assert "spec.imagePullSecrets" in out.message
    obs = observe_pod(Observations(created_ms=T0), {"status": {"containerStatuses": [
        {"name": "workload", "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling"}}}]}},
        T0 + 5)
    assert run_outcome(obs, None, T0 + 6, 600).reason == "ImagePullBackOff"


def test_unschedulable_waits_for_the_timeout_then_says_why():
    obs = observe_pod(Observations(created_ms=T0), {"status": {"conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
         "message": "0/2 nodes are available: 2 Insufficient nvidia.com/gpu."}]}}, T0 + 10)
    assert run_outcome(obs, None, T0 + 599_000, 600) is None
    out = run_outcome(obs, None, T0 + 600_001, 600)
    assert (out.result, out.reason) == ("Failed", "Unschedulable")
    assert "Insufficient nvidia.com/gpu" in out.message and "spec.nodes.gpusPerPod" in out.message


def test_timeout_names_the_stage_and_deadline_exceeded():
    obs = observe_pod(Observations(created_ms=T0), {"status": {"conditions": [
        {"type": "PodScheduled", "status": "True"}]}}, T0 + 10)
    out = run_outcome(obs, None, T0 + 31_000, 30)
    assert out.reason == "Timeout" and "image not pulled" in out.message
    dl = observe_pod(Observations(created_ms=T0), {"status": {"phase": "Failed", "reason": "DeadlineExceeded",
                                                              "message": "Pod was active too long"}}, T0 + 10)
    assert run_outcome(dl, None, T0 + 11, 30).reason == "DeadlineExceeded"
    assert run_outcome(Observations(created_ms=T0), None, T0 + 1, 30, deleted=True).reason == "PodDeleted"


def _running(obs=None):
    obs = obs or observe_pod(Observations(created_ms=T0), {"status": {"conditions": [
        {"type": "PodScheduled", "status": "True"}]}}, T0 + 10)
    obs = observe_event(obs, parse_event("Pulled", 'Container image "x" already present on machine'), T0 + 100)
    return observe_pod(obs, {"status": {"phase": "Running", "containerStatuses": [
        {"name": "workload", "state": {"running": {"startedAt": "2025-11-24T16:00:01Z"}}}]}}, T0 + 200)


SIGTERM_REPORT = report(ok=False, first_step=None, failed_phase="first_step",
                        error="terminated by SIGTERM before mark 'first_step'")


def test_the_kubelets_deadline_wins_over_the_sigterm_report_it_causes():
    obs = observe_pod(_running(), {"status": {
        "phase": "Failed", "reason": "DeadlineExceeded",
        "message": "Pod was active on the node longer than the specified deadline",
        "containerStatuses": [{"name": "workload", "state": {"terminated": {
            "exitCode": 143, "reason": "Error", "message": SIGTERM_REPORT}}}]}}, T0 + 95_000)
    out = run_outcome(obs, read_report(obs.termination_message), T0 + 95_000, 30)
    assert (out.result, out.reason) == ("Failed", "DeadlineExceeded")
    assert "spec.runTimeoutSeconds 30s + 60s" in out.message and "stopped before mark first_step" in out.message
    assert "Raise spec.runTimeoutSeconds" in out.message


def test_a_pod_being_deleted_is_pod_deleted_unless_it_had_finished():
    deleting = {"metadata": {"deletionTimestamp": "2025-11-24T16:00:09Z"}, "status": {"phase": "Running"}}
    obs = observe_pod(_running(), deleting, T0 + 9000)
    assert obs.deleting_ms == T0 + 9000
    out = run_outcome(obs, None, T0 + 9000, 600)
    assert out.reason == "PodDeleted" and "workload still running" in out.message and "new name" in out.message
    stopped = observe_pod(obs, {**deleting, "status": {"phase": "Failed", "containerStatuses": [
        {"name": "workload", "state": {"terminated": {"exitCode": 143, "reason": "Error",
                                                      "message": SIGTERM_REPORT}}}]}}, T0 + 9500)
    out = run_outcome(stopped, read_report(stopped.termination_message), T0 + 9500, 600)
    assert out.reason == "PodDeleted" and "stopped before mark first_step" in out.message
    done, rep = finished()
    done = observe_pod(done, {"metadata": {"deletionTimestamp": "2025-11-24T16:00:30Z"},
                              "status": {"phase": "Succeeded"}}, T0 + 30_000)
    assert run_outcome(done, rep, T0 + 30_000, 600).reason == "Completed"


@pytest.mark.parametrize("make, words", [
    (lambda: finished(exit_code=1, reason="Error", text=report(
        ok=False, first_step=None, failed_phase="first_step",
        error="InjectedFailure: failure injected before mark 'first_step' (STARTBENCH_WORKLOAD_FAIL_AT or "
              "--fail-at)")), "remove --fail-at from spec.workload.args"),
    (lambda: finished(exit_code=1, reason="Error", text=report(
        ok=False, first_step=None, failed_phase="framework_imported",
        error="invalid arguments: unrecognized arguments: --bogus")), "Fix spec.workload.args"),
    (lambda: finished(exit_code=3, reason="Error", text="starting\nbad input: no such file\n"),
     "its last output: starting | bad input: no such file"),
    (lambda: finished(text=""), "(e.g. --help)"),
])
def test_failure_messages_say_what_to_change(make, words):
    obs, rep = make()
    assert words in run_outcome(obs, rep, T0 + 20_000, 600).message


def test_oom_killed_names_the_limit_or_its_absence():
    obs, rep = finished(exit_code=137, reason="OOMKilled", text="")
    assert "limits.memory (64Mi): raise that limit" in run_outcome(obs, rep, T0, 600, memory_limit="64Mi").message
    assert "no memory limit of its own" in run_outcome(obs, rep, T0, 600).message


def test_a_pod_still_creating_its_container_at_the_timeout_is_a_timeout_with_its_stage():
    obs = observe_pod(Observations(created_ms=T0), {"spec": {"nodeName": "n0"}, "status": {
        "conditions": [{"type": "PodScheduled", "status": "True"}],
        "containerStatuses": [{"name": "workload", "state": {"waiting": {"reason": "ContainerCreating"}}}]}}, T0 + 10)
    out = run_outcome(obs, None, T0 + 31_000, 30)
    assert out.reason == "Timeout" and "image not pulled" in out.message and "smaller image" in out.message
    out = run_outcome(_running(), None, T0 + 31_000, 30)
    assert out.reason == "Timeout" and "workload still running" in out.message and "workload.steps" in out.message


@pytest.mark.parametrize("refusal, words", [
    ("exceeded quota: q, requested: pods=1, used: pods=0, limited: pods=0", "raise the quota"),
    ("failed quota: q: must specify limits.memory for: workload", "set them in spec.workload.resources"),
    ("maximum memory usage per Container is 1Gi, but limit is 2Gi", "LimitRange"),
    ("spec.containers[0].image: Invalid value", "Fix the spec field the message names"),
])
def test_rejections_say_what_to_change(refusal, words):
    assert rejection_message(refusal).startswith(refusal) and words in rejection_message(refusal)


def test_new_observations_survive_a_restart():
    obs = observe_event(Observations(created_ms=T0), parse_event(
        "FailedToRetrieveImagePullSecret", "Unable to retrieve some image pull secrets (b, a); attempting to pull "
        "the image may not succeed."), T0 + 5)
    obs = observe_pod(obs, {"metadata": {"deletionTimestamp": "2025-11-24T16:00:09Z"}}, T0 + 9)
    assert obs.missing_pull_secrets == ("a", "b")
    assert Observations.from_dict(json.loads(json.dumps(obs.to_dict()))) == obs


def test_framework_none_succeeds_without_report():
    obs, _ = finished(text="")
    out = run_outcome(obs, read_report(""), T0, 600, expects_report=False)
    assert (out.result, out.reason) == ("Succeeded", "Completed")


def test_simulated_node_succeeds_without_report_and_says_so():
    obs, _ = finished(text="")
    assert run_outcome(obs, read_report(""), T0, 600).reason == "NoReport"
    out = run_outcome(obs, read_report(""), T0, 600, simulated=True)
    assert (out.result, out.reason) == ("Succeeded", "Completed") and "simulated node" in out.message


def test_benchmark_phase():
    assert benchmark_phase(4, 0, 0, 0) == "Pending"
    assert benchmark_phase(4, 1, 0, 2) == "Running"
    assert benchmark_phase(4, 4, 0, 0) == "Succeeded"
    assert benchmark_phase(4, 3, 1, 0) == "PartiallyFailed"
    assert benchmark_phase(4, 0, 4, 0) == "Failed"
    assert benchmark_phase(4, 0, 0, 0, fatal=True) == "Failed"
    assert benchmark_phase(4, 0, 0, 0, building=True) == "Building"


def test_set_condition_is_idempotent_and_keeps_transition_time():
    a = set_condition([], "Complete", "False", "RunsInProgress", "0 of 4", 1, NOW)
    b = set_condition(a, "Complete", "False", "RunsInProgress", "1 of 4", 1, LATER)
    assert b[0]["lastTransitionTime"] == NOW and b[0]["message"] == "1 of 4"
    c = set_condition(b, "Complete", "True", "Succeeded", "4 of 4", 2, LATER)
    assert c[0]["lastTransitionTime"] == LATER and c[0]["observedGeneration"] == 2
    assert set_condition(c, "Complete", "True", "Succeeded", "4 of 4", 2, "2030-01-01T00:00:00Z") == c
    assert set(c[0]) == {"type", "status", "reason", "message", "observedGeneration", "lastTransitionTime"}
    with pytest.raises(ValueError):
        set_condition([], "X", "yes", "R", "m", 1, NOW)


def record(run, ttfs_s, pulling_s, result="Succeeded", cache_observed="miss"):
    return {"name": run.name, "image": run.image, "cache": run.cache, "order": run.order, "result": result,
            "reason": "Completed" if result == "Succeeded" else "Error", "message": "m", "finishedMs": T0 + run.order,
            "timeToFirstStepMs": ttfs_s * 1000,
            "timeline": {"cacheObserved": cache_observed, "phases": {
                "pulling": {"ms": pulling_s * 1000, "source": "event:Pulled"},
                "waiting_to_pull": {"ms": 5, "source": "x", "covers": ["waiting_to_pull", "pulling"]}}}}


def test_summaries_group_by_image_and_observed_cache():
    recs = [record(r, 10 + i, 1 + i, cache_observed="miss" if r.cache == "cold" else "hit")
            for i, r in enumerate(RUNS)]
    out = summaries(recs, ["naive", "slim"])
    keys = [(s["image"], s["cache"], s["metric"]) for s in out]
    assert keys == [("naive", "hit", "timeToFirstStep"), ("naive", "hit", "pulling"),
                    ("naive", "miss", "timeToFirstStep"), ("naive", "miss", "pulling"),
                    ("slim", "hit", "timeToFirstStep"), ("slim", "hit", "pulling"),
                    ("slim", "miss", "timeToFirstStep"), ("slim", "miss", "pulling")]
    # merged spans (covers) never count as a phase of their own
    assert all(s["metric"] != "waitingToPull" for s in out)
    assert out[0]["count"] == 1 and out[0]["p50Seconds"] == out[0]["maxSeconds"]


def test_thresholds_per_image_and_condition():
    recs = [record(r, 30 if r.image == "naive" else 70, 8 if r.cache == "cold" else 0,
                   cache_observed="miss" if r.cache == "cold" else "hit") for r in RUNS]
    results = evaluate_thresholds(SPEC, recs)
    # A `cache: cold` threshold counts the runs that downloaded the image, not those that asked for a cold start:
    # a cold run whose pull transferred nothing (revalidated) is left out.
    revalidated = [dict(r, timeline=dict(r["timeline"], cacheObserved="revalidated")) if r["cache"] == "cold" else r
                   for r in recs]
    by_revalidated = {(r["metric"], r["image"]): r for r in evaluate_thresholds(SPEC, revalidated)}
    assert by_revalidated[("pulling", "slim")]["count"] == 0 and by_revalidated[("pulling", "slim")]["met"] is None
    by = {(r["metric"], r["image"]): r for r in results}
    assert by[("timeToFirstStep", "naive")]["met"] is True
    assert by[("timeToFirstStep", "slim")]["met"] is False
    assert by[("timeToFirstStep", "slim")]["observedSeconds"] == 70
    assert by[("pulling", "slim")] == {"metric": "pulling", "quantile": "p50", "maxSeconds": 5, "image": "slim",
                                       "cache": "cold", "count": 1, "observedSeconds": 8, "met": False}
    status, reason, message = threshold_condition(results, complete=True)
    assert (status, reason) == ("False", "ThresholdExceeded")
    assert "p99 timeToFirstStep of slim is 70s, limit 60s" in message
    assert threshold_condition(results, complete=False)[0] == "Unknown"
    assert threshold_condition([], complete=True)[:2] == ("True", "NoThresholds")
    # Without thresholds too, the condition waits for the runs: `kubectl wait` must not return at once.
    assert threshold_condition([], complete=False)[:2] == ("Unknown", "Running")
    none = evaluate_thresholds(SPEC, [])
    assert all(r["met"] is None and r["count"] == 0 for r in none)
    assert threshold_condition(none, complete=True)[:2] == ("Unknown", "NoData")


def test_progress_status_fields_and_conditions():
    recs = [record(r, 10, 1) for r in RUNS[:3]] + [record(RUNS[3], 10, 1, result="Failed")]
    st_ = progress_status(SPEC, RUNS, recs, running=0, conditions=[], generation=1, now=NOW)
    assert (st_["phase"], st_["progress"], st_["succeeded"], st_["failed"], st_["pending"]) == (
        "PartiallyFailed", "4/4", 3, 1, 0)
    assert st_["p50TimeToFirstStepSeconds"] == 10
    assert get_condition(st_["conditions"], "Complete")["status"] == "True"
    assert get_condition(st_["conditions"], "Running")["status"] == "False"
    again = progress_status(SPEC, RUNS, recs, running=0, conditions=st_["conditions"], generation=1, now=LATER)
    assert again == st_
    half = progress_status(SPEC, RUNS, recs[:1], running=2, conditions=[], generation=1, now=NOW)
    assert (half["phase"], half["progress"], half["pending"]) == ("Running", "1/4", 1)
    assert get_condition(half["conditions"], "ThresholdsMet")["status"] == "Unknown"
    all_failed = progress_status(SPEC, RUNS, [record(r, 1, 1, result="Failed") for r in RUNS], 0, [], 1, NOW)
    failed = get_condition(all_failed["conditions"], "Failed")
    assert all_failed["phase"] == "Failed" and failed["status"] == "True"
    assert all_failed["message"] == failed["message"] and all_failed["message"].startswith("every run failed")
    assert st_["clockCorrected"] == 0
    skewed = [dict(r, timeline=dict(r["timeline"], clock={"offsetMs": -1900.0, "lowerMs": -9000.0, "upperMs": -1900.0,
                                                          "corrected": True})) for r in recs[:2]] + recs[2:]
    assert progress_status(SPEC, RUNS, skewed, 0, [], 1, NOW)["clockCorrected"] == 2
    assert "message" not in half and "message" in st_ and st_["message"].startswith("1 of 4 runs failed")


def test_failure_summary_names_the_top_reasons_with_counts_and_what_to_change():
    def rec(i, reason, message, result="Failed"):
        return {"name": f"r{i}", "order": i, "result": result, "reason": reason, "message": message}
    pull = "pull access denied; check spec.images[].image and spec.imagePullSecrets"
    records = ([rec(i, "ErrImagePull", pull) for i in (3, 1, 5)] + [rec(2, "OOMKilled", "lower spec.workload.batchSize")]
               + [rec(4, "Completed", "ok", "Succeeded")] + [rec(6 + i, r, "x") for i, r in enumerate("ABC")])
    line = failure_summary(records)
    assert line.startswith("7 of 8 runs failed (3 ErrImagePull, 1 A, 1 B, 2 other); r1: ")
    assert pull in line and "\n" not in line
    assert failure_summary([rec(0, "Timeout", "raise spec.runTimeoutSeconds")]) == \
        "every run failed (1 Timeout); r0: raise spec.runTimeoutSeconds"
    assert failure_summary([rec(0, "Completed", "ok", "Succeeded")]) == ""


def test_failed_status_says_what_to_change():
    st_ = failed_status([], "NoMatchingNodes", "spec.nodes.selector: no node matches", 1, NOW)
    assert st_["phase"] == "Failed"
    assert get_condition(st_["conditions"], "Failed")["message"] == "spec.nodes.selector: no node matches"


def big_records(n):
    return [{"name": f"b1-img-n{i % 50}-c{i}", "image": "img", "order": i, "finishedMs": T0 + i, "result": "Succeeded",
             "message": "é" * 200, "timeline": {"phases": {p: {"ms": 1.5, "source": "event:Pulled"} for p in
                                                            ("scheduling", "pulling", "imports")}}}
            for i in range(n)]


def test_thousand_records_fit_in_configmap_chunks():
    recs = big_records(1000)
    chunks = chunk_records(recs, 100_000)
    assert len(chunks) > 1
    assert all(len(c.encode()) <= 100_000 for c in chunks)
    assert read_chunks(chunks) == sorted(recs, key=lambda r: r["order"])
    assert chunk_records(recs, 100_000) == chunks  # deterministic
    # a new record finishing later only changes the last chunk
    more = chunk_records(recs + big_records(1001)[-1:], 100_000)
    assert more[:-1] == chunks[:-1]


def test_read_chunks_is_safe_twice_and_skips_garbage():
    recs = big_records(5)
    chunks = chunk_records(recs, 10_000)
    updated = dict(recs[0], finishedMs=T0 + 999, result="Failed")
    out = read_chunks(chunks + chunks + ["not json", "{}"] + chunk_records([updated], 10_000))
    assert len(out) == 5 and out[0]["result"] == "Failed"


def test_a_record_larger_than_a_chunk_is_refused():
    with pytest.raises(ValueError, match="more than a chunk"):
        chunk_records(big_records(1), 100)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.text(max_size=300)), max_size=60), st.integers(700, 5000))
def test_chunks_round_trip(items, max_bytes):
    recs = [{"name": f"r{i}", "order": i, "finishedMs": t, "message": m} for i, (t, m) in enumerate(items)]
    chunks = chunk_records(recs, max_bytes)
    assert all(len(c.encode("utf-8")) <= max_bytes for c in chunks)
    assert read_chunks(chunks) == sorted(recs, key=lambda r: r["order"])
