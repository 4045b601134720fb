"""Node context (core/nodecontext.py): the runtime, the kubelet and its pull settings, as the status records them."""

from __future__ import annotations

from startbench.core.contracts import SIMULATED_NODE_ANNOTATION
from startbench.core.nodecontext import node_context

INFO = {"containerRuntimeVersion": "containerd://1.6.20", "kubeletVersion": "v1.33.13",
        "kernelVersion": "6.1.0-27-amd64", "osImage": "Debian GNU/Linux 12 (bookworm)"}


def real(name="n0"):
    return {"metadata": {"name": name, "annotations": {}}, "status": {"nodeInfo": INFO}}


def test_the_kubelets_own_pull_settings_are_recorded():
    parallel = node_context(real(), {"kubeletconfig": {"serializeImagePulls": False, "maxParallelImagePulls": 5}})
    assert parallel == {"name": "n0", "containerRuntime": "containerd://1.6.20", "kubelet": "v1.33.13",
                        "kernel": "6.1.0-27-amd64", "osImage": "Debian GNU/Linux 12 (bookworm)", "simulated": False,
                        "serializeImagePulls": False, "maxParallelImagePulls": 5, "pullSettingsFrom": "kubelet configz"}
    # Absent fields are the kubelet's defaults: pulls one at a time.
    default = node_context(real(), {"kubeletconfig": {}})
    assert (default["serializeImagePulls"], default["maxParallelImagePulls"]) == (True, 1)
    unlimited = node_context(real(), {"kubeletconfig": {"serializeImagePulls": False}})
    assert (unlimited["serializeImagePulls"], unlimited["maxParallelImagePulls"]) == (False, None)


def test_an_unreadable_configuration_is_null_and_says_why_never_a_guess():
    ctx = node_context(real(), None, "403 Forbidden; grant `get nodes/proxy` to record it")
    assert ctx["serializeImagePulls"] is None and ctx["maxParallelImagePulls"] is None
    assert ctx["pullSettingsFrom"] is None and "nodes/proxy" in ctx["note"]


def test_a_simulated_node_says_its_pulls_come_from_the_simulator():
    node = {"metadata": {"name": "sim-gpu-00", "annotations": dict([SIMULATED_NODE_ANNOTATION])},
            "status": {"nodeInfo": {"kubeletVersion": "fake"}}}
    ctx = node_context(node)
    assert ctx["simulated"] and ctx["serializeImagePulls"] is True and "simulator" in ctx["pullSettingsFrom"]
    assert ctx["containerRuntime"] is None
