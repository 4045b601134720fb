"""One run's timeline: what the operator saw of a pod, turned into startup phases. Pure.

The operator feeds observations as they arrive, each stamped with its own clock in epoch milliseconds:
`observe_pod(obs, pod, arrival_ms)` for every watch event of the pod and `observe_event(obs, fact, arrival_ms)`
for every kubelet/scheduler event (kubelet_events.parse_event). Observations are frozen and serialisable
(`to_dict`/`from_dict`), so they can be kept on the pod and survive an operator restart.

`build_timeline(obs, report)` places the contract's boundaries

    created -> scheduled -> pull started -> pulled -> container started -> framework imported -> device ready
    -> first step

and names each phase after the boundary it starts from (scheduling, waiting_to_pull, pulling, create_start,
imports, device_init, first_step). Each boundary has one source:

    created             operator:create           the operator's clock just before the create call
    scheduled           watch:PodScheduled         arrival of the pod update with PodScheduled=True
                        (event:Scheduled)          or the scheduler's event, when the update was not seen
    pull started        event:Pulled-duration      Pulled arrival minus the pull's own duration (the message's
                                                   first duration; the wait behind other pulls stays in
                                                   waiting_to_pull, with sandbox creation)
                        (event:Pulling)            arrival of Pulling, when Pulled carried no duration
                        event:Pulled-present       a cache hit: no pull, so pulling is 0
    pulled              event:Pulled               arrival of the Pulled event
    container started   report:process_start       the container process's own start time, from the in-pod
                                                   report (the pod's clock)
                        (watch:ContainerRunning)   arrival of the pod update with the container running, when
                        (event:Started)            there is no report
    the last three      report:<mark>              the in-pod report's marks (the pod's clock)

Arrivals lag the moment they describe by the watch's latency; the in-pod marks are exact on the pod's
clock, which may differ from the operator's, and their differences are exact (monotonic). One clock:
`clock_check` bounds the offset between the two from facts both saw (no mark of the pod precedes the create
call; the process cannot start after the operator saw the container running; the report cannot be written
after the operator saw the container end). Where zero lies outside those bounds, the pod's marks are shifted to
the nearest bound, and the record says so (`clock: {offsetMs, lowerMs, upperMs, corrected}`). Boundaries must
not go backwards: where the pod's block of marks still starts before the operator's last boundary, the whole
block moves up to it (its own durations kept), and any other boundary earlier than the one before it is moved
up to it; each move is recorded as a clamp, so no phase is negative. A missing boundary
merges its two phases into the earlier one, whose `covers` then names both; summaries use only phases that
cover exactly themselves. The phases add up exactly to the total, created to the last boundary reached.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from startbench.core.kubelet_events import FactKind, KubeletFact
from startbench.core.cache import NodeEvidence, observed_cache
from startbench.core.contracts import CONTAINER, PHASES

BOUNDARIES = ("created", "scheduled", "pull_started", "pulled", "container_started", "framework_imported",
              "device_ready", "first_step")
REPORT_MARKS = ("framework_imported", "device_ready", "first_step")
# Waiting reasons of the container that end a run at once (the kubelet would only retry with back-off).
FATAL_WAITING = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull",
                 "CreateContainerConfigError", "CreateContainerError", "RunContainerError")


def _first(current: float | None, value: float) -> float:
    return value if current is None else current


def rfc3339_ms(text: Any) -> float | None:
    """Epoch milliseconds of a Kubernetes timestamp (RFC 3339, e.g. 2025-11-24T16:00:05Z); None if it is not one."""
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000.0
    except ValueError:
        return None




@dataclasses.dataclass(frozen=True)
class Observations:
    """What the operator saw of one run's pod, each time on its own clock (epoch ms) at arrival."""
    created_ms: float
    scheduled_ms: float | None = None  # watch: PodScheduled=True first seen
    scheduled_event_ms: float | None = None  # event: Scheduled
    node: str | None = None  # the node the pod was bound to
    unschedulable_message: str | None = None  # latest PodScheduled=False (Unschedulable) or FailedScheduling text
    pulling_ms: float | None = None
    pulled_ms: float | None = None
    cache_hit: bool | None = None
    pull_seconds: float | None = None
    pull_with_wait_seconds: float | None = None
    image_size_bytes: int | None = None
    started_event_ms: float | None = None
    running_ms: float | None = None  # watch: container running first seen
    started_at_ms: float | None = None  # container's startedAt (kubelet clock, whole seconds)
    terminated_ms: float | None = None  # watch: container terminated first seen
    exit_code: int | None = None
    terminated_reason: str | None = None  # Completed, Error, OOMKilled, ...
    termination_message: str | None = None  # the in-pod report (or the log tail, FallbackToLogsOnError)
    waiting_reason: str | None = None  # latest waiting reason of the container
    waiting_message: str | None = None
    fatal_event: str | None = None  # "Reason: message" of the first event that ends the run
    pod_phase: str | None = None
    pod_reason: str | None = None  # e.g. DeadlineExceeded, Evicted
    pod_message: str | None = None
    image_id: str | None = None  # the container's imageID (digest) as the runtime reports it
    # The node's cache evidence the operator annotated the pod with at creation (core/cache.py).
    image_on_node: bool | None = None
    node_digests: tuple[str, ...] | None = None
    purged: bool | None = None
    pulled_by: str | None = None
    deleting_ms: float | None = None  # watch: the pod's deletionTimestamp first seen (someone deleted it)
    missing_pull_secrets: tuple[str, ...] | None = None  # imagePullSecrets the kubelet could not read

    def evidence(self) -> NodeEvidence | None:
        if self.image_on_node is None:
            return None
        return NodeEvidence(self.image_on_node, tuple(self.node_digests or ()), bool(self.purged), self.pulled_by)

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()
                if v is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Observations":
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        for name in ("node_digests", "missing_pull_secrets"):
            if values.get(name) is not None:
                values[name] = tuple(values[name])
        return cls(**values)


