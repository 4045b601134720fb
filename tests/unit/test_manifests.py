import json

import pytest

from startbench.core.manifests import (DEADLINE_MARGIN_SECONDS, BenchmarkRef, pod_manifest, run_selector,
                                      workload_command)
from startbench.core.planner import plan
from startbench.core.records import records_configmap, records_configmap_name
from startbench.core.spec import BenchmarkSpec, SpecError
from startbench.workload import runner

REF = BenchmarkRef(name="b1", namespace="team-a", uid="0b8a5f0e-1111-2222-3333-444455556666")
SPEC = BenchmarkSpec.from_dict({
    "images": [{"name": "torch-slim", "image": "127.0.0.1:5000/startbench/pytorch:slim", "framework": "pytorch",
                "variant": "slim"},
               {"name": "built", "build": {"framework": "jax", "variant": "naive"}}],
    "nodes": {"selector": {"matchLabels": {"startbench.dev/pool": "gpu"}}, "gpusPerPod": 2,
              "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]},
    "workload": {"model": "resnet50", "steps": 20, "batchSize": 64, "precision": "bf16", "imageSize": 64,
                 "args": ["--num-classes", "10"]},
    "imagePullSecrets": [{"name": "regcred"}],
    "runTimeoutSeconds": 300,
})
RUNS = plan("b1", SPEC, ["kwok-gpu-0"])
COLD = next(r for r in RUNS if r.image == "torch-slim" and r.cache == "cold")
WARM = next(r for r in RUNS if r.image == "torch-slim" and r.cache == "warm")


def test_identity_labels_annotations_and_owner():
    pod = pod_manifest(REF, SPEC, COLD, created_ms=1764000000123)
    meta = pod["metadata"]
    assert meta["name"] == COLD.name and meta["namespace"] == "team-a"
    assert meta["labels"] == {"app.kubernetes.io/managed-by": "startbench", "startbench.dev/benchmark": "b1",
                              "startbench.dev/run": COLD.name, "startbench.dev/image": "torch-slim",
                              "startbench.dev/cache": "cold"}
    assert meta["annotations"]["startbench.dev/created-ms"] == "1764000000123"
    assert meta["annotations"]["startbench.dev/node"] == "kwok-gpu-0"
    (owner,) = meta["ownerReferences"]
    assert owner == {"apiVersion": "startbench.dev/v1alpha1", "kind": "Benchmark", "name": "b1", "uid": REF.uid,
                     "controller": True, "blockOwnerDeletion": True}
    assert run_selector("b1") == "startbench.dev/benchmark=b1,app.kubernetes.io/managed-by=startbench"


def test_pod_spec_pins_node_without_bypassing_the_scheduler():
    spec = pod_manifest(REF, SPEC, COLD, created_ms=1)["spec"]
    assert "nodeName" not in spec
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["kwok-gpu-0"]}]}]
    assert spec["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert spec["restartPolicy"] == "Never"
    # The kubelet's deadline is a backstop behind the operator's own timeout (runTimeoutSeconds from creation).
    assert spec["activeDeadlineSeconds"] == 300 + DEADLINE_MARGIN_SECONDS
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] == 1000


