"""The pull simulator's events are named and filled as the kubelet's recorder does its own (client-go
tools/record): clients such as kube-burner read a container's start from the Started event's name. The cluster
test tests/cluster/test_simulated_events.py compares them field by field with a real kubelet's."""

from __future__ import annotations

import datetime
import re
import time
import uuid

from kubernetes import client

from startbench.localcluster import simkubelet


class FakeCore:
    def __init__(self):
        self.created: list[tuple[str, client.CoreV1Event, dict]] = []

    def create_namespaced_event(self, namespace, body, **kwargs):
        self.created.append((namespace, body, kwargs))
        return body


def _pod(name="run-0", namespace="ns", rv="4711"):
    return client.V1Pod(metadata=client.V1ObjectMeta(name=name, namespace=namespace, uid=str(uuid.uuid4()),
                                                     resource_version=rv),
                        spec=client.V1PodSpec(node_name="sim-cpu-00",
                                              containers=[client.V1Container(name="workload", image="x")]))


def test_event_name_is_the_object_name_and_the_time_in_unix_nanoseconds_as_hex():
    assert simkubelet.event_name("run-0", 1_764_000_000_123_456_789) == "run-0.187afca76f25cd15"
    assert int(simkubelet.event_name("p", 255).split(".")[1], 16) == 255


def test_event_name_is_a_uuid_where_the_kubelet_would_need_one():
    # GenerateEventName: a name that is no valid DNS subdomain (here: longer than 253) becomes a random UUID.
    name = simkubelet.event_name("a" * 240, time.time_ns())
    assert uuid.UUID(name) and len(name) == 36


def test_posted_event_is_filled_as_the_kubelets_recorder_fills_it():
    core = FakeCore()
    sim = simkubelet.SimKubelet(core, registry=object())
    pod = _pod()
    before = time.time_ns()
    sim._event(pod, "sim-cpu-00", pod.spec.containers[0], "Normal", "Started", "Started container workload")
    after = time.time_ns()
    [(namespace, body, kwargs)] = core.created
    assert namespace == "ns" and kwargs == {"field_manager": "kubelet"}
    match = re.fullmatch(r"run-0\.([0-9a-f]+)", body.metadata.name)
    assert match, body.metadata.name
    nanos = int(match.group(1), 16)
    assert before <= nanos <= after
    # Whole seconds, the fraction cut off, as a metav1.Time travels (the client model holds it as a datetime).
    second = datetime.datetime.fromtimestamp(nanos // 10**9, datetime.timezone.utc)
    assert body.first_timestamp == body.last_timestamp == second
    assert body.count == 1 and body.type == "Normal" and body.event_time is None
    assert (body.source.component, body.source.host) == ("kubelet", "sim-cpu-00")
    assert (body.reporting_component, body.reporting_instance) == ("kubelet", "sim-cpu-00")
    assert body.action is None and body.related is None and body.series is None
    ref = body.involved_object
    assert (ref.api_version, ref.kind, ref.namespace, ref.name, ref.uid, ref.resource_version, ref.field_path) == (
        "v1", "Pod", "ns", "run-0", pod.metadata.uid, "4711", "spec.containers{workload}")


def test_each_event_is_posted_once():
    core = FakeCore()
    sim = simkubelet.SimKubelet(core, registry=object())
    pod = _pod()
    for _ in range(2):
        sim._event(pod, "sim-cpu-00", pod.spec.containers[0], "Normal", "Created", "Created container: workload")
    assert len(core.created) == 1
