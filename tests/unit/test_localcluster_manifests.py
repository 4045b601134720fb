import argparse
import base64

import pytest
import yaml

from startbench.localcluster import imageref, nodes, stages
from startbench.cli.cluster import _bytes_per_second


def test_stage_config_is_valid_kwok_yaml_with_unique_names():
    docs = list(yaml.safe_load_all(stages.config_yaml()))
    names = [d["metadata"]["name"] for d in docs]
    assert len(names) == len(set(names)) >= 7
    for doc in docs:
        assert doc["apiVersion"] == "kwok.x-k8s.io/v1alpha1" and doc["kind"] == "Stage"
        assert doc["spec"]["resourceRef"] == {"apiGroup": "v1", "kind": "Pod"}
        for expr in doc["spec"]["selector"]["matchExpressions"]:
            assert expr["operator"] in ("In", "NotIn", "Exists", "DoesNotExist")
            assert ("values" in expr) == (expr["operator"] in ("In", "NotIn"))


def test_container_start_waits_for_the_pull_simulator():
    start = next(s for s in stages.pod_stages() if s["metadata"]["name"] == "sb-container-start")
    keys = [e["key"] for e in start["spec"]["selector"]["matchExpressions"]]
    assert f'.metadata.annotations["{stages.PULLED}"]' in keys


def test_templates_have_balanced_go_template_delimiters():
    for stage in stages.pod_stages():
        template = stage["spec"]["next"].get("statusTemplate", "")
        assert template.count("{{") == template.count("}}"), stage["metadata"]["name"]
        for action in ("range", "if"):
            opens = template.count("{{ " + action + " ")
            assert opens <= template.count("{{ end }}")


def test_default_pools_and_gpu_node_manifest():
    pools = nodes.default_pools(gpu_nodes=3, cpu_nodes=2, pull_bandwidth=10)
    manifests = nodes.manifests(pools)
    assert [m["metadata"]["name"] for m in manifests] == ["sim-gpu-00", "sim-gpu-01", "sim-gpu-02",
                                                          "sim-cpu-00", "sim-cpu-01"]
    gpu = manifests[0]
    assert gpu["status"]["allocatable"]["nvidia.com/gpu"] == "8" == gpu["status"]["capacity"]["nvidia.com/gpu"]
    assert gpu["spec"]["taints"] == [nodes.GPU_TAINT]
    assert gpu["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
    assert gpu["metadata"]["annotations"][nodes.PULL_BANDWIDTH] == "10"
    cpu = manifests[-1]
    assert "nvidia.com/gpu" not in cpu["status"]["capacity"] and cpu["spec"]["taints"] == []


def test_thousand_node_names_are_unique_and_sorted():
    names = nodes.NodePool("sim-gpu", 1000, gpus=8).names()
    assert len(set(names)) == 1000 and names == sorted(names) and names[-1] == "sim-gpu-999"


@pytest.mark.parametrize("ref, host, repo, reference", [
    ("nginx", "docker.io", "library/nginx", "latest"),
    ("127.0.0.1:5000/startbench/pytorch:slim", "127.0.0.1:5000", "startbench/pytorch", "slim"),
    ("localhost:5000/a@sha256:" + "a" * 64, "localhost:5000", "a", "sha256:" + "a" * 64),
    ("ghcr.io/org/img:v1", "ghcr.io", "org/img", "v1"),
    ("org/img:v1", "docker.io", "org/img", "v1"),
])
def test_parse_image_reference(ref, host, repo, reference):
    parsed = imageref.parse(ref)
    assert (parsed.host, parsed.repository, parsed.reference) == (host, repo, reference)


def test_bad_reference_is_invalid_image_name():
    with pytest.raises(imageref.RegistryError) as err:
        imageref.parse("Not A/Valid::ref")
    assert err.value.reason == "InvalidImageName"


def test_default_pull_policy_follows_the_api_server():
    assert imageref.default_pull_policy("nginx") == "Always"
    assert imageref.default_pull_policy("nginx:latest") == "Always"
    assert imageref.default_pull_policy("nginx:1.27") == "IfNotPresent"


def test_credentials_from_dockerconfigjson():
    auth = base64.b64encode(b"user:pa:ss").decode()
    configs = [{"auths": {"other:1": {"auth": "eDp5"}, "http://127.0.0.1:5001": {"auth": auth}}}]
    assert imageref.credentials_for("127.0.0.1:5001", configs) == ("user", "pa:ss")
    assert imageref.credentials_for("127.0.0.1:5000", configs) is None


@pytest.mark.parametrize("text, value", [("125MB/s", 125_000_000), ("1Gbit/s", 125_000_000),
                                         ("1000", 1000), ("10 MiB/s", 10 * 1024 * 1024)])
def test_bandwidth_parsing(text, value):
    assert _bytes_per_second(text) == value


@pytest.mark.parametrize("text", ["fast", "-5MB/s", "0", "12parsecs"])
def test_bad_bandwidth_is_refused_with_an_example(text):
    with pytest.raises(argparse.ArgumentTypeError, match="125MB/s|positive"):
        _bytes_per_second(text)
