"""The pull simulator reads a pod's imagePullSecrets as the kubelet does: one it cannot read is named in the
kubelet's own Warning event (FailedToRetrieveImagePullSecret, its exact words), and the pull goes ahead with the
ones it could read."""

from __future__ import annotations

import base64
import json

from kubernetes import client
from kubernetes.client.rest import ApiException

from startbench.core.kubelet_events import FactKind, parse_event
from startbench.localcluster import stages
from startbench.localcluster.simkubelet import SimKubelet, missing_pull_secrets_message

IMAGE = "127.0.0.1:5001/team/private:v1"
AUTH = {"auths": {"127.0.0.1:5001": {"username": "u", "password": "p"}}}


class FakeCore:
    def __init__(self, secrets: dict[str, dict]):
        self.secrets, self.events = secrets, []

    def read_namespaced_secret(self, name, namespace):
        if name not in self.secrets:
            raise ApiException(status=404, reason="Not Found")
        data = base64.b64encode(json.dumps(self.secrets[name]).encode()).decode()
        return client.V1Secret(data={".dockerconfigjson": data})

    def create_namespaced_event(self, namespace, body, **_):
        self.events.append(body)

    def patch_namespaced_pod(self, *args, **kwargs):
        pass


class FakeRegistry:
    def __init__(self):
        self.asked = []

    def pull_bytes(self, image, credentials):
        self.asked.append((image, credentials))
        return 1000


def _pod(secrets: list[str], annotations: dict | None = None) -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name="p", namespace="ns", uid="uid-1", resource_version="7",
                                     annotations=annotations or {}),
        spec=client.V1PodSpec(node_name="sim-cpu-0", containers=[client.V1Container(
            name="workload", image=IMAGE, image_pull_policy="Always")],
            image_pull_secrets=[client.V1LocalObjectReference(name=n) for n in secrets]))


def _decide(secrets: list[str], core: FakeCore, annotations: dict | None = None) -> FakeRegistry:
    registry = FakeRegistry()
    sim = SimKubelet(core, registry=registry)
    sim.node_images["sim-cpu-0"] = set()
    pod = _pod(secrets, annotations)
    sim._decide(pod, "sim-cpu-0", pod.spec.containers[0])
    return registry


def test_a_missing_secret_is_named_in_the_kubelets_words_and_the_pull_uses_the_others():
    core = FakeCore({"regcred": AUTH})
    registry = _decide(["gone", "regcred", "", "also-gone"], core)
    warnings = [e for e in core.events if e.reason == "FailedToRetrieveImagePullSecret"]
    assert len(warnings) == 1
    event = warnings[0]
    assert event.type == "Warning" and event.message == (
        "Unable to retrieve some image pull secrets (gone, also-gone); attempting to pull the image may not succeed.")
    assert event.involved_object.kind == "Pod" and event.involved_object.field_path is None  # the pod, not a container
    assert event.source.component == "kubelet" and event.source.host == "sim-cpu-0"
    assert registry.asked == [(IMAGE, ("u", "p"))]  # pulled with the Secret it could read
    fact = parse_event(event.reason, event.message)
    assert fact.kind is FactKind.MISSING_PULL_SECRETS and fact.secrets == ("gone", "also-gone")


def test_every_pod_is_checked_even_when_no_pull_needs_the_registry():
    core = FakeCore({})
    registry = _decide(["gone"], core, annotations={stages.IMAGE_BYTES: "2000"})
    assert registry.asked == []
    assert [e.reason for e in core.events].count("FailedToRetrieveImagePullSecret") == 1


def test_no_warning_when_every_secret_is_there():
    core = FakeCore({"regcred": AUTH})
    _decide(["regcred"], core)
    assert all(e.reason != "FailedToRetrieveImagePullSecret" for e in core.events)


def test_the_message_is_the_kubelets():
    # kubernetes v1.33 pkg/kubelet/kubelet_pods.go: "Unable to retrieve some image pull secrets (%s); attempting to
    # pull the image may not succeed.", strings.Join(failedPullSecrets, ", ")
    assert missing_pull_secrets_message(["a", "b"]) == (
        "Unable to retrieve some image pull secrets (a, b); attempting to pull the image may not succeed.")
