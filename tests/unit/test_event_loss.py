"""Event loss: kubelet events dropped or missed by the watch, and events expired before a restarted operator
read them. Each run still ends with a timeline that names where each boundary came from (a fallback source, or
a phase that `covers` the boundary it did not see), and what was observed before a restart is kept."""

from __future__ import annotations

import json

from startbench.core.contracts import ANNOTATION_OBSERVATIONS
from startbench.core.manifests import ANNOTATION_CREATED_MS, LABEL_BENCHMARK
from startbench.core.timeline import build_timeline
from startbench.runtime.observer import Observer, serialize

NAME = "b-img-n0-c1"
PULLED = 'Successfully pulled image "x" in 2s (2.5s including waiting). Image size: 10 bytes.'


def pod(state: dict | None = None, phase: str = "Pending", annotations: dict | None = None) -> dict:
    return {"metadata": {"name": NAME, "namespace": "ns", "uid": "u1", "labels": {LABEL_BENCHMARK: "b"},
                         "annotations": {ANNOTATION_CREATED_MS: "1000", **(annotations or {})}},
            "spec": {"nodeName": "n0"},
            "status": {"phase": phase,
                       "conditions": [{"type": "PodScheduled", "status": "True"}],
                       "containerStatuses": [{"name": "workload", "state": state or {"waiting": {
                           "reason": "ContainerCreating"}}}]}}


RUNNING = {"running": {"startedAt": "2026-11-28T00:00:10Z"}}
DONE = {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": "2026-11-28T00:00:10Z"}}
INVOLVED = {"kind": "Pod", "namespace": "ns", "name": NAME, "uid": "u1"}
EVENTS = [("Scheduled", "Successfully assigned ns/x to n0", 1100.0), ("Pulling", 'Pulling image "x"', 1500.0),
          ("Pulled", PULLED, 4000.0), ("Created", "Created container: workload", 4100.0),
          ("Started", "Started container workload", 4200.0)]


def _observe(events, pod_updates) -> Observer:
    """The watches' view: the pod's updates and the kubelet's events that reached the operator, in time order."""
    observer = Observer()
    timed = [(t, "pod", body) for t, body in pod_updates] + [(t, "event", (r, m)) for r, m, t in events]
    for arrival, kind, what in sorted(timed, key=lambda x: x[0]):
        if kind == "pod":
            observer.on_pod("MODIFIED", what, arrival)
        else:
            observer.on_event(INVOLVED, what[0], what[1], arrival)
    return observer


def _phases(observer: Observer) -> dict:
    return build_timeline(observer.pods_of("ns", "b")[NAME].obs).to_dict()["phases"]


UPDATES = [(1050.0, pod()), (4300.0, pod(RUNNING, "Running")), (5300.0, pod(DONE, "Succeeded"))]


def test_with_every_event_the_boundaries_come_from_the_watch_and_the_events():
    phases = _phases(_observe(EVENTS, UPDATES))
    assert phases["scheduling"]["source"] == "watch:PodScheduled"
    assert phases["waiting_to_pull"] == {"ms": 950.0, "source": "event:Pulled-duration"}
    assert phases["pulling"] == {"ms": 2000.0, "source": "event:Pulled"}
    assert phases["create_start"] == {"ms": 300.0, "source": "watch:ContainerRunning"}


def test_a_dropped_pulled_event_leaves_the_pull_start_to_its_fallback_and_names_what_it_covers():
    phases = _phases(_observe([e for e in EVENTS if e[0] != "Pulled"], UPDATES))
    # Pull started falls back to the Pulling event's arrival; pulled was not seen, so `pulling` covers the span
    # up to the container's start, and neither phase counts in the statistics.
    assert phases["waiting_to_pull"] == {"ms": 450.0, "source": "event:Pulling"}
    assert phases["pulling"] == {"ms": 2800.0, "source": "watch:ContainerRunning",
                                 "covers": ["pulling", "create_start"]}
    assert "create_start" not in phases


def test_a_missed_running_update_leaves_the_start_to_the_started_event():
    # The container started and ended between two watch updates (or the update was lost).
    updates = [(1050.0, pod()), (5300.0, pod(DONE, "Succeeded"))]
    phases = _phases(_observe(EVENTS, updates))
    assert phases["create_start"] == {"ms": 200.0, "source": "event:Started"}
    assert phases["pulling"]["source"] == "event:Pulled"


def test_with_every_kubelet_event_dropped_the_timeline_still_ends_at_the_watched_start():
    phases = _phases(_observe([], UPDATES))
    assert phases["scheduling"]["source"] == "watch:PodScheduled"
    assert phases["waiting_to_pull"] == {"ms": 3250.0, "source": "watch:ContainerRunning",
                                         "covers": ["waiting_to_pull", "pulling", "create_start"]}


def test_a_dropped_started_event_changes_nothing_where_the_watch_saw_the_start():
    assert _phases(_observe([e for e in EVENTS if e[0] != "Started"], UPDATES)) == _phases(_observe(EVENTS, UPDATES))


def test_events_expired_before_a_restarted_operator_read_them_lose_nothing_observed():
    # The first operator saw the pull and persisted its observations on the pod (the reconciler's
    # _persist_observations), then stopped before the container ran.
    first = _observe(EVENTS[:3], [(1050.0, pod())])
    persisted = serialize(first.pods_of("ns", "b")[NAME].obs)
    # An hour later (the API server's event TTL) the events are gone: the restarted operator lists the pod, with
    # its annotation, and no event at all.
    restarted = Observer()
    annotations = {ANNOTATION_OBSERVATIONS: persisted}
    restarted.on_pod(None, pod(annotations=annotations), 3_600_000.0)
    restarted.on_pod("MODIFIED", pod(DONE, "Succeeded", annotations), 3_601_000.0)
    obs = restarted.pods_of("ns", "b")[NAME].obs
    assert (obs.pulling_ms, obs.pulled_ms, obs.pull_seconds) == (1500.0, 4000.0, 2.0)
    timeline = build_timeline(obs).to_dict()
    assert timeline["phases"]["waiting_to_pull"]["source"] == "event:Pulled-duration"
    assert timeline["phases"]["pulling"] == {"ms": 2000.0, "source": "event:Pulled"}
    # Neither the running update nor the Started event was seen: the timeline ends where observation ended, and
    # says so, rather than inventing a start.
    assert timeline["end"] == "pulled" and "create_start" not in timeline["phases"]


def test_a_persisted_annotation_that_does_not_parse_starts_from_the_create_time():
    observer = Observer()
    observer.on_pod(None, pod(annotations={ANNOTATION_OBSERVATIONS: "{not json"}), 2000.0)
    obs = observer.pods_of("ns", "b")[NAME].obs
    assert obs.created_ms == 1000.0 and obs.pulled_ms is None
    assert json.loads(serialize(obs))["created_ms"] == 1000.0
