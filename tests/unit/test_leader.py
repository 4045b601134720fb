"""Leader election on a Lease (runtime/leader.py), on an in-memory Lease store with the API server's optimistic
concurrency, and fake clocks: one leader at a time, takeover only after a whole lease duration of silence by the
candidate's own clock (whatever the holder's clock says), at once after a release, and a holder that cannot
renew steps down before anyone may take over."""

from __future__ import annotations

import datetime
import threading

import pytest

from startbench.runtime import config
from startbench.runtime.leader import Election, LeaderElector, identity


class MemoryLeases:
    def __init__(self):
        self.spec = None
        self.version = 0
        self.fail = False

    def get(self, namespace, name):
        if self.fail:
            raise OSError("API server away")
        return None if self.spec is None else (dict(self.spec), str(self.version))

    def create(self, namespace, name, spec):
        if self.spec is not None:
            return False
        self.spec, self.version = dict(spec), self.version + 1
        return True

    def update(self, namespace, name, spec, resource_version):
        if self.fail:
            raise OSError("API server away")
        if resource_version != str(self.version):
            return False
        self.spec, self.version = dict(spec), self.version + 1
        return True


class Clock:
    def __init__(self, t=0.0):
        self.t = t

    def __call__(self):
        return self.t


def wall(offset_s=0.0):
    base = datetime.datetime(2026, 11, 28, tzinfo=datetime.timezone.utc)
    return lambda: base + datetime.timedelta(seconds=offset_s)


def elector(store, name, clock, wallclock=None):
    return LeaderElector(store, Election("ns", "lease", name, lease_seconds=15, renew_deadline_seconds=10,
                                         retry_seconds=2), monotonic=clock, wallclock=wallclock or wall())


def test_first_candidate_creates_the_lease_and_the_second_stands_by():
    store, clock = MemoryLeases(), Clock()
    a, b = elector(store, "a", clock), elector(store, "b", clock)
    assert a.try_acquire_or_renew() is True
    assert store.spec["holderIdentity"] == "a" and store.spec["leaseDurationSeconds"] == 15
    assert store.spec["leaseTransitions"] == 0 and store.spec["renewTime"].endswith("Z")
    assert b.try_acquire_or_renew() is False and b.holder() == "a"
    clock.t = 14.9
    assert b.try_acquire_or_renew() is False  # a never renewed, but the lease has not run out by b's clock


def test_a_silent_holder_is_replaced_after_one_lease_duration_by_the_candidates_own_clock():
    store = MemoryLeases()
    clock_a, clock_b = Clock(), Clock(1000.0)  # unrelated monotonic clocks
    # a's wall clock is an hour ahead: its renewTime looks "in the future" to anyone comparing times. b never does.
    a = elector(store, "a", clock_a, wall(3600))
    b = elector(store, "b", clock_b)
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    for step in range(1, 8):  # a renews every 2 s: b keeps seeing a new renewTime, so never takes over
        clock_a.t = clock_b.t - 1000.0 + 2 * step
        clock_b.t += 2
        a._wallclock = wall(3600 + 2 * step)
        assert a.try_acquire_or_renew()
        assert not b.try_acquire_or_renew()
    # a stops (killed): the record stays as it was. b takes over only once it has seen no change for 15 s.
    seen_at = clock_b.t
    clock_b.t = seen_at + 14
    assert not b.try_acquire_or_renew()
    clock_b.t = seen_at + 15
    assert b.try_acquire_or_renew()
    assert store.spec["holderIdentity"] == "b" and store.spec["leaseTransitions"] == 1
    assert store.spec["acquireTime"] == store.spec["renewTime"]


def test_a_released_lease_is_taken_at_the_next_try():
    store, clock = MemoryLeases(), Clock()
    a, b = elector(store, "a", clock), elector(store, "b", clock)
    assert a.try_acquire_or_renew() and not b.try_acquire_or_renew()
    assert a.release() is True
    assert store.spec["holderIdentity"] == "" and store.spec["leaseDurationSeconds"] == 1
    assert b.try_acquire_or_renew() is True and store.spec["holderIdentity"] == "b"
    assert a.release() is False  # not a's to release any more
    assert store.spec["holderIdentity"] == "b"


def test_two_candidates_racing_for_an_expired_lease_cannot_both_win():
    store, clock = MemoryLeases(), Clock()
    old = elector(store, "old", clock)
    assert old.try_acquire_or_renew()
    a, b = elector(store, "a", clock), elector(store, "b", clock)
    assert not a.try_acquire_or_renew() and not b.try_acquire_or_renew()
    clock.t = 20
    found = store.get("ns", "lease")
    assert a.try_acquire_or_renew()
    # b read the same version as a before a wrote: its conditional write fails.
    stale_get = store.get
    store.get = lambda *_: found
    assert not b.try_acquire_or_renew()
    store.get = stale_get
    assert store.spec["holderIdentity"] == "a"


def test_a_holder_that_cannot_renew_steps_down_before_the_lease_runs_out():
    store, clock = MemoryLeases(), Clock()
    a = elector(store, "a", clock)
    assert a.try_acquire_or_renew()
    lost = threading.Event()
    store.fail = True

    class Ticking(threading.Event):  # every wait is one retry period on the fake clock
        def wait(self, timeout=None):
            clock.t += timeout
            return self.is_set()

    ticking = Ticking()
    a.hold(ticking, lost)
    assert lost.is_set() and 10 <= clock.t < 15


def test_a_holder_that_finds_another_identity_steps_down_at_once():
    store, clock = MemoryLeases(), Clock()
    a, b = elector(store, "a", clock), elector(store, "b", clock)
    assert a.try_acquire_or_renew() and not b.try_acquire_or_renew()
    clock.t = 16
    assert b.try_acquire_or_renew()  # a was silent (paused) for a whole lease
    lost = threading.Event()

    class Once(threading.Event):
        def wait(self, timeout=None):
            return self.is_set()

    a.hold(Once(), lost)
    assert lost.is_set() and store.spec["holderIdentity"] == "b"


def test_identity_is_unique_per_process_and_the_timings_must_be_ordered():
    assert identity("sb-startbench-abc").startswith("sb-startbench-abc_") and identity("x") != identity("x")
    with pytest.raises(ValueError):
        Election("ns", "l", "i", lease_seconds=10, renew_deadline_seconds=10, retry_seconds=2)
    cfg = config.load({"STARTBENCH_LEADER_ELECTION_LEASE": "startbench/sb-startbench"})
    assert cfg.leader_election_lease == "startbench/sb-startbench"
    assert (cfg.retry_period_seconds, cfg.renew_deadline_seconds, cfg.lease_duration_seconds) == (2, 10, 15)
    for bad in ({"STARTBENCH_LEADER_ELECTION_LEASE": "no-slash"},
                {"STARTBENCH_LEADER_ELECTION_LEASE": "Bad/name"},
                {"STARTBENCH_LEADER_ELECTION_LEASE": "a/b", "STARTBENCH_RENEW_DEADLINE_SECONDS": "20"}):
        with pytest.raises(config.ConfigError):
            config.load(bad)