def observe_event(obs: Observations, fact: KubeletFact, arrival_ms: float) -> Observations:
    """Fold one event of the pod into the observations (first arrival wins; failures keep the first)."""
    k = fact.kind
    if k is FactKind.SCHEDULED:
        return dataclasses.replace(obs, scheduled_event_ms=_first(obs.scheduled_event_ms, arrival_ms),
                                   node=obs.node or fact.node)
    if k is FactKind.FAILED_SCHEDULING:
        return dataclasses.replace(obs, unschedulable_message=fact.message)
    if k is FactKind.PULLING:
        return dataclasses.replace(obs, pulling_ms=_first(obs.pulling_ms, arrival_ms))
    if k in (FactKind.PULLED, FactKind.ALREADY_PRESENT):
        if obs.pulled_ms is not None:
            return obs
        return dataclasses.replace(obs, pulled_ms=arrival_ms, cache_hit=fact.cache_hit, pull_seconds=fact.pull_seconds,
                                   pull_with_wait_seconds=fact.pull_with_wait_seconds,
                                   image_size_bytes=fact.image_size_bytes)
    if k is FactKind.STARTED:
        return dataclasses.replace(obs, started_event_ms=_first(obs.started_event_ms, arrival_ms))
    if k is FactKind.MISSING_PULL_SECRETS:
        names = tuple(sorted(set(obs.missing_pull_secrets or ()) | set(fact.secrets)))
        return obs if names == (obs.missing_pull_secrets or ()) else dataclasses.replace(obs, missing_pull_secrets=names)
    if fact.fatal and obs.fatal_event is None:
        return dataclasses.replace(obs, fatal_event=f"{fact.kind.value}: {fact.message}")
    return obs


