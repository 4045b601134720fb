"""Removing a run's image from its node before a cold run (spec.purgeImageBeforeColdRun): the I/O, through
ClusterIO. What to remove, and why this is how, is startbench.core.purge."""

from __future__ import annotations

import json
import logging

from startbench.core.contracts import SIM_CACHED_IMAGES
from startbench.core.purge import (CHART_VALUE, CONTAINER, CTR, SELECTOR, PurgeResult, cached_images, refs_to_remove,
                                   without_image)

log = logging.getLogger("startbench.runtime.purger")
EXEC_TIMEOUT_S = 120.0
PATCH_ATTEMPTS = 5


def purge_image(io, node: str, image: str, namespace_of_daemonset: str | None, simulated: bool) -> PurgeResult:
    """Remove `image` (and its aliases) from `node`'s image cache before a cold run. `io` is a ClusterIO. Never
    raises for an API error: a failure is a PurgeResult with ok=False and a message that says what to change."""
    from kubernetes.client.rest import ApiException
    try:
        if simulated:
            return _purge_simulated(io, node, image)
        return _purge_cri(io, node, image, namespace_of_daemonset)
    except ApiException as err:
        return PurgeResult(False, None, f"could not purge image {image!r} from node {node}: the API server "
                           f"answered {err.status} {err.reason}")
    except Exception as err:  # a broken exec stream: the run must still end with a reason, not crash the step
        log.exception("purge of %s on node %s", image, node)
        return PurgeResult(False, None, f"could not purge image {image!r} from node {node}: {err}"[:1000])


def _purge_simulated(io, node: str, image: str) -> PurgeResult:
    for _ in range(PATCH_ATTEMPTS):
        annotations, version = io.node_annotations(node)
        before = annotations.get(SIM_CACHED_IMAGES)
        after = without_image(before, image)
        if len(json.loads(after)) == len(cached_images(before)):
            return PurgeResult(True, "absent", f"image {image!r} was not in simulated node {node}'s cache")
        # Conditional on the version read: a concurrent change (the pull simulator recording a finished pull) is
        # re-read instead of overwritten.
        if io.patch_node_annotations(node, {SIM_CACHED_IMAGES: after}, version):
            return PurgeResult(True, "simulated-cache", f"removed image {image!r} from simulated node {node}'s cache")
    return PurgeResult(False, None, f"node {node}'s annotation {SIM_CACHED_IMAGES} kept changing; could not remove "
                       f"image {image!r} in {PATCH_ATTEMPTS} attempts")


def _purge_cri(io, node: str, image: str, namespace: str | None) -> PurgeResult:
    pods = io.running_pods_on_node(namespace, SELECTOR, node) if namespace else []
    if not pods:
        where = f"in namespace {namespace}" if namespace else "(no namespace configured for it)"
        return PurgeResult(False, None, f"spec.purgeImageBeforeColdRun is true but no running cache-purge agent "
                           f"(label {SELECTOR}) is on node {node} {where}: enable the agent (chart value "
                           f"{CHART_VALUE}, with a nodeSelector and tolerations that reach this node) or set "
                           f"spec.purgeImageBeforeColdRun to false")
    pod = pods[0]
    rc, out, err = io.exec_in_pod(namespace, pod, CONTAINER, [*CTR, "images", "ls"], EXEC_TIMEOUT_S)
    if rc != 0:
        hint = ("the API server could not run it in the pod (can it reach the node's kubelet? does the operator's "
                "Role allow pods/exec?)" if rc == -1 else "check that the agent's image has ctr and that the chart's "
                "cachePurge.criSocket is containerd's socket on that node")
        return PurgeResult(False, None, f"`ctr images ls` in cache-purge pod {namespace}/{pod} on node {node} "
                           f"failed (exit {rc}): {err.strip()[-300:]}; {hint}")
    refs = refs_to_remove(out, image)
    if not refs:
        return PurgeResult(True, "absent", f"image {image!r} was not on node {node}")
    rc, out, err = io.exec_in_pod(namespace, pod, CONTAINER, [*CTR, "images", "rm", "--sync", *refs], EXEC_TIMEOUT_S)
    if rc != 0 and "not found" not in err:
        return PurgeResult(False, None, f"`ctr images rm` in cache-purge pod {namespace}/{pod} on node {node} "
                           f"failed (exit {rc}): {err.strip()[-300:]}")
    return PurgeResult(True, "cri", f"removed {', '.join(refs)} from node {node}")
