"""The Benchmark's status, computed from run records. Pure: records in, status fields out; the caller patches.

Pieces, each safe to call again with the same input (same output, so a patch applied twice is a no-op):

- `run_outcome(obs, report, ...)`: whether a run has ended, with result (Succeeded/Failed), reason and message.
- `run_record(run, obs, report, outcome)`: the compact per-run record kept in the records ConfigMaps.
- `summaries(records)`, `evaluate_thresholds(spec, records)`: per image x cache x metric statistics and checks.
- `benchmark_phase(...)`, `set_condition(...)`, `progress_status(...)`: the status fields and conditions.
Records in ConfigMap-sized chunks are records.py.

Conditions (metav1.Condition shape): `Running` (runs in flight or pending), `Complete` (every run ended),
`ThresholdsMet` (True/False once complete, Unknown before or without data), `Failed` (True when the benchmark
cannot run at all or every run failed; its message says what to change).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from startbench.core.cache import counts_as
from startbench.core.contracts import UNKNOWN
from startbench.core.kubelet_events import failure_hint, parse_event
from startbench.core.manifests import DEADLINE_MARGIN_SECONDS
from startbench.core.planner import Run
from startbench.core.contracts import PHASE_BY_CAMEL, PHASE_CAMEL, PHASES, TIME_TO_FIRST_STEP
from startbench.core.spec import BenchmarkSpec
from startbench.core.stats import summarize
from startbench.core.timeline import FATAL_WAITING, Observations, ReportView, build_timeline

SUCCEEDED, FAILED = "Succeeded", "Failed"
# Benchmark phases (status.phase).
PENDING, BUILDING, RUNNING, PARTIALLY_FAILED = "Pending", "Building", "Running", "PartiallyFailed"
BENCHMARK_PHASES = (PENDING, BUILDING, RUNNING, SUCCEEDED, PARTIALLY_FAILED, FAILED)
# Condition types.
COND_RUNNING, COND_COMPLETE, COND_THRESHOLDS, COND_FAILED = "Running", "Complete", "ThresholdsMet", "Failed"
# Summary metrics: the total, then each phase (camelCase, as in the spec's thresholds).
SUMMARY_METRICS = (TIME_TO_FIRST_STEP,) + tuple(PHASE_CAMEL[p] for p in PHASES)


# --- one run's outcome ------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Outcome:
    result: str  # Succeeded or Failed
    reason: str  # CamelCase: Completed, ErrImagePull, ImagePullBackOff, InvalidImageName, Unschedulable, OOMKilled,
    #              Error, WorkloadFailed, NoReport, DeadlineExceeded, Timeout, Evicted, PodDeleted, ...
    message: str  # for a person: what happened and, for a failure, what to change


def run_outcome(obs: Observations, report: ReportView | None, now_ms: float, timeout_seconds: float,
                expects_report: bool = True, deleted: bool = False, simulated: bool = False,
                memory_limit: str | None = None) -> Outcome | None:
    """The run's outcome if it has ended, else None (still going). Each failure's message says what to change.

    The run's time limit is the operator's: a run that has not ended `timeout_seconds` after its pod's creation
    ends here (Unschedulable, or Timeout with the stage it was in), and the caller deletes its pod. The pod's
    activeDeadlineSeconds is a later backstop (manifests.DEADLINE_MARGIN_SECONDS): DeadlineExceeded means the
    kubelet stopped the pod because the operator was not there to end the run in time.

    `expects_report`: False for framework `none` (the image's own entry point writes no report).
    `simulated`: the node is simulated (KWOK, contracts.is_simulated) and runs no container, so no report can
    exist; such a run succeeds on exit 0 and says so, its timeline ending at container start.
    `deleted`: the watch saw the pod go (a pod being deleted, with its deletionTimestamp, counts too).
    `memory_limit`: spec.workload.resources.limits.memory, for the OOMKilled message."""
    if obs.fatal_event or obs.waiting_reason in FATAL_WAITING:
        reason = obs.waiting_reason if obs.waiting_reason in FATAL_WAITING else (obs.fatal_event or "Failed").split(":")[0]
        detail = obs.waiting_message or obs.fatal_event or reason
        fact = parse_event("Failed", f"Error: {reason}") if reason != "Failed" else None
        hint = failure_hint(fact) if fact else ""
        if obs.missing_pull_secrets and reason in PULL_FAILURES:
            hint = (f"the kubelet could not read Secret(s) {', '.join(obs.missing_pull_secrets)} named in "
                    f"spec.imagePullSecrets: create them in the Benchmark's namespace. {hint}").strip()
        return Outcome(FAILED, reason, _join(detail, hint))
    terminated = obs.terminated_ms is not None or obs.pod_phase in (SUCCEEDED, FAILED)
    exit_code = obs.exit_code if obs.exit_code is not None else (0 if obs.pod_phase == SUCCEEDED else None)
    if obs.pod_reason == "DeadlineExceeded" and obs.pod_phase == FAILED:
        # Before the report: a workload stopped by SIGTERM reports ok: false, yet the deadline is why it stopped.
        return Outcome(FAILED, "DeadlineExceeded", _join(
            f"the kubelet stopped the pod at its activeDeadlineSeconds (spec.runTimeoutSeconds {timeout_seconds:g}s "
            f"+ {DEADLINE_MARGIN_SECONDS}s, counted from the pod's start on its node) while {_where(obs, report)}; "
            "the operator ends a run at spec.runTimeoutSeconds itself, so it was not running then",
            "Raise spec.runTimeoutSeconds if the run needs longer, and keep the operator running"))
    if (deleted or obs.deleting_ms is not None) and not (terminated and exit_code == 0):
        return Outcome(FAILED, "PodDeleted", _join(
            f"the run's pod was deleted before the run ended, while {_where(obs, report)} (not by the operator: "
            "`kubectl delete`, a node drain, an eviction)", "The run is not repeated: apply the Benchmark again "
            "under a new name to measure it, and leave its pods alone while it runs"))
    if terminated and obs.exit_code is None and obs.pod_phase == FAILED and obs.pod_reason:
        return Outcome(FAILED, obs.pod_reason, obs.pod_message or obs.pod_reason)
    if terminated:
        if obs.terminated_reason == "OOMKilled":
            if memory_limit:
                return Outcome(FAILED, "OOMKilled", "the container ran out of memory and was killed (OOMKilled) at "
                                                    "its limit spec.workload.resources.limits.memory "
                                                    f"({memory_limit}): raise that limit, or lower "
                                                    "spec.workload.batchSize")
            return Outcome(FAILED, "OOMKilled", "the container ran out of memory and was killed (OOMKilled) with no "
                                                "memory limit of its own (the node's memory ran out): lower "
                                                "spec.workload.batchSize, or set spec.workload.resources.requests."
                                                "memory so the scheduler reserves it, or use nodes with more memory")
        if report is not None and report.present and report.ok is False:
            where = f" before mark {report.failed_phase}" if report.failed_phase else ""
            error = report.error or "no error given"
            return Outcome(FAILED, "WorkloadFailed", _join(f"the workload failed{where}: {error}",
                                                           _workload_hint(error)))
        if exit_code == 0:
            if not expects_report:
                return Outcome(SUCCEEDED, "Completed", "the container exited 0 (no workload report expected)")
            if simulated and (report is None or not report.present):
                return Outcome(SUCCEEDED, "Completed", "simulated node: no container ran, so there is no workload "
                                                       "report and the timeline ends at container start")
            if report is None or not report.present:
                why = report.problem if report is not None and report.problem else "no report"
                return Outcome(FAILED, "NoReport", f"the container exited 0 without a workload report ({why}); the "
                                                   "timeline ends at container start. The workload writes a report on "
                                                   "every exit, so either the image's `python -m startbench.workload` "
                                                   "is not startbench's workload (rebuild the image with it, or set "
                                                   "the entry's framework to none), or spec.workload.args stopped it "
                                                   "before it ran (e.g. --help)")
            note = f" (report not fully valid: {report.problem})" if not report.valid else ""
            return Outcome(SUCCEEDED, "Completed", "the workload reached its first step and finished" + note)
        reason = obs.terminated_reason or "Error"
        if report is not None and report.error:
            said = f": {report.error}"
        elif obs.termination_message and obs.termination_message.strip():  # the log's tail (FallbackToLogsOnError)
            said = f"; its last output: {' | '.join(obs.termination_message.strip().splitlines()[-3:])[-300:]}"
        else:
            said = ""
        return Outcome(FAILED, "Error" if reason in ("Error", "Completed") else reason,
                       f"the container exited with code {exit_code}{said}. It crashed: fix the image's entry point or "
                       "spec.workload.args (`kubectl logs` on the kept pod has the whole output)")
    if now_ms - obs.created_ms > timeout_seconds * 1000.0:
        limit = f"did not finish within spec.runTimeoutSeconds ({timeout_seconds:g}s) of its pod's creation"
        if obs.scheduled_ms is None and obs.scheduled_event_ms is None and obs.unschedulable_message:
            fact = parse_event("FailedScheduling", obs.unschedulable_message)
            return Outcome(FAILED, "Unschedulable", _join(f"{limit}: never scheduled: {obs.unschedulable_message}",
                                                          failure_hint(fact)))
        if obs.waiting_reason and obs.waiting_reason != "ContainerCreating":
            return Outcome(FAILED, obs.waiting_reason, f"{limit}: container waiting: {obs.waiting_reason} "
                                                        f"{obs.waiting_message or ''}".strip())
        stage = _stage(obs)
        return Outcome(FAILED, "Timeout", _join(f"{limit} ({stage}); the operator ended it and deleted its pod",
                                                TIMEOUT_HINTS[stage]))
    return None


PULL_FAILURES = ("ErrImagePull", "ImagePullBackOff")
# What to change when a run times out, by the stage it was in (_stage).
TIMEOUT_HINTS = {
    "not scheduled": "Check that the run's node still exists and is Ready, and spec.nodes",
    "image not pulled": "The pull takes longer than that: raise spec.runTimeoutSeconds, or use a smaller image "
                        "or a registry closer to the nodes",
    "container not started": "The container did not start: `kubectl describe pod` says why; raise "
                             "spec.runTimeoutSeconds if it is only slow",
    "workload still running": "Raise spec.runTimeoutSeconds, or lower spec.workload.steps or batchSize (for "
                              "framework none: make the image's entry point end)",
}


def _stage(obs: Observations) -> str:
    """How far a run got that did not end by itself: the last boundary the operator saw."""
    if obs.scheduled_ms is None and obs.scheduled_event_ms is None and obs.node is None:
        return "not scheduled"
    if obs.pulled_ms is None:
        return "image not pulled"
    if obs.running_ms is None and obs.started_event_ms is None and obs.terminated_ms is None:
        return "container not started"
    return "workload still running"


def _where(obs: Observations, report: ReportView | None) -> str:
    """_stage, and for a workload that was stopped the mark it had not reached yet (its report says)."""
    stage = _stage(obs)
    if stage == "workload still running" and report is not None and report.present and report.failed_phase:
        return f"{stage} (stopped before mark {report.failed_phase})"
    return stage


def _workload_hint(error: str) -> str:
    """What to change for a workload that failed with `error` (its report's)."""
    if "--fail-at" in error or "STARTBENCH_WORKLOAD_FAIL_AT" in error:
        return "The failure was injected on purpose: remove --fail-at from spec.workload.args"
    if error.startswith("invalid arguments"):
        return "Fix spec.workload.args (the workload refused them)"
    if "SIGTERM" in error:
        return "Something stopped the container (SIGTERM): check `kubectl describe pod` and the node"
    return ("Read the error (`kubectl logs` on the kept pod has the traceback): check spec.workload (model, "
            "precision, batchSize) and that the image's framework works on the node")


def rejection_message(refusal: str) -> str:
    """The PodRejected message: the API server's refusal and what to change, by what refused the pod."""
    if "exceeded quota" in refusal:
        hint = ("A ResourceQuota in the Benchmark's namespace refuses the pod: lower spec.workload.resources (or "
                "spec.nodes.gpusPerPod, or spec.parallelism, which sets how many pods count at once), or raise the "
                "quota (`kubectl describe resourcequota`)")
    elif "failed quota" in refusal and "must specify" in refusal:
        hint = ("A ResourceQuota in the Benchmark's namespace requires every pod to state the resources it names: "
                "set them in spec.workload.resources (requests and limits)")
    elif "LimitRange" in refusal or ("maximum" in refusal and "per Container" in refusal):
        hint = "A LimitRange in the Benchmark's namespace refuses the pod: fit spec.workload.resources to it"
    else:
        hint = "Fix the spec field the message names"
    return _join(refusal, hint)


def _join(detail: str, hint: str) -> str:
    return f"{detail.rstrip('. ')}. {hint}"[:1000] if hint else detail[:1000]


# --- records --------------------------------------------------------------------------------------------------

def run_record(run: Run, obs: Observations, report: ReportView | None, outcome: Outcome,
               finished_ms: float) -> dict[str, Any]:
    """The record of one ended run (compact JSON, camelCase), as stored in the records ConfigMaps."""
    tl = build_timeline(obs, report)
    record: dict[str, Any] = {
        # `cache` is the state observed (core/cache.py); the one asked for stays beside it.
        "name": run.name, "image": run.image, "node": obs.node or run.node, "cache": tl.cache_observed,
        "cacheAsked": run.cache, "repetition": run.repetition, "order": run.order,
        "result": outcome.result, "reason": outcome.reason, "message": outcome.message[:1000],
        "createdMs": obs.created_ms, "finishedMs": finished_ms,
        "timeline": tl.to_dict(),
    }
    ttfs = tl.time_to_first_step_ms
    if ttfs is not None:
        record["timeToFirstStepMs"] = round(ttfs, 3)
    pull = {"seconds": obs.pull_seconds, "withWaitSeconds": obs.pull_with_wait_seconds,
            "imageSizeBytes": obs.image_size_bytes, "imageID": obs.image_id}
    pull = {k: v for k, v in pull.items() if v is not None}
    if pull:
        record["pull"] = pull
    if report is not None and report.present:
        record["report"] = {
            "valid": report.valid, "ok": report.ok,
            **({"problem": report.problem} if report.problem else {}),
            **({"failedPhase": report.failed_phase} if report.failed_phase else {}),
            "metrics": {k: v for k, v in report.metrics.items() if v is not None},
            **({"device": dict(report.device)} if report.device else {}),
        }
    else:
        record["report"] = {"present": False, "problem": (report.problem if report else None) or "no report"}
    return record


def _observed(record: Mapping[str, Any]) -> str:
    return (record.get("timeline") or {}).get("cacheObserved", UNKNOWN)


def _metric_seconds(record: Mapping[str, Any], metric: str) -> float | None:
    if metric == "timeToFirstStep":
        ms = record.get("timeToFirstStepMs")
        return None if ms is None else ms / 1000.0
    phase = (record.get("timeline") or {}).get("phases", {}).get(PHASE_BY_CAMEL[metric])
    if not phase or "covers" in phase:  # absent, or merged with a neighbour: not this phase alone
        return None
    return phase["ms"] / 1000.0


def _round(x: float) -> float:
    return round(x, 3)


def summaries(records: Iterable[Mapping[str, Any]], image_order: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Count and p50/p90/p99/min/max (seconds) per image x observed cache state x metric.

    Phases count from every run that measured them on their own; timeToFirstStep from runs that reached the
    first step. The cache state is the one the kubelet reported (hit, miss, unknown), not the one asked for.
    """
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["image"], _observed(r)), []).append(r)
    rank = {name: i for i, name in enumerate(image_order)}
    out = []
    for image, cache in sorted(groups, key=lambda k: (rank.get(k[0], len(rank)), k[0], k[1])):
        for metric in SUMMARY_METRICS:
            s = summarize(_metric_seconds(r, metric) for r in groups[(image, cache)])
            if s is None:
                continue
            out.append({"image": image, "cache": cache, "metric": metric, "count": s.count,
                        "p50Seconds": _round(s.p50), "p90Seconds": _round(s.p90), "p99Seconds": _round(s.p99),
                        "minSeconds": _round(s.min), "maxSeconds": _round(s.max)})
    return out


def evaluate_thresholds(spec: BenchmarkSpec, records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One result per threshold and image it applies to (a threshold without `image` applies to each image).

    `met` is True or False, or None when no run measured the metric yet. When the threshold names a cache state,
    only runs that observed it count: `cold`, runs that downloaded the image; `warm`, runs that found it present.
    """
    records = list(records)
    results = []
    for t in spec.thresholds:
        for image in ([t.image] if t.image else [e.name for e in spec.images]):
            values = [_metric_seconds(r, t.metric) for r in records
                      if r["image"] == image and counts_as(_observed(r), t.cache)]
            s = summarize(values)
            observed = None if s is None else s.get(t.quantile)
            results.append({
                "metric": t.metric, "quantile": t.quantile, "maxSeconds": t.max_seconds, "image": image,
                **({"cache": t.cache} if t.cache else {}),
                "count": 0 if s is None else s.count,
                **({"observedSeconds": _round(observed)} if observed is not None else {}),
                "met": None if observed is None else observed <= t.max_seconds,
            })
    return results


def threshold_condition(results: Sequence[Mapping[str, Any]], complete: bool) -> tuple[str, str, str]:
    """(status, reason, message) of the ThresholdsMet condition: Unknown until every run has ended (with or
    without thresholds, so `kubectl wait --for=condition=ThresholdsMet` never returns before the runs end)."""
    if not results:
        if not complete:
            return "Unknown", "Running", "the spec sets no thresholds; this turns True when every run has ended"
        return "True", "NoThresholds", "the spec sets no thresholds"
    failed = [r for r in results if r["met"] is False]
    unknown = [r for r in results if r["met"] is None]

    def say(r: Mapping[str, Any]) -> str:
        cache = f" ({r['cache']})" if r.get("cache") else ""
        got = f"{r['observedSeconds']:g}s" if "observedSeconds" in r else "no data"
        return f"{r['quantile']} {r['metric']} of {r['image']}{cache} is {got}, limit {r['maxSeconds']:g}s"

    if not complete:
        return "Unknown", "Running", f"{len(results)} threshold check(s) run when every run has ended"
    if failed:
        return "False", "ThresholdExceeded", "; ".join(say(r) for r in failed)[:1000]
    if unknown:
        return "Unknown", "NoData", "; ".join(say(r) for r in unknown)[:1000]
    return "True", "AllMet", f"{len(results)} threshold check(s) met"


# --- benchmark status -----------------------------------------------------------------------------------------

def benchmark_phase(total: int, succeeded: int, failed: int, running: int, fatal: bool = False,
                    building: bool = False) -> str:
    """Pending (nothing created), Building (images being built), Running, or once every run has ended:
    Succeeded (no run failed), Failed (no run succeeded, or `fatal`) or PartiallyFailed."""
    if fatal:
        return FAILED
    if building:
        return BUILDING
    if total == 0 or succeeded + failed < total:
        return RUNNING if running or succeeded or failed else PENDING
    if failed == 0:
        return SUCCEEDED
    return FAILED if succeeded == 0 else PARTIALLY_FAILED


def progress(done: int, total: int) -> str:
    return f"{done}/{total}"


def set_condition(conditions: Sequence[Mapping[str, Any]] | None, type_: str, status: str, reason: str,
                  message: str, generation: int, now: str) -> list[dict[str, Any]]:
    """Conditions with `type_` set. lastTransitionTime changes only when the status changes, so setting the same
    condition twice gives an equal list (idempotent). Other conditions keep their order."""
    if status not in ("True", "False", "Unknown"):
        raise ValueError(f"condition status must be True, False or Unknown, not {status!r}")
    out, found = [], False
    for c in conditions or ():
        c = dict(c)
        if c.get("type") == type_:
            found = True
            changed = c.get("status") != status
            c.update(status=status, reason=reason, message=message[:32768], observedGeneration=generation)
            if changed or not c.get("lastTransitionTime"):
                c["lastTransitionTime"] = now
        out.append(c)
    if not found:
        out.append({"type": type_, "status": status, "reason": reason, "message": message[:32768],
                    "observedGeneration": generation, "lastTransitionTime": now})
    return out


def get_condition(conditions: Sequence[Mapping[str, Any]] | None, type_: str) -> Mapping[str, Any] | None:
    return next((c for c in conditions or () if c.get("type") == type_), None)


def progress_status(spec: BenchmarkSpec, runs: Sequence[Run], records: Sequence[Mapping[str, Any]], running: int,
                    conditions: Sequence[Mapping[str, Any]] | None, generation: int, now: str) -> dict[str, Any]:
    """The status fields that follow from the plan and the records: counts, progress, phase, summaries,
    thresholds, p50 time to first step and the Running/Complete/ThresholdsMet/Failed conditions.

    Fields the caller owns (nodes, images, recordsConfigMaps, startedAt, finishedAt) are not touched.
    """
    names = {r.name for r in runs}
    latest = {r["name"]: r for r in records if r["name"] in names}
    total = len(runs)
    succeeded = sum(1 for r in latest.values() if r["result"] == SUCCEEDED)
    failed = len(latest) - succeeded
    done = succeeded + failed
    phase = benchmark_phase(total, succeeded, failed, running)
    complete = total > 0 and done == total
    thresholds = evaluate_thresholds(spec, latest.values())
    conds = set_condition(conditions, COND_RUNNING, "False" if complete else "True",
                          "AllRunsEnded" if complete else "RunsInProgress",
                          f"{done} of {total} runs ended, {running} in flight", generation, now)
    conds = set_condition(conds, COND_COMPLETE, "True" if complete else "False",
                          phase if complete else "RunsInProgress", f"{done} of {total} runs ended: {succeeded} "
                          f"succeeded, {failed} failed", generation, now)
    conds = set_condition(conds, COND_THRESHOLDS, *threshold_condition(thresholds, complete), generation, now)
    if phase == FAILED:
        conds = set_condition(conds, COND_FAILED, "True", "AllRunsFailed", failure_summary(latest.values()),
                              generation, now)
    elif get_condition(conds, COND_FAILED) is not None:
        conds = set_condition(conds, COND_FAILED, "False", "RunsSucceeding", "at least one run has succeeded"
                              if succeeded else "no run has failed for good", generation, now)
    ttfs = summarize(r["timeToFirstStepMs"] / 1000.0 if r.get("timeToFirstStepMs") is not None else None
                     for r in latest.values())
    out: dict[str, Any] = {
        "phase": phase, "observedGeneration": generation, "progress": progress(done, total), "total": total,
        "succeeded": succeeded, "failed": failed, "running": running, "pending": max(total - done - running, 0),
        "summaries": summaries(latest.values(), [e.name for e in spec.images]),
        "thresholds": thresholds, "conditions": conds,
        "p50TimeToFirstStepSeconds": None if ttfs is None else _round(ttfs.p50),
        "clockCorrected": sum(1 for r in latest.values()
                              if ((r.get("timeline") or {}).get("clock") or {}).get("corrected")),
    }
    if complete and failed:  # why, in one line, where `kubectl get` and `describe` show it
        out["message"] = failure_summary(latest.values())
    return out


def failure_summary(records: Iterable[Mapping[str, Any]], most: int = 3) -> str:
    """One line on the failed runs: how many of how many, the top reasons with their counts, and the message of
    the first run that failed for the top reason (run messages say what to change)."""
    records = list(records)
    failed = sorted((r for r in records if r["result"] != SUCCEEDED), key=lambda r: r.get("order", 0))
    if not failed:
        return ""
    counts: dict[str, int] = {}
    for r in failed:
        counts[r["reason"]] = counts.get(r["reason"], 0) + 1
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    reasons = ", ".join(f"{n} {reason}" for reason, n in top[:most])
    if len(top) > most:
        reasons += f", {sum(n for _, n in top[most:])} other"
    first = next(r for r in failed if r["reason"] == top[0][0])
    whole = "every run" if len(failed) == len(records) else f"{len(failed)} of {len(records)} runs"
    return f"{whole} failed ({reasons}); {first['name']}: {first['message']}"[:1000]


def failed_status(conditions: Sequence[Mapping[str, Any]] | None, reason: str, message: str, generation: int,
                  now: str) -> dict[str, Any]:
    """Status of a benchmark that cannot run at all (a spec the cluster cannot satisfy): phase Failed and a
    Failed condition whose message says what to change."""
    conds = set_condition(conditions, COND_FAILED, "True", reason, message, generation, now)
    conds = set_condition(conds, COND_RUNNING, "False", reason, "the benchmark cannot run", generation, now)
    return {"phase": FAILED, "observedGeneration": generation, "message": message[:1000], "conditions": conds}