def observe_pod(obs: Observations, pod: Mapping[str, Any], arrival_ms: float) -> Observations:
    """Fold one watch event's pod body (camelCase, as Kopf and the API give it) into the observations."""
    status = pod.get("status") or {}
    spec = pod.get("spec") or {}
    changes: dict[str, Any] = {}
    if obs.image_on_node is None:
        evidence = NodeEvidence.from_annotations((pod.get("metadata") or {}).get("annotations"))
        if evidence is not None:
            changes.update(image_on_node=evidence.image_on_node, node_digests=evidence.digests,
                           purged=evidence.purged, pulled_by=evidence.pulled_by)
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled":
            if cond.get("status") == "True":
                changes["scheduled_ms"] = _first(obs.scheduled_ms, arrival_ms)
            elif cond.get("reason") == "Unschedulable":
                changes["unschedulable_message"] = (cond.get("message") or "Unschedulable")[:500]
    if spec.get("nodeName") and not obs.node:
        changes["node"] = spec["nodeName"]
    if (pod.get("metadata") or {}).get("deletionTimestamp") and obs.deleting_ms is None:
        changes["deleting_ms"] = arrival_ms
    changes["pod_phase"] = status.get("phase") or obs.pod_phase
    if status.get("reason"):
        changes["pod_reason"] = status["reason"]
        changes["pod_message"] = (status.get("message") or "")[:500]
    for cs in status.get("containerStatuses") or []:
        if cs.get("name") != CONTAINER:
            continue
        if cs.get("imageID"):
            changes["image_id"] = cs["imageID"]
        state = cs.get("state") or {}
        if "waiting" in state and state["waiting"]:
            changes["waiting_reason"] = state["waiting"].get("reason")
            changes["waiting_message"] = (state["waiting"].get("message") or "")[:500]
        if state.get("running") is not None and "running" in state:
            changes["running_ms"] = _first(obs.running_ms, arrival_ms)
            changes["started_at_ms"] = obs.started_at_ms or rfc3339_ms(state["running"].get("startedAt"))
        term = state.get("terminated")
        if term:
            # A container that started and ended between two updates leaves container_started unseen on
            # the watch: the Started event (or a merged phase) stands in, never this later arrival.
            changes["terminated_ms"] = _first(obs.terminated_ms, arrival_ms)
            changes["exit_code"] = term.get("exitCode")
            changes["terminated_reason"] = term.get("reason")
            changes["termination_message"] = term.get("message")
            changes["started_at_ms"] = obs.started_at_ms or rfc3339_ms(term.get("startedAt"))
    return dataclasses.replace(obs, **changes)


# --- the in-pod report, read tolerantly ------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ReportView:
    """What the operator takes from the in-pod report. `problem` says why the report was absent or not valid;
    a report that failed validation still gives its readable marks and metrics (and says so)."""
    present: bool
    valid: bool
    ok: bool | None = None
    failed_phase: str | None = None
    error: str | None = None
    marks_ms: Mapping[str, float] = dataclasses.field(default_factory=dict)
    metrics: Mapping[str, float | None] = dataclasses.field(default_factory=dict)
    device: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    framework: str | None = None
    problem: str | None = None


def _last_json_object(text: str) -> dict | None:
    stripped = text.strip()
    candidates = [stripped] + [line.strip() for line in reversed(stripped.splitlines())]
    for line in candidates:
        start = line.find("{")
        if start < 0:
            continue
        try:
            doc = json.loads(line[start:])
        except (json.JSONDecodeError, RecursionError):
            continue
        if isinstance(doc, dict) and ("marks_ms" in doc or "schema" in doc):
            return doc
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if value == value and abs(value) != float("inf") else None


def read_report(text: str | None) -> ReportView:
    """The in-pod report in a termination message (or log tail). Never raises."""
    if not text or not isinstance(text, str) or not text.strip():
        return ReportView(present=False, valid=False, problem="no report: the container wrote no termination message")
    problem = None
    try:
        from startbench.workload.report import ReportError, parse_report
        try:
            doc = parse_report(text)
        except ReportError as exc:
            doc, problem = _last_json_object(text), exc.reason
    except ImportError:  # pragma: no cover - the workload package ships with the operator
        doc, problem = _last_json_object(text), "report validator unavailable"
    if not isinstance(doc, dict):
        return ReportView(present=False, valid=False, problem=f"no report: {problem or 'no JSON object found'}"[:500])
    marks = doc.get("marks_ms") if isinstance(doc.get("marks_ms"), Mapping) else {}
    metrics = doc.get("metrics") if isinstance(doc.get("metrics"), Mapping) else {}
    ok = doc.get("ok") if isinstance(doc.get("ok"), bool) else None
    return ReportView(
        present=True, valid=problem is None, ok=ok,
        failed_phase=doc.get("failed_phase") if isinstance(doc.get("failed_phase"), str) else None,
        error=str(doc["error"])[:500] if doc.get("error") is not None else None,
        marks_ms={k: v for k, v in ((str(k), _number(v)) for k, v in marks.items()) if v is not None},
        metrics={str(k): _number(v) for k, v in metrics.items()},
        device=doc.get("device") if isinstance(doc.get("device"), Mapping) else {},
        framework=doc.get("framework") if isinstance(doc.get("framework"), str) else None,
        problem=problem[:500] if problem else None,
    )


