"""The observer folds watch updates and events into each run's observations."""

from startbench.core.manifests import ANNOTATION_CREATED_MS, LABEL_BENCHMARK
from startbench.runtime.observer import Observer

PULLED = 'Successfully pulled image "x" in 2s (2s including waiting). Image size: 10 bytes.'


def pod(uid: str) -> dict:
    return {"metadata": {"name": "b-img-n0-c1", "namespace": "ns", "uid": uid,
                         "labels": {LABEL_BENCHMARK: "b"}, "annotations": {ANNOTATION_CREATED_MS: "1000"}},
            "spec": {"nodeName": "n0"}, "status": {"phase": "Pending"}}


def event_of(uid: str) -> dict:
    return {"kind": "Pod", "namespace": "ns", "name": "b-img-n0-c1", "uid": uid}


def test_events_arriving_before_their_pod_are_applied_when_it_appears():
    observer = Observer()
    observer.on_event(event_of("new"), "Pulled", PULLED, 5000.0)
    observer.on_pod("ADDED", pod("new"), 6000.0)
    obs = observer.pods_of("ns", "b")["b-img-n0-c1"].obs
    assert obs.pulled_ms == 5000.0 and obs.pull_seconds == 2.0


def test_early_events_of_an_earlier_pod_with_the_same_name_are_dropped():
    # A re-applied Benchmark plans the same run names; the old pods' events are still in the namespace and are
    # replayed when the operator starts.
    observer = Observer()
    observer.on_event(event_of("old"), "Pulled", PULLED, 500.0)
    observer.on_pod("ADDED", pod("new"), 6000.0)
    assert observer.pods_of("ns", "b")["b-img-n0-c1"].obs.pulled_ms is None


def test_later_events_of_another_pod_uid_are_ignored():
    observer = Observer()
    observer.on_pod("ADDED", pod("new"), 6000.0)
    observer.on_event(event_of("old"), "Pulled", PULLED, 6500.0)
    assert observer.pods_of("ns", "b")["b-img-n0-c1"].obs.pulled_ms is None
    observer.on_event(event_of("new"), "Pulled", PULLED, 7000.0)
    assert observer.pods_of("ns", "b")["b-img-n0-c1"].obs.pulled_ms == 7000.0


def test_only_what_a_restart_cannot_learn_again_makes_a_pod_dirty():
    # A change the pod itself still shows (its phase, a waiting reason) waits for the next stamp to be persisted:
    # each persist is an annotation patch, and a pod update that comes back to every watcher.
    observer = Observer()
    observer.on_pod("ADDED", pod("u"), 6000.0)
    [entry] = observer.dirty("ns", "b")
    observer.mark_persisted("ns", entry.name, entry.obs)
    waiting = pod("u")
    waiting["status"]["containerStatuses"] = [{"name": "workload", "state": {"waiting": {"reason": "ContainerCreating"}}}]
    observer.on_pod("MODIFIED", waiting, 6100.0)
    assert observer.pods_of("ns", "b")["b-img-n0-c1"].obs.waiting_reason == "ContainerCreating"
    assert observer.dirty("ns", "b") == []
    observer.on_event(event_of("u"), "Pulled", PULLED, 6200.0)
    [entry] = observer.dirty("ns", "b")
    assert entry.obs.pulled_ms == 6200.0 and entry.obs.waiting_reason == "ContainerCreating"


def test_a_pod_persisted_a_moment_ago_waits_before_it_is_dirty_again():
    observer = Observer()
    observer.on_pod("ADDED", pod("u"), 6000.0)
    [entry] = observer.dirty("ns", "b", now_ms=6000.0, every_ms=2000.0)
    observer.mark_persisted("ns", entry.name, entry.obs, at_ms=6000.0)
    observer.on_event(event_of("u"), "Pulled", PULLED, 6500.0)
    assert observer.dirty("ns", "b", now_ms=7000.0, every_ms=2000.0) == []
    [entry] = observer.dirty("ns", "b", now_ms=8000.0, every_ms=2000.0)
    assert entry.obs.pulled_ms == 6500.0
