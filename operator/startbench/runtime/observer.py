"""What the operator has seen of each run pod, fed by the pod and event watches and read by the reconciler.

The watches call `on_pod` and `on_event` as updates arrive, each stamped with the operator's clock at
arrival; `timeline.observe_*` fold them into frozen Observations. The reconciler persists changed
observations on the pod (annotation startbench.dev/observations), so an operator that is killed and
started again continues from them instead of from the moment it came back.

Events can arrive before the pod's first watch update; they wait here (bounded, for a minute) until it does.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import threading
import time
from collections.abc import Mapping
from typing import Any

from startbench.core.kubelet_events import parse_event
from startbench.core.contracts import ANNOTATION_CREATED_MS, ANNOTATION_OBSERVATIONS, LABEL_BENCHMARK
from startbench.core.timeline import Observations, rfc3339_ms, observe_event, observe_pod

# What a restarted operator cannot learn again from the pod it lists: the arrival stamps of watch updates and
# events, and what only the events said. A change of anything else (the phase, a waiting reason, the exit code:
# the pod itself still says them) is persisted with the next change of these, never on its own: at scale each
# annotation patch is a request, and a pod update that comes back to every watcher.
RESTART_FACTS = ("created_ms", "scheduled_ms", "scheduled_event_ms", "pulling_ms", "pulled_ms", "cache_hit",
                 "pull_seconds", "pull_with_wait_seconds", "image_size_bytes", "started_event_ms", "running_ms",
                 "terminated_ms", "fatal_event", "deleting_ms", "missing_pull_secrets", "unschedulable_message")
EARLY_EVENT_SECONDS = 60.0
EARLY_EVENT_LIMIT = 10_000


def now_ms() -> float:
    return time.time() * 1000.0


@dataclasses.dataclass
class PodEntry:
    namespace: str
    name: str
    benchmark: str
    body: dict[str, Any]
    obs: Observations
    persisted: Observations | None  # what the pod's annotation holds
    deleted: bool = False
    persisted_ms: float | None = None  # when this operator last persisted them


def _initial_observations(body: Mapping[str, Any]) -> tuple[Observations, Observations | None]:
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    stored = annotations.get(ANNOTATION_OBSERVATIONS)
    if stored:
        try:
            obs = Observations.from_dict(json.loads(stored))
            return obs, obs
        except (ValueError, TypeError):
            pass
    try:
        created = float(annotations[ANNOTATION_CREATED_MS])
    except (KeyError, ValueError):
        created = rfc3339_ms((body.get("metadata") or {}).get("creationTimestamp")) or now_ms()
    return Observations(created_ms=created), None


class Observer:
    def __init__(self):
        self._lock = threading.Lock()
        self._pods: dict[tuple[str, str], PodEntry] = {}
        # Events that arrived before their pod: (arrival, pod uid or "", reason, message).
        self._early: dict[tuple[str, str], list[tuple[float, str, str, str]]] = {}

    def on_pod(self, event_type: str | None, body: Mapping[str, Any], arrival_ms: float) -> None:
        meta = body.get("metadata") or {}
        benchmark = (meta.get("labels") or {}).get(LABEL_BENCHMARK)
        if not benchmark:
            return
        key = (meta.get("namespace", ""), meta.get("name", ""))
        with self._lock:
            entry = self._pods.get(key)
            if entry is None:
                obs, persisted = _initial_observations(body)
                entry = PodEntry(key[0], key[1], benchmark, dict(body), obs, persisted)
                self._pods[key] = entry
                uid = meta.get("uid")
                for arrival, event_uid, reason, message in self._early.pop(key, []):
                    # Names repeat (a re-applied Benchmark plans the same run names): an event of an earlier
                    # pod of this name must not land in this pod's timeline.
                    if not event_uid or not uid or event_uid == uid:
                        entry.obs = observe_event(entry.obs, parse_event(reason, message), arrival)
            elif (meta.get("uid") and entry.body.get("metadata", {}).get("uid") not in (None, meta.get("uid"))):
                # Same name, new pod (an operator re-created a run): start over from this pod.
                obs, persisted = _initial_observations(body)
                entry.obs, entry.persisted, entry.deleted = obs, persisted, False
            entry.body = dict(body)
            if event_type == "DELETED":
                entry.deleted = True
            else:
                entry.obs = observe_pod(entry.obs, body, arrival_ms)

    def on_event(self, involved: Mapping[str, Any], reason: str | None, message: str | None, arrival_ms: float) -> None:
        if involved.get("kind") != "Pod":
            return
        key = (involved.get("namespace", ""), involved.get("name", ""))
        with self._lock:
            entry = self._pods.get(key)
            if entry is not None:
                if involved.get("uid") and entry.body.get("metadata", {}).get("uid") not in (None, involved["uid"]):
                    return  # an event of an earlier pod of the same name
                entry.obs = observe_event(entry.obs, parse_event(reason, message), arrival_ms)
                return
            self._expire_early(arrival_ms)
            if sum(len(v) for v in self._early.values()) < EARLY_EVENT_LIMIT:
                self._early.setdefault(key, []).append((arrival_ms, involved.get("uid") or "", reason or "",
                                                        message or ""))

    def _expire_early(self, now: float) -> None:
        cutoff = now - EARLY_EVENT_SECONDS * 1000.0
        for key in [k for k, v in self._early.items() if v[-1][0] < cutoff]:
            del self._early[key]

    def pods_of(self, namespace: str, benchmark: str) -> dict[str, PodEntry]:
        """Snapshot of the benchmark's pods by name (copies: safe to read without the lock)."""
        with self._lock:
            return {e.name: copy.copy(e) for e in self._pods.values()
                    if e.namespace == namespace and e.benchmark == benchmark}

    def dirty(self, namespace: str, benchmark: str, now_ms: float | None = None,
              every_ms: float = 0.0) -> list[PodEntry]:
        """Pods whose observations changed, in what a restart could not learn again (RESTART_FACTS), since they
        were last persisted, and not persisted in the last `every_ms` before `now_ms`."""
        with self._lock:
            return [dataclasses.replace(e) for e in self._pods.values()
                    if e.namespace == namespace and e.benchmark == benchmark and not e.deleted
                    and e.obs != e.persisted and _facts(e.obs) != _facts(e.persisted)
                    and (now_ms is None or e.persisted_ms is None or now_ms - e.persisted_ms >= every_ms)]

    def mark_persisted(self, namespace: str, name: str, obs: Observations, at_ms: float | None = None) -> None:
        with self._lock:
            entry = self._pods.get((namespace, name))
            if entry is not None:
                entry.persisted = obs
                entry.persisted_ms = at_ms

    def forget(self, namespace: str, name: str) -> None:
        with self._lock:
            self._pods.pop((namespace, name), None)

    def forget_benchmark(self, namespace: str, benchmark: str) -> None:
        with self._lock:
            for key in [k for k, e in self._pods.items() if e.namespace == namespace and e.benchmark == benchmark]:
                del self._pods[key]


def _facts(obs: Observations | None) -> tuple:
    return tuple(getattr(obs, name, None) for name in RESTART_FACTS) if obs is not None else ()


def serialize(obs: Observations) -> str:
    return json.dumps(obs.to_dict(), separators=(",", ":"), sort_keys=True)
