"""Event loss on purpose in the pull simulator (sim.startbench.dev/drop-events and delay-events, on a pod or on
its node), and pods listed before their node are not forgotten."""

from __future__ import annotations

import time
import uuid

from kubernetes import client

from startbench.localcluster import simkubelet, stages


class FakeCore:
    def __init__(self):
        self.events: list[client.CoreV1Event] = []
        self.patches: list[tuple[str, dict]] = []

    def create_namespaced_event(self, namespace, body, **_):
        self.events.append(body)
        return body

    def patch_namespaced_pod(self, name, namespace, body):
        self.patches.append((name, body))

    def patch_node_status(self, name, body):
        pass

    def patch_node(self, name, body):
        pass


def _pod(annotations=None, node="sim-gpu-00"):
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name="run-0", namespace="ns", uid=str(uuid.uuid4()), resource_version="1",
                                     annotations={stages.IMAGE_BYTES: "1000", **(annotations or {})}),
        spec=client.V1PodSpec(node_name=node, containers=[client.V1Container(name="workload", image="reg.example/x:1",
                                                                              image_pull_policy="Always")]),
        status=client.V1PodStatus(pod_ip="10.0.0.1", container_statuses=[client.V1ContainerStatus(
            name="workload", image="reg.example/x:1", image_id="", ready=False, restart_count=0,
            state=client.V1ContainerState(waiting=client.V1ContainerStateWaiting(reason="ContainerCreating")))]))


def _node(annotations=None, name="sim-gpu-00"):
    return client.V1Node(metadata=client.V1ObjectMeta(name=name, annotations={
        "kwok.x-k8s.io/node": "fake", **(annotations or {})}), status=client.V1NodeStatus(images=[]))


def _running(pod):
    pod.status.container_statuses[0].state = client.V1ContainerState(
        running=client.V1ContainerStateRunning(started_at="2026-11-28T00:00:00Z"))
    return pod


def _pull_through(sim, core, pod):
    sim.on_pod("ADDED", pod)
    deadline = time.monotonic() + 5
    while not any(b.get("metadata", {}).get("annotations", {}).get(stages.PULLED) for _, b in core.patches):
        assert time.monotonic() < deadline, "the simulated pull did not finish"
        sim.tick()
        time.sleep(0.01)
    sim.on_pod("MODIFIED", _running(pod))


def _reasons(core):
    return [e.reason for e in core.events]


def test_without_a_switch_every_event_is_posted():
    core = FakeCore()
    sim = simkubelet.SimKubelet(core, registry=object())
    sim.on_node("ADDED", _node())
    _pull_through(sim, core, _pod())
    assert _reasons(core) == ["Pulling", "Pulled", "Created", "Started"]


def test_a_pod_annotation_drops_the_events_it_names():
    core = FakeCore()
    sim = simkubelet.SimKubelet(core, registry=object())
    sim.on_node("ADDED", _node())
    _pull_through(sim, core, _pod({stages.DROP_EVENTS: "Pulled, Started"}))
    assert _reasons(core) == ["Pulling", "Created"]
    assert sim.dropped == 2


def test_a_node_annotation_drops_every_event_of_its_pods():
    core = FakeCore()
    sim = simkubelet.SimKubelet(core, registry=object())
    sim.on_node("ADDED", _node({stages.DROP_EVENTS: "all"}))
    pod = _pod()
    _pull_through(sim, core, pod)
    assert _reasons(core) == []
    # ... and the pod still runs: its pull is marked done, so KWOK starts its container.
    assert any(stages.PULLED in b["metadata"]["annotations"] for _, b in core.patches)


def test_a_delay_posts_each_event_late_and_once():
    core = FakeCore()
    sim = simkubelet.SimKubelet(core, registry=object())
    sim.on_node("ADDED", _node())
    pod = _pod({stages.DELAY_EVENTS: "200ms"})
    _pull_through(sim, core, pod)
    assert _reasons(core) == []
    time.sleep(0.5)
    sim.on_pod("MODIFIED", pod)  # a later update posts nothing twice
    assert sorted(_reasons(core)) == sorted(["Pulling", "Pulled", "Created", "Started"])


def test_a_pod_listed_before_its_node_is_handled_when_the_node_arrives():
    core = FakeCore()
    sim = simkubelet.SimKubelet(core, registry=object())
    pod = _pod()
    sim.on_pod("ADDED", pod)
    assert _reasons(core) == []
    sim.on_node("ADDED", _node())
    assert _reasons(core) == ["Pulling"] and pod.metadata.uid in sim.pending


def test_the_switch_reads_reasons_and_go_durations():
    switch = simkubelet.EventSwitch.read({stages.DROP_EVENTS: "Pulled,,Started ", stages.DELAY_EVENTS: "1m2.5s"})
    assert switch.drop == {"Pulled", "Started"} and switch.delay_seconds == 62.5
    assert switch.drops("Pulled") and not switch.drops("Pulling")
    assert not simkubelet.EventSwitch.read({}).active