def test_container_resources_pull_policy_and_report_path():
    cold = pod_manifest(REF, SPEC, COLD, created_ms=1)["spec"]["containers"][0]
    warm = pod_manifest(REF, SPEC, WARM, created_ms=1)["spec"]["containers"][0]
    assert cold["imagePullPolicy"] == "Always" and warm["imagePullPolicy"] == "IfNotPresent"
    assert cold["image"] == "127.0.0.1:5000/startbench/pytorch:slim"
    assert cold["resources"] == {"limits": {"nvidia.com/gpu": "2"}}
    assert cold["terminationMessagePath"] == "/dev/termination-log"
    assert cold["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert cold["securityContext"]["allowPrivilegeEscalation"] is False
    assert cold["command"] == ["python", "-m", "startbench.workload"]
    assert cold["args"] == ["--framework", "pytorch", "--model", "resnet50", "--steps", "20", "--batch-size", "64",
                            "--precision", "bf16", "--shape", "tiny-imagenet", "--device", "gpu", "--num-classes", "10"]


def test_command_parses_with_the_workloads_own_parser():
    _, args = workload_command(SPEC, "pytorch")
    cfg = runner.parse_config(args)
    assert (cfg.model, cfg.steps, cfg.batch_size, cfg.precision, cfg.image_size, cfg.device) == (
        "resnet50", 20, 64, "bf16", 64, "gpu")


def test_cpu_pods_ask_for_no_gpu_and_the_cpu_device():
    spec = BenchmarkSpec.from_dict({"images": [{"name": "t", "image": "t:1", "framework": "pytorch"}],
                                    "nodes": {"selector": {"matchLabels": {"startbench.dev/pool": "cpu"}},
                                              "gpusPerPod": 0}})
    run = plan("b1", spec, ["cpu-0"])[0]
    pod = pod_manifest(REF, spec, run, created_ms=1)
    container = pod["spec"]["containers"][0]
    assert "resources" not in container and "tolerations" not in pod["spec"]
    assert container["args"][container["args"].index("--device") + 1] == "cpu"


def _container(workload: dict, gpus: int) -> dict:
    spec = BenchmarkSpec.from_dict({"images": [{"name": "t", "image": "t:1", "framework": "jax"}],
                                    "nodes": {"selector": {"matchLabels": {"a": "b"}}, "gpusPerPod": gpus},
                                    "workload": workload})
    return pod_manifest(REF, spec, plan("b1", spec, ["n"])[0], created_ms=1)["spec"]["containers"][0]


def test_workload_resources_are_the_containers_and_gpu_limits_merge_in():
    resources = {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": 2, "memory": "2Gi"}}
    assert _container({"resources": resources}, gpus=2)["resources"] == {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"cpu": "2", "memory": "2Gi", "nvidia.com/gpu": "2"}}
    assert _container({"resources": resources}, gpus=0)["resources"] == {
        "requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}}
    # Requests alone keep the GPU limit beside them; limits alone keep both in one map.
    assert _container({"resources": {"requests": {"memory": "64Mi"}}}, gpus=1)["resources"] == {
        "requests": {"memory": "64Mi"}, "limits": {"nvidia.com/gpu": "1"}}
    assert _container({"resources": {"limits": {"memory": "64Mi"}}}, gpus=1)["resources"] == {
        "limits": {"memory": "64Mi", "nvidia.com/gpu": "1"}}
    assert "resources" not in _container({"resources": {}}, gpus=0)


def test_framework_none_keeps_the_images_entry_point():
    spec = BenchmarkSpec.from_dict({"images": [{"name": "plain", "image": "busybox:1.36", "framework": "none"}],
                                    "nodes": {"selector": {"matchLabels": {"a": "b"}}},
                                    "workload": {"args": ["true"]}})
    container = pod_manifest(REF, spec, plan("b1", spec, ["n"])[0], created_ms=1)["spec"]["containers"][0]
    assert "command" not in container and container["args"] == ["true"]


def test_unbuilt_image_is_refused_then_resolved():
    run = next(r for r in RUNS if r.image == "built")
    with pytest.raises(SpecError, match="not built"):
        pod_manifest(REF, SPEC, run, created_ms=1)
    built = SPEC.with_built_images({"built": "127.0.0.1:5000/startbench/jax:naive-abc"})
    assert pod_manifest(REF, built, run, created_ms=1)["spec"]["containers"][0]["image"].endswith("jax:naive-abc")
    with pytest.raises(SpecError, match="built image"):
        SPEC.with_built_images({"built": "Not A Reference"})


def test_records_configmap():
    cm = records_configmap(REF, 3, json.dumps([{"name": "r"}]))
    assert cm["metadata"]["name"] == "b1-records-3"
    assert cm["metadata"]["labels"]["startbench.dev/records"] == "true"
    assert cm["metadata"]["ownerReferences"][0]["uid"] == REF.uid
    assert json.loads(cm["data"]["records.json"]) == [{"name": "r"}]
    assert len(records_configmap_name("x" * 253, 9999)) == 253


def test_from_body():
    ref = BenchmarkRef.from_body({"metadata": {"name": "n", "namespace": "ns", "uid": "u"}})
    assert ref == BenchmarkRef("n", "ns", "u")
