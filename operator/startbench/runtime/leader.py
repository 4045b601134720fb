"""Leader election on a coordination.k8s.io/v1 Lease, so that of several operator replicas exactly one runs Kopf.

Kopf itself runs standalone (no peering): a replica starts it only once it holds the Lease, and stops it (and its
process exits) the moment it cannot prove it still does. As client-go's leader election:

- each candidate has its own identity (`<pod name>_<random>`: a restarted container is a new candidate, never
  mistaken for the holder that crashed);
- the holder renews the Lease every `retry_seconds`; a candidate takes the Lease over only when it has seen the
  same holder, renew time and transitions for a whole `leaseDurationSeconds` *by its own clock* (no comparison of
  two machines' clocks), or when the holder released it;
- a holder that has not renewed for `renew_deadline_seconds` (shorter than the lease) stops leading at once, so it
  has stopped before anyone may take over; so does a holder that finds another identity in the Lease;
- on a graceful stop (SIGTERM: a rolling update, `helm upgrade`, a pod deletion) the holder stops Kopf first, then
  releases the Lease (holder emptied), and a candidate takes over at its next try instead of after the lease.

Every update is conditional on the resourceVersion read, so two candidates racing for an expired Lease cannot
both win. The I/O is runtime/kube.py's `Leases`; this module decides.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger("startbench.runtime.leader")


class LeaseStore(Protocol):
    def get(self, namespace: str, name: str) -> tuple[dict[str, Any], str] | None: ...
    def create(self, namespace: str, name: str, spec: dict[str, Any]) -> bool: ...
    def update(self, namespace: str, name: str, spec: dict[str, Any], resource_version: str) -> bool: ...


@dataclasses.dataclass(frozen=True)
class Election:
    namespace: str
    name: str
    identity: str
    lease_seconds: float = 15.0
    renew_deadline_seconds: float = 10.0
    retry_seconds: float = 2.0

    def __post_init__(self):
        if not 0 < self.retry_seconds < self.renew_deadline_seconds < self.lease_seconds:
            raise ValueError("leader election needs 0 < retry < renew deadline < lease duration (seconds); got "
                             f"{self.retry_seconds}, {self.renew_deadline_seconds}, {self.lease_seconds}")


def identity(hostname: str) -> str:
    """A candidate's identity: the pod's name (its hostname) and a random part unique to this process."""
    return f"{hostname}_{uuid.uuid4().hex[:8]}"


def _micro_time(now: datetime.datetime) -> str:
    return now.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class NotLeading(Exception):
    """The Lease has another holder: this candidate must not (or no longer) lead."""


class LeaderElector:
    def __init__(self, store: LeaseStore, election: Election, monotonic: Callable[[], float] = time.monotonic,
                 wallclock: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.timezone.utc)):
        self.store = store
        self.election = election
        self._monotonic = monotonic
        self._wallclock = wallclock
        self._observed: tuple | None = None    # (holder, renewTime, leaseTransitions) last read
        self._observed_at = 0.0                # when, by our own clock, it last changed
        self.transitions = 0                   # leaseTransitions after our last successful write

    def _spec(self, current: dict[str, Any] | None) -> dict[str, Any]:
        now = _micro_time(self._wallclock())
        e = self.election
        ours = current is not None and current.get("holderIdentity") == e.identity
        transitions = int((current or {}).get("leaseTransitions") or 0)
        return {"holderIdentity": e.identity, "leaseDurationSeconds": int(round(e.lease_seconds)),
                "acquireTime": current.get("acquireTime") if ours else now, "renewTime": now,
                "leaseTransitions": transitions if ours or current is None else transitions + 1}

    def try_acquire_or_renew(self) -> bool:
        """One attempt. True: this candidate holds the Lease now. False: another holder's Lease is still valid, or
        another candidate won the race. API errors propagate."""
        e = self.election
        found = self.store.get(e.namespace, e.name)
        if found is None:
            spec = self._spec(None)
            if not self.store.create(e.namespace, e.name, spec):
                return False
            self._note(spec)
            return True
        current, version = found
        record = (current.get("holderIdentity") or "", current.get("renewTime"), current.get("leaseTransitions"))
        if record != self._observed:
            self._observed, self._observed_at = record, self._monotonic()
        holder = record[0]
        duration = float(current.get("leaseDurationSeconds") or e.lease_seconds)
        if holder and holder != e.identity and self._monotonic() - self._observed_at < duration:
            return False
        spec = self._spec(current)
        if not self.store.update(e.namespace, e.name, spec, version):
            return False
        self._note(spec)
        return True

    def _note(self, spec: dict[str, Any]) -> None:
        self._observed = (spec["holderIdentity"], spec["renewTime"], spec["leaseTransitions"])
        self._observed_at = self._monotonic()
        self.transitions = spec["leaseTransitions"]

    def holder(self) -> str | None:
        """The identity in the Lease as last read (empty or None: nobody)."""
        return self._observed[0] if self._observed else None

    def acquire(self, stop: threading.Event) -> bool:
        """Try every retry period until this candidate holds the Lease (True) or `stop` is set (False)."""
        said = None
        while not stop.is_set():
            try:
                if self.try_acquire_or_renew():
                    log.info("leading: acquired lease %s/%s as %s (transition %d)", self.election.namespace,
                             self.election.name, self.election.identity, self.transitions)
                    return True
                if self.holder() != said:
                    said = self.holder()
                    log.info("standing by: lease %s/%s is held by %s", self.election.namespace,
                             self.election.name, said or "nobody")
            except Exception as err:  # noqa: BLE001 - the API server may be away for a moment: try again
                log.warning("leader election: reading lease %s/%s failed: %s", self.election.namespace,
                            self.election.name, err)
            stop.wait(self.election.retry_seconds)
        return False

    def hold(self, stop: threading.Event, lost: threading.Event) -> None:
        """Renew every retry period until `stop` is set. Sets `lost` and returns as soon as another identity holds
        the Lease or no renewal has succeeded for the renew deadline."""
        last_renewed = self._monotonic()
        while not stop.wait(self.election.retry_seconds):
            try:
                if self.try_acquire_or_renew():
                    last_renewed = self._monotonic()
                    continue
                if self.holder() not in (None, "", self.election.identity):
                    log.error("lost lease %s/%s to %s", self.election.namespace, self.election.name, self.holder())
                    lost.set()
                    return
            except Exception as err:  # noqa: BLE001
                log.warning("renewing lease %s/%s failed: %s", self.election.namespace, self.election.name, err)
            if self._monotonic() - last_renewed >= self.election.renew_deadline_seconds:
                log.error("could not renew lease %s/%s for %.0fs: stepping down", self.election.namespace,
                          self.election.name, self._monotonic() - last_renewed)
                lost.set()
                return

    def release(self) -> bool:
        """Give the Lease up if this candidate holds it (holder emptied, duration 1 s), so a candidate takes over at
        its next try. True when released."""
        e = self.election
        try:
            found = self.store.get(e.namespace, e.name)
            if found is None or found[0].get("holderIdentity") != e.identity:
                return False
            current, version = found
            spec = {**current, "holderIdentity": "", "leaseDurationSeconds": 1,
                    "renewTime": _micro_time(self._wallclock())}
            released = self.store.update(e.namespace, e.name, spec, version)
        except Exception as err:  # noqa: BLE001 - then the lease simply expires
            log.warning("releasing lease %s/%s failed: %s", e.namespace, e.name, err)
            return False
        if released:
            log.info("released lease %s/%s", e.namespace, e.name)
        return released
