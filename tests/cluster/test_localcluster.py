"""The local cluster behaves like a real one: real scheduler, simulated GPU nodes, kubelet-shaped pulls."""

from __future__ import annotations

import re
import subprocess

import pytest

from startbench.localcluster import cluster, paths, stages
from tests.cluster.helpers import pod_events, wait_for

GPU_TOLERATION = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
PULLED = re.compile(r'^Successfully pulled image "(?P<image>[^"]+)" in (?P<pull>\S+) \((?P<total>\S+) including '
                    r'waiting\)\. Image size: (?P<size>\d+) bytes\.$')


def _pod(name, image, gpus=0, annotations=None, restart="Always", policy=None):
    container = {"name": "main", "image": image}
    if gpus:
        container["resources"] = {"limits": {"nvidia.com/gpu": str(gpus)}}
    if policy:
        container["imagePullPolicy"] = policy
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "annotations": annotations or {}},
            "spec": {"containers": [container], "tolerations": GPU_TOLERATION, "restartPolicy": restart}}


def test_kubectl_lists_simulated_gpu_and_cpu_nodes_ready(local_cluster):
    out = subprocess.run([str(paths.binaries().kubectl), "--kubeconfig", local_cluster["kubeconfig"], "get", "nodes",
                          "-L", "startbench.dev/pool", "--no-headers"], capture_output=True, text=True, check=True)
    rows = [line.split() for line in out.stdout.splitlines()]
    gpu = [r for r in rows if r[0].startswith("sim-gpu-")]
    cpu = [r for r in rows if r[0].startswith("sim-cpu-")]
    assert len(gpu) >= 1 and len(cpu) >= 1, out.stdout
    assert all(r[1] == "Ready" for r in gpu + cpu), out.stdout
    assert {r[-1] for r in gpu} == {"gpu"} and {r[-1] for r in cpu} == {"cpu"}


def test_gpu_nodes_advertise_gpus_labels_and_taint(core):
    node = core.list_node(label_selector="startbench.dev/pool=gpu").items[0]
    assert node.status.allocatable["nvidia.com/gpu"] == "8"
    assert node.status.capacity["nvidia.com/gpu"] == "8"
    for label in ("nvidia.com/gpu.product", "nvidia.com/gpu.memory", "node.kubernetes.io/instance-type"):
        assert node.metadata.labels.get(label), label
    assert any(t.key == "nvidia.com/gpu" and t.effect == "NoSchedule" for t in node.spec.taints)


def test_gpu_pod_is_scheduled_on_a_gpu_node_pulls_and_runs(core, namespace):
    size = 250_000_000
    # A tag no node has pulled before: node image caches outlive a test run, as on a real cluster.
    core.create_namespaced_pod(namespace, _pod("train", f"registry.example/train:{namespace}", gpus=1,
                                               annotations={stages.IMAGE_BYTES: str(size)}))
    pod = wait_for(lambda: (p := core.read_namespaced_pod("train", namespace)).status.phase == "Running" and p,
                   what="pod Running")
    node = core.read_node(pod.spec.node_name)
    assert node.metadata.labels["startbench.dev/pool"] == "gpu", "the scheduler placed a GPU pod on a CPU node"
    events = wait_for(lambda: [e for e in pod_events(core, namespace, "train") if e.reason == "Pulled"] or None,
                      what="Pulled event")
    match = PULLED.match(events[0].message)
    assert match, events[0].message
    assert int(match["size"]) == size
    assert events[0].source.component == "kubelet" and events[0].source.host == pod.spec.node_name
    reasons = {e.reason for e in pod_events(core, namespace, "train")}
    assert {"Scheduled", "Pulling", "Pulled", "Created", "Started"} <= reasons


def test_pod_without_gpu_toleration_stays_off_gpu_nodes(core, namespace):
    manifest = _pod("cpu-only", "registry.example/app:v1", annotations={stages.IMAGE_BYTES: "1000"})
    manifest["spec"]["tolerations"] = []
    core.create_namespaced_pod(namespace, manifest)
    pod = wait_for(lambda: (p := core.read_namespaced_pod("cpu-only", namespace)).spec.node_name and p,
                   what="pod scheduled")
    assert pod.spec.node_name.startswith("sim-cpu-")