# --- the timeline ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Phase:
    name: str
    ms: float | None  # None: not measured on its own (merged into an earlier phase, or not reached)
    source: str | None  # the source of the boundary that ends it
    covers: tuple[str, ...] = ()  # phases this span covers: (name,) normally, more after a missing boundary

    @property
    def exact(self) -> bool:
        return self.ms is not None and self.covers == (self.name,)


@dataclasses.dataclass(frozen=True)
class Clamp:
    boundary: str
    by_ms: float  # how far the boundary was moved later


@dataclasses.dataclass(frozen=True)
class ClockCheck:
    """The offset added to the pod's marks to put them on the operator's clock, and the bounds the facts allow.
    `upper_ms` is None when no fact bounds it from above (the container was never seen running or ended)."""
    offset_ms: float
    lower_ms: float
    upper_ms: float | None
    corrected: bool

    def to_dict(self) -> dict[str, Any]:
        return {"offsetMs": round(self.offset_ms, 3), "lowerMs": round(self.lower_ms, 3),
                "upperMs": None if self.upper_ms is None else round(self.upper_ms, 3), "corrected": self.corrected}


def clock_check(obs: Observations, marks: Mapping[str, float]) -> ClockCheck | None:
    """Bounds on (operator clock - pod clock) from what both clocks saw, and the offset to apply: 0 when 0 is
    within them, else the nearest bound. None without marks (no report, or one without times)."""
    values = [float(v) for v in marks.values() if v is not None and v == v]
    if not values:
        return None
    start = marks.get("process_start")
    lower = obs.created_ms - min(values)  # no mark of the pod is earlier than the create call
    uppers = []
    if start is not None and obs.running_ms is not None:
        uppers.append(obs.running_ms - float(start))  # the process ran before the watch showed it running
    if obs.terminated_ms is not None:
        uppers.append(obs.terminated_ms - max(values))  # the report was written before the container ended
    upper = min(uppers) if uppers else None
    offset = lower if lower > 0 else upper if upper is not None and upper < 0 else 0.0
    return ClockCheck(offset, lower, upper, offset != 0)


@dataclasses.dataclass(frozen=True)
class Timeline:
    phases: tuple[Phase, ...]  # all seven, in PHASES order
    total_ms: float  # created -> last boundary reached; equals the sum of the phases' ms
    end: str  # the last boundary reached
    cache_observed: str  # hit, miss, revalidated or unknown (core/cache.py), from the kubelet and the node
    clamps: tuple[Clamp, ...] = ()
    cache_evidence: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    clock: ClockCheck | None = None

    @property
    def time_to_first_step_ms(self) -> float | None:
        return self.total_ms if self.end == "first_step" else None

    def phase_seconds(self) -> dict[str, float]:
        """Seconds of each phase measured on its own (for metrics and summaries)."""
        return {p.name: p.ms / 1000.0 for p in self.phases if p.exact}

    def to_dict(self) -> dict[str, Any]:
        return {
            "phases": {p.name: {"ms": round(p.ms, 3), "source": p.source,
                                **({"covers": list(p.covers)} if p.covers != (p.name,) else {})}
                       for p in self.phases if p.ms is not None},
            "totalMs": round(self.total_ms, 3),
            "end": self.end,
            "cacheObserved": self.cache_observed,
            **({"cacheEvidence": {k: v for k, v in self.cache_evidence.items() if v is not None}}
               if self.cache_evidence else {}),
            **({"clamps": [{"boundary": c.boundary, "byMs": round(c.by_ms, 3)} for c in self.clamps]}
               if self.clamps else {}),
            **({"clock": self.clock.to_dict()} if self.clock is not None else {}),
        }


