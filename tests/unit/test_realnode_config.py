"""The real node's generated configuration and its log reader (no processes started)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from startbench.localcluster import clusternet, realnode

LAYOUT = realnode.Layout(Path("/state/realnode"))
CRI = ("plugins", "io.containerd.grpc.v1.cri")


def _cri(text: str) -> dict:
    doc = tomllib.loads(text)
    return doc[CRI[0]][CRI[1]]


def test_containerd_config_is_our_own_instance_with_cri_on():
    doc = tomllib.loads(realnode.containerd_config(LAYOUT, "overlayfs"))
    assert doc["version"] == 2
    assert doc["grpc"]["address"] == "/state/realnode/containerd.sock"
    assert doc["root"].startswith("/state/realnode/") and doc["state"].startswith("/state/realnode/")
    assert "io.containerd.grpc.v1.cri" not in doc.get("disabled_plugins", [])
    cri = _cri(realnode.containerd_config(LAYOUT, "overlayfs"))
    assert cri["sandbox_image"] == realnode.PAUSE_IMAGE
    assert cri["containerd"]["snapshotter"] == "overlayfs"
    assert cri["containerd"]["runtimes"]["runc"]["runtime_type"] == "io.containerd.runc.v2"
    assert cri["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is False
    assert cri["cni"]["conf_dir"] == "/state/realnode/cni/net.d"
    assert cri["registry"]["config_path"] == "/state/realnode/certs.d"


def test_oom_score_restriction_follows_the_capability():
    assert _cri(realnode.containerd_config(LAYOUT, "native", restrict_oom=True))["restrict_oom_score_adj"] is True
    assert _cri(realnode.containerd_config(LAYOUT, "native"))["restrict_oom_score_adj"] is False
    assert _cri(realnode.containerd_config(LAYOUT, "native"))["containerd"]["snapshotter"] == "native"


def test_both_local_registries_are_plain_http():
    files = realnode.registry_hosts(LAYOUT)
    # The no-auth registry also under the node IP, the address pods push to (clusternet forwards it).
    assert {p.parent.name for p in files} == {"127.0.0.1:5000", "127.0.0.1:5001", f"{realnode.NODE_IP}:5000"}
    for path, text in files.items():
        doc = tomllib.loads(text)
        assert doc["server"] == f"http://{path.parent.name}"
        assert "pull" in doc["host"][f"http://{path.parent.name}"]["capabilities"]


def test_cni_is_a_bridge_whose_gateway_is_the_node_ip():
    conf = json.loads(realnode.cni_config(LAYOUT))
    bridge, firewall = conf["plugins"]
    # The firewall plugin lets each pod's traffic through a FORWARD chain whose policy Docker sets to DROP.
    assert firewall["type"] == "firewall" and "firewall" in realnode.CNI_PLUGINS
    assert bridge["type"] == "bridge" and bridge["bridge"] == realnode.BRIDGE and bridge["isGateway"] is True
    assert bridge["ipam"]["type"] == "host-local"
    assert bridge["ipam"]["ranges"] == [[{"subnet": realnode.POD_SUBNET}]]
    # host-local gives the range's first address to the gateway, which is the node IP.
    assert realnode.NODE_IP == realnode.POD_SUBNET.split("/")[0].rsplit(".", 1)[0] + ".1"


def test_kubelet_config_and_flags():
    conf = json.loads(realnode.kubelet_config(LAYOUT, Path("/pki/ca.crt")))
    assert conf["kind"] == "KubeletConfiguration" and conf["apiVersion"] == "kubelet.config.k8s.io/v1beta1"
    assert conf["cgroupDriver"] == "cgroupfs" and conf["failSwapOn"] is False and conf["failCgroupV1"] is False
    assert conf["containerRuntimeEndpoint"] == "unix:///state/realnode/containerd.sock"
    assert conf["serializeImagePulls"] is True
    assert conf["registerWithTaints"] == [realnode.TAINT] and conf["makeIPTablesUtilChains"] is False
    assert conf["address"] == realnode.NODE_IP and conf["readOnlyPort"] == 0
    assert conf["clusterDNS"] == [clusternet.DNS_SERVICE_IP] and conf["clusterDomain"] == "cluster.local"
    assert conf["authentication"]["anonymous"]["enabled"] is False
    assert conf["authorization"]["mode"] == "Webhook"
    argv = realnode.kubelet_argv(LAYOUT, Path("/k/kubeconfig"))
    assert f"--hostname-override={realnode.NODE_NAME}" in argv and f"--node-ip={realnode.NODE_IP}" in argv
    [labels] = [a.split("=", 1)[1] for a in argv if a.startswith("--node-labels=")]
    assert dict(kv.split("=") for kv in labels.split(",")) == realnode.LABELS
    assert not any("kwok" in a for a in argv)


def test_toleration_matches_the_taint():
    t, tol = realnode.TAINT, realnode.TOLERATION
    assert (tol["key"], tol["value"], tol["effect"]) == (t["key"], t["value"], t["effect"])


def test_cgroup_v1_controllers_from_mountinfo():
    mountinfo = ("31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
                 "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n"
                 "33 31 0:30 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
                 "34 31 0:31 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n")
    assert realnode.mounted_cgroup_v1_controllers(mountinfo) == {"cpu", "cpuacct", "memory"}


def test_container_log_joins_partial_lines(tmp_path, monkeypatch):
    monkeypatch.setenv("STARTBENCH_CACHE", str(tmp_path))
    log = tmp_path / "cluster" / "realnode" / "pod-logs" / "ns_p_u1" / "c" / "0.log"
    log.parent.mkdir(parents=True)
    log.write_text("2026-01-01T00:00:00.1Z stdout P hel\n2026-01-01T00:00:00.2Z stdout F lo world\n"
                   "2026-01-01T00:00:00.3Z stderr F \n2026-01-01T00:00:00.4Z stdout F 1\n")
    assert realnode.container_log("ns", "p", "u1", "c") == "hello world\n\n1\n"
    assert realnode.container_log("ns", "p", "other", "c") is None