def test_missing_image_ends_in_image_pull_back_off(core, namespace):
    core.create_namespaced_pod(namespace, _pod("missing", "127.0.0.1:5000/startbench/does-not-exist:v0"))

    def waiting_reason():
        statuses = core.read_namespaced_pod("missing", namespace).status.container_statuses or []
        return statuses and statuses[0].state.waiting and statuses[0].state.waiting.reason

    wait_for(lambda: waiting_reason() == "ImagePullBackOff", what="ImagePullBackOff")
    reasons = [(e.reason, e.message) for e in pod_events(core, namespace, "missing")]
    assert ("Failed", "Error: ErrImagePull") in reasons
    assert ("BackOff", 'Back-off pulling image "127.0.0.1:5000/startbench/does-not-exist:v0"') in reasons


def test_second_pod_on_a_warm_node_finds_the_image_present(core, namespace):
    image = f"registry.example/warm:{namespace}"
    first = _pod("first", image, annotations={stages.IMAGE_BYTES: "1000000"}, policy="IfNotPresent")
    first["spec"]["nodeSelector"] = {"kubernetes.io/hostname": "sim-cpu-00"}
    core.create_namespaced_pod(namespace, first)
    wait_for(lambda: core.read_namespaced_pod("first", namespace).status.phase == "Running", what="first Running")
    second = {**first, "metadata": {"name": "second", "annotations": first["metadata"]["annotations"]}}
    core.create_namespaced_pod(namespace, second)
    wait_for(lambda: core.read_namespaced_pod("second", namespace).status.phase == "Running", what="second Running")
    messages = [e.message for e in pod_events(core, namespace, "second") if e.reason == "Pulled"]
    assert messages == [f'Container image "{image}" already present on machine']


def test_run_to_completion_pod_succeeds_and_oom_pod_is_oomkilled(core, namespace):
    ann = {stages.IMAGE_BYTES: "1000", stages.RUN_DURATION: "300ms"}
    core.create_namespaced_pod(namespace, _pod("done", "registry.example/job:v1", annotations=ann, restart="Never"))
    core.create_namespaced_pod(namespace, _pod("oom", "registry.example/job:v1", restart="Never",
                                               annotations={**ann, stages.OOM: "true"}))
    wait_for(lambda: core.read_namespaced_pod("done", namespace).status.phase == "Succeeded", what="Succeeded")
    pod = wait_for(lambda: (p := core.read_namespaced_pod("oom", namespace)).status.phase == "Failed" and p,
                   what="OOM pod Failed")
    terminated = pod.status.container_statuses[0].state.terminated
    assert terminated.reason == "OOMKilled" and terminated.exit_code == 137


def test_pod_asking_more_gpus_than_any_node_has_is_unschedulable(core, namespace):
    core.create_namespaced_pod(namespace, _pod("greedy", "registry.example/x:v1", gpus=9))

    def unschedulable():
        pod = core.read_namespaced_pod("greedy", namespace)
        return any(c.type == "PodScheduled" and c.reason == "Unschedulable" for c in pod.status.conditions or [])

    wait_for(unschedulable, what="Unschedulable condition")
    assert any(e.reason == "FailedScheduling" and "nvidia.com/gpu" in e.message
               for e in pod_events(core, namespace, "greedy"))


@pytest.mark.cluster_last
def test_crashed_component_is_reported_with_its_log_and_up_restarts_it(local_cluster):
    import os
    import signal

    from startbench.localcluster.processes import Managed

    simkubelet = Managed("simkubelet", paths.cluster_dir())
    os.kill(simkubelet.pid(), signal.SIGKILL)
    wait_for(lambda: not simkubelet.running(), what="simkubelet gone")
    row = next(r for r in cluster.status() if r["name"] == "simkubelet")
    assert not row["healthy"] and not row["running"]
    assert "not running; last log lines" in row["problem"] and "pull simulator started" in row["problem"]
    cluster.up(cluster.UpOptions(docker=False, build=False), progress=lambda m: None)
    assert next(r for r in cluster.status() if r["name"] == "simkubelet")["healthy"]


@pytest.mark.cluster_last
def test_down_leaves_no_process_and_up_restores(local_cluster, operator_stopped):
    assert cluster.status(), "cluster status is empty while the cluster runs"
    stopped = cluster.down(progress=lambda m: None, docker=False)
    try:
        assert "kube-apiserver" in stopped and "etcd" in stopped and "kwok" in stopped
        assert cluster.leftover_processes() == []
        assert not any(row["healthy"] for row in cluster.status() if row["name"] == "kube-apiserver")
    finally:
        cluster.up(cluster.UpOptions(docker=False, build=False), progress=lambda m: None)
