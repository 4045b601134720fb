"""purge_image on a simulated node: after it, the next IfNotPresent pod on that node pulls the image again."""

from __future__ import annotations

import json

from startbench.core import purge
from startbench.core.contracts import SIM_CACHED_IMAGES, is_simulated
from startbench.localcluster import stages
from startbench.runtime.kube import ClusterIO
from startbench.runtime.purger import purge_image
from tests.cluster.helpers import pod_events, wait_for


def _sim_cpu_node(core) -> str:
    names = sorted(n.metadata.name for n in core.list_node(label_selector="startbench.dev/pool=cpu").items
                   if is_simulated(n.metadata.annotations))
    assert names, "the local cluster has no simulated CPU node"
    return names[0]


def _cache(core, node: str) -> list[str]:
    return purge.cached_images((core.read_node(node).metadata.annotations or {}).get(SIM_CACHED_IMAGES))


def _run_pod(core, namespace: str, name: str, node: str, image: str) -> str:
    """Start an IfNotPresent pod on `node`; the message of its Pulled event."""
    core.create_namespaced_pod(namespace, {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "annotations": {stages.IMAGE_BYTES: "2000000"}},
        "spec": {"nodeSelector": {"kubernetes.io/hostname": node}, "restartPolicy": "Never",
                 "containers": [{"name": "main", "image": image, "imagePullPolicy": "IfNotPresent"}]}})
    wait_for(lambda: core.read_namespaced_pod(name, namespace).status.phase == "Running", timeout=60,
             what=f"pod {name} Running")
    pulled = wait_for(lambda: [e.message for e in pod_events(core, namespace, name) if e.reason == "Pulled"],
                      what=f"the Pulled event of pod {name}")
    assert len(pulled) == 1, pulled
    return pulled[0]


def test_purged_image_is_pulled_again_by_the_next_if_not_present_pod(core, namespace):
    node = _sim_cpu_node(core)
    image = f"registry.example/purge-test:{namespace}"  # unique: the first pull is always a miss
    try:
        assert _run_pod(core, namespace, "first", node, image).startswith(f'Successfully pulled image "{image}"')
        wait_for(lambda: image in _cache(core, node), what=f"{image} in node {node}'s cache")
        others = [i for i in _cache(core, node) if i != image]

        result = purge_image(ClusterIO(core.api_client), node, image, None, simulated=True)
        assert result == purge.PurgeResult(True, "simulated-cache", result.message) and node in result.message
        assert image not in _cache(core, node)
        assert set(others) <= set(_cache(core, node)), "the purge removed other images too"
        again = purge_image(ClusterIO(core.api_client), node, image, None, simulated=True)
        assert again.ok and again.how == "absent"

        message = _run_pod(core, namespace, "second", node, image)
        assert message.startswith(f'Successfully pulled image "{image}"'), message
        wait_for(lambda: image in _cache(core, node), what=f"{image} back in node {node}'s cache")
    finally:
        purge_image(ClusterIO(core.api_client), node, image, None, simulated=True)  # leave the shared node's cache as it was


def test_unpurged_image_is_found_present_by_the_next_pod(core, namespace):
    """The control: without the purge, the same sequence finds the image already present."""
    node = _sim_cpu_node(core)
    image = f"registry.example/purge-control:{namespace}"
    try:
        assert _run_pod(core, namespace, "first", node, image).startswith("Successfully pulled")
        wait_for(lambda: image in _cache(core, node), what=f"{image} in node {node}'s cache")
        assert _run_pod(core, namespace, "second", node, image) == \
            f'Container image "{image}" already present on machine'
    finally:
        purge_image(ClusterIO(core.api_client), node, image, None, simulated=True)
    assert image not in json.dumps(_cache(core, node))