def _boundaries(obs: Observations, report: ReportView | None) -> list[tuple[float | None, str | None]]:
    b: list[tuple[float | None, str | None]] = [(obs.created_ms, "operator:create")]
    if obs.scheduled_ms is not None:
        b.append((obs.scheduled_ms, "watch:PodScheduled"))
    else:
        b.append((obs.scheduled_event_ms, "event:Scheduled" if obs.scheduled_event_ms is not None else None))
    if obs.cache_hit and obs.pulled_ms is not None:
        b.append((obs.pulled_ms, "event:Pulled-present"))
    elif obs.pulled_ms is not None and obs.pull_seconds is not None:
        b.append((obs.pulled_ms - obs.pull_seconds * 1000.0, "event:Pulled-duration"))
    else:
        b.append((obs.pulling_ms, "event:Pulling" if obs.pulling_ms is not None else None))
    b.append((obs.pulled_ms, "event:Pulled" if obs.pulled_ms is not None else None))
    marks = report.marks_ms if report is not None else {}
    if marks.get("process_start") is not None:
        # The container's process start, from the process itself: exact, where the kubelet's status update
        # arrives up to a second later (its sync period).
        b.append((marks["process_start"], "report:process_start"))
    elif obs.running_ms is not None:
        b.append((obs.running_ms, "watch:ContainerRunning"))
    else:
        b.append((obs.started_event_ms, "event:Started" if obs.started_event_ms is not None else None))
    for mark in REPORT_MARKS:
        value = marks.get(mark)
        b.append((value, f"report:{mark}" if value is not None else None))
    return b


def build_timeline(obs: Observations, report: ReportView | None = None) -> Timeline:
    """The phases of one run from its observations and (optionally) its in-pod report, on the operator's clock."""
    clock = clock_check(obs, report.marks_ms) if report is not None else None
    if clock is not None and clock.corrected:
        report = dataclasses.replace(report, marks_ms={k: v + clock.offset_ms for k, v in report.marks_ms.items()
                                                       if v is not None})
    raw = _boundaries(obs, report)
    clamps: list[Clamp] = []
    # The pod's marks are one block on one (monotonic) clock: where the block still starts before the last
    # boundary the operator saw, the whole block moves up (its own durations stay exact) and the move is a clamp.
    pod = [i for i, (v, s) in enumerate(raw) if v is not None and (s or "").startswith("report:")]
    seen = [v for v, s in raw[:pod[0]] if v is not None] if pod else []
    if pod and seen and raw[pod[0]][0] < max(seen):
        lift = max(seen) - raw[pod[0]][0]
        clamps.append(Clamp(BOUNDARIES[pod[0]], lift))
        raw = [(v + lift, s) if i in pod else (v, s) for i, (v, s) in enumerate(raw)]
    known: list[tuple[int, float, str]] = []
    for i, (value, source) in enumerate(raw):
        if value is None or value != value:  # None or NaN
            continue
        if known and value < known[-1][1]:
            clamps.append(Clamp(BOUNDARIES[i], known[-1][1] - value))
            value = known[-1][1]
        known.append((i, float(value), source or ""))
    phases: list[Phase] = [Phase(name, None, None, ()) for name in PHASES]
    for (i, start, _), (j, end, source) in zip(known, known[1:]):
        phases[i] = Phase(PHASES[i], end - start, source, tuple(PHASES[i:j]))
    last_index, last_value, _ = known[-1]
    cache, evidence = observed_cache(obs.cache_hit, obs.evidence(), obs.image_id)
    return Timeline(phases=tuple(phases), total_ms=last_value - known[0][1], end=BOUNDARIES[last_index],
                    cache_observed=cache, clamps=tuple(clamps), cache_evidence=evidence, clock=clock)
