"""What a node brings to a start-up time besides the image: its container runtime, its kubelet and the kubelet's
pull settings. Kept in status.nodeContext so that results from two clusters can be compared. Pure.

The pull settings come from the kubelet's own running configuration (`/configz`, read through the API server's
node proxy, which needs `get nodes/proxy`); a simulated node's come from the pull simulator, which pulls one image
at a time per node. Where the configuration cannot be read, the fields are null and `note` says why, never a
guessed default.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from startbench.core.contracts import is_simulated

SIMULATOR = "pull simulator (one pull at a time per node)"


def node_context(node: Mapping[str, Any], configz: Mapping[str, Any] | None = None,
                 configz_error: str | None = None) -> dict[str, Any]:
    """One node's context from its Node object (as the API returns it, camelCase) and its kubelet's `/configz`
    document (`{"kubeletconfig": {...}}`), or the reason it could not be read."""
    meta, status = node.get("metadata") or {}, node.get("status") or {}
    info = status.get("nodeInfo") or {}
    out: dict[str, Any] = {
        "name": meta.get("name"),
        "containerRuntime": info.get("containerRuntimeVersion") or None,
        "kubelet": info.get("kubeletVersion") or None,
        "kernel": info.get("kernelVersion") or None,
        "osImage": info.get("osImage") or None,
        "simulated": is_simulated(meta.get("annotations")),
        "serializeImagePulls": None,
        "maxParallelImagePulls": None,
        "pullSettingsFrom": None,
    }
    if out["simulated"]:
        out.update(serializeImagePulls=True, maxParallelImagePulls=1, pullSettingsFrom=SIMULATOR)
        return out
    config = (configz or {}).get("kubeletconfig")
    if isinstance(config, Mapping):
        # The kubelet's defaults when a field is absent: serializeImagePulls true, maxParallelImagePulls unset.
        serialize = config.get("serializeImagePulls", True)
        out.update(serializeImagePulls=bool(serialize), pullSettingsFrom="kubelet configz",
                   maxParallelImagePulls=1 if serialize else config.get("maxParallelImagePulls"))
    else:
        out["note"] = f"the kubelet's configuration could not be read: {configz_error or 'no configz document'}"[:300]
    return out
