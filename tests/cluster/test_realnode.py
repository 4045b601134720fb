"""The local cluster's one real node (docs/realnode.md): a real kubelet on our own containerd. Pods there really
pull from the local registry and really run, and the operator reads a real in-pod report from a real pod."""

from __future__ import annotations

import io
import json
import re
import tarfile
import urllib.request
import uuid

import pytest

from startbench.localcluster import realnode
from tests.cluster import benchmarks as bm
from tests.cluster.helpers import pod_events, wait_for

REGISTRY = "127.0.0.1:5000"
JAX_IMAGE = f"{REGISTRY}/startbench-jax:slim-cpu"
MANIFEST_TYPES = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"


@pytest.fixture(scope="module")
def real_node(local_cluster):
    """The real node's name, started here unless it already runs (and then stopped here). Skips, with the exact
    reason, on a machine that cannot run it."""
    already = realnode.status_problem() is None
    said: list[str] = []
    name = realnode.ensure(local_cluster["kubeconfig"], progress=said.append)
    if name is None:
        pytest.skip("; ".join(m for m in said if "unavailable" in m) or "the real node cannot run here")
    yield name
    if not already:
        realnode.stop(progress=lambda m: None)
        assert realnode.leftovers() == [], "the real node left processes or mounts behind"


def _manifest(repo: str, tag: str) -> tuple[str, dict, int]:
    """(digest, manifest, size as containerd counts it: manifest + config + layers) from the registry."""
    req = urllib.request.Request(f"http://{REGISTRY}/v2/{repo}/manifests/{tag}", headers={"Accept": MANIFEST_TYPES})
    with urllib.request.urlopen(req, timeout=10) as resp:
        raw = resp.read()
        digest = resp.headers["Docker-Content-Digest"]
    manifest = json.loads(raw)
    return digest, manifest, len(raw) + manifest["config"]["size"] + sum(layer["size"] for layer in manifest["layers"])


@pytest.fixture
def unique_image(real_node, core):
    """The base image plus one layer of random bytes, pushed under a tag no node has seen: a cold pull that must
    download at least that layer. Removed from the node, Docker and the registry afterwards."""
    import os

    import docker

    repo, tag = "startbench-test/realnode", uuid.uuid4().hex[:12]
    ref = f"{REGISTRY}/{repo}:{tag}"
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, data in (("Dockerfile", f"FROM {bm.BASE_IMAGE}\nCOPY marker /marker\n".encode()),
                           ("marker", os.urandom(256 * 1024))):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    client = docker.from_env()
    client.images.build(fileobj=context, custom_context=True, tag=ref, rm=True)
    for line in client.api.push(ref, stream=True, decode=True):
        assert "error" not in line, line
    yield repo, tag
    for pod in core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={real_node}").items:
        if any(c.image == ref for c in pod.spec.containers):
            core.delete_namespaced_pod(pod.metadata.name, pod.metadata.namespace, grace_period_seconds=0)
    # The kubelet removes the deleted pod's container in its own time; on a loaded 2-core machine that can take
    # more than a minute.
    realnode.remove_image(ref, wait_s=300)
    digest, _, _ = _manifest(repo, tag)
    urllib.request.urlopen(urllib.request.Request(f"http://{REGISTRY}/v2/{repo}/manifests/{digest}", method="DELETE"),
                           timeout=10)
    client.images.remove(ref, force=True)
    client.close()


def test_real_node_is_ready_tainted_and_advertises_fake_gpus(real_node, core):
    node = core.read_node(real_node)
    assert any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)
    assert node.status.capacity["nvidia.com/gpu"] == "8" and node.status.allocatable["nvidia.com/gpu"] == "8"
    assert node.metadata.labels["startbench.dev/pool"] == "real"
    assert node.metadata.labels["nvidia.com/gpu.product"] == "fake"
    assert (node.metadata.annotations or {}).get("kwok.x-k8s.io/node") is None, "a real node must not look simulated"
    taints = {(t.key, t.value, t.effect) for t in node.spec.taints}
    assert ("startbench.dev/real-node", "true", "NoSchedule") in taints
    assert node.status.node_info.container_runtime_version.startswith("containerd://")


def test_pod_really_pulls_from_the_local_registry_and_runs(real_node, core, namespace, unique_image):
    repo, tag = unique_image
    digest, _, expected_size = _manifest(repo, tag)
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "real"},
           "spec": {"restartPolicy": "Never", "nodeSelector": {"startbench.dev/pool": "real"},
                    "tolerations": [realnode.TOLERATION],
                    "containers": [{"name": "c", "image": f"{REGISTRY}/{repo}:{tag}", "imagePullPolicy": "Always",
                                    "command": ["python3", "-c", "print(1)"],
                                    "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}}
    core.create_namespaced_pod(namespace, pod)
    done = wait_for(lambda: (p := core.read_namespaced_pod("real", namespace)).status.phase in ("Succeeded", "Failed")
                    and p, timeout=180, what="the real pod to finish")
    assert done.status.phase == "Succeeded", done.status
    assert done.spec.node_name == real_node
    status = done.status.container_statuses[0]
    assert status.state.terminated.exit_code == 0
    assert status.image_id == f"{REGISTRY}/{repo}@{digest}", "the image did not come from the local registry"
    pulled = [e for e in pod_events(core, namespace, "real") if e.reason == "Pulled"]
    assert len(pulled) == 1, [e.message for e in pulled]
    event = pulled[0]
    assert event.source.component == "kubelet" and event.source.host == real_node
    match = re.search(r"Successfully pulled image .* in [0-9.]+m?s .*Image size: (\d+) bytes", event.message)
    assert match, event.message
    assert int(match.group(1)) == expected_size, "the kubelet's image size is not the registry's manifest total"
    log = realnode.container_log(namespace, "real", done.metadata.uid, "c")
    assert log is not None and log.rstrip().endswith("1"), log


def test_operator_parses_a_real_report_from_a_real_pod(real_node, jax_image, operator, custom, core, namespace):
    assert jax_image == JAX_IMAGE
    digest, _, size = _manifest("startbench-jax", "slim-cpu")
    realnode.remove_image(JAX_IMAGE)  # truly cold: its layers are downloaded again
    realnode.wait_unlisted(JAX_IMAGE)  # and the kubelet's image list, the operator's evidence, says so
    images = [{"name": "jax", "image": JAX_IMAGE, "framework": "jax", "variant": "slim"}]
    body = bm.benchmark("real", images, pool="real", max_nodes=1, gpus=0, cache="cold", repetitions=1,
                        parallelism=1, runTimeoutSeconds=600,
                        workload={"steps": 2, "batchSize": 2, "imageSize": 64})
    body["spec"]["nodes"]["tolerations"] = [realnode.TOLERATION]
    bm.create(custom, namespace, body)
    status = bm.wait_finished(custom, namespace, "real", timeout=600)["status"]
    assert status["phase"] == "Succeeded", status
    [record] = bm.records(core, namespace, "real")
    assert record["node"] == real_node and record["result"] == "Succeeded", record
    assert record["report"]["valid"] is True and record["report"]["ok"] is True, record["report"]
    assert record["report"]["device"]["kind"] == "cpu"
    assert record["report"]["metrics"]["samples_per_s"] > 0
    phases = record["timeline"]["phases"]
    for name, mark in (("imports", "framework_imported"), ("device_init", "device_ready"),
                       ("first_step", "first_step")):
        assert phases[name]["source"] == f"report:{mark}", (name, phases[name])
        assert "covers" not in phases[name], (name, phases[name])
    assert record["timeToFirstStepMs"] > 0
    assert abs(sum(p["ms"] for p in phases.values()) - record["timeline"]["totalMs"]) <= 1.0
    assert record["pull"]["imageID"].endswith(digest), record["pull"]
    assert record["pull"]["imageSizeBytes"] == size and record["timeline"]["cacheObserved"] == "miss", record


def test_three_cold_runs_without_purge_record_one_download_and_two_transfer_free_pulls(
        real_node, unique_image, operator, custom, core, namespace, local_cluster, capsys):
    """Pull policy Always on a node that already has the image re-resolves the manifest and transfers nothing,
    yet the kubelet reports it like a download. The node's image list, read before each run, tells them apart;
    only the download teaches the capacity model and the throughput metric."""
    from startbench.cli import main as cli

    repo, tag = unique_image
    ref = f"{REGISTRY}/{repo}:{tag}"
    images = [{"name": "u", "image": ref, "framework": "none", "variant": "custom"}]
    body = bm.benchmark("truth", images, pool="real", max_nodes=1, gpus=0, cache="cold", repetitions=3,
                        parallelism=1, runTimeoutSeconds=300, workload={"args": ["python3", "-c", "print(1)"]})
    body["spec"]["nodes"]["tolerations"] = [realnode.TOLERATION]
    bm.create(custom, namespace, body)
    status = bm.wait_finished(custom, namespace, "truth", timeout=400)["status"]
    assert status["phase"] == "Succeeded", status
    records = sorted(bm.records(core, namespace, "truth"), key=lambda r: r["order"])
    assert [(r["cacheAsked"], r["cache"]) for r in records] == [
        ("cold", "miss"), ("cold", "revalidated"), ("cold", "revalidated")], [r["timeline"] for r in records]
    assert [r["timeline"]["cacheEvidence"]["imageOnNode"] for r in records] == [False, True, True]
    # The node's context, from the real kubelet's own configuration (read through the node proxy).
    [context] = status["nodeContext"]
    assert context["name"] == real_node and context["containerRuntime"].startswith("containerd://")
    assert context["pullSettingsFrom"] == "kubelet configz" and context["serializeImagePulls"] is not None
    download = records[0]
    # Every pull reports the image's full size; only the download's throughput is real.
    assert {r["pull"]["imageSizeBytes"] for r in records} == {download["pull"]["imageSizeBytes"]}
    throughput = {(s.labels["node"], s.labels["image"]): s.value for fam in operator["metrics"].registry.collect()
                  if fam.name == "startbench_pull_throughput_bytes_per_second" for s in fam.samples}
    expected = download["pull"]["imageSizeBytes"] / download["pull"]["seconds"]
    assert throughput[(real_node, "u")] == pytest.approx(expected)
    argv = ["capacity", "truth", "-n", namespace, "--kubeconfig", local_cluster["kubeconfig"], "--pods", "4",
            "--cache", "cold", "--format", "json"]
    assert cli.main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    [profile] = doc["profiles"]
    assert profile["cold_runs"] == 1, profile
    assert profile["node_bandwidth"] == pytest.approx(expected, rel=1e-6), profile


@pytest.mark.parametrize("skew_ms", [2000, -2000, 50, -50])
def test_a_skewed_pod_clock_is_bounded_corrected_and_recorded(skew_ms, real_node, jax_image, operator, custom, core,
                                                              namespace):
    """A real pod whose clock is off (`--clock-skew-ms`: the workload reports every mark that far ahead): the
    operator bounds the offset from what both clocks saw, shifts the marks when zero is out of bounds, and never
    lets a phase go negative or the phases stop adding up. Warm runs: the container starts soon after creation,
    which is what lets a clock behind be told apart."""
    images = [{"name": "jax", "image": JAX_IMAGE, "framework": "jax", "variant": "slim"}]
    body = bm.benchmark("skew", images, pool="real", max_nodes=1, gpus=0, cache="warm", repetitions=1, parallelism=1,
                        runTimeoutSeconds=300, workload={"steps": 2, "batchSize": 2, "imageSize": 64,
                                                         "args": [f"--clock-skew-ms={skew_ms}"]})
    body["spec"]["nodes"]["tolerations"] = [realnode.TOLERATION]
    bm.create(custom, namespace, body)
    status = bm.wait_finished(custom, namespace, "skew", timeout=400)["status"]
    assert status["phase"] == "Succeeded", status
    for record in bm.records(core, namespace, "skew"):
        timeline, truth = record["timeline"], -skew_ms  # operator clock minus pod clock
        clock = timeline["clock"]
        assert clock["lowerMs"] <= truth <= clock["upperMs"], clock  # the bounds hold the truth
        if clock["corrected"]:
            assert clock["offsetMs"] * truth > 0, clock  # moved toward the truth, never away
        phases = timeline["phases"]
        assert all(p["ms"] >= 0 for p in phases.values()), phases
        assert abs(sum(p["ms"] for p in phases.values()) - timeline["totalMs"]) <= 1.0
        assert phases["imports"]["source"] == "report:framework_imported"
    warm = next(r for r in bm.records(core, namespace, "skew") if r["cacheAsked"] == "warm")
    assert warm["cache"] == "hit", warm["timeline"]
    if abs(skew_ms) >= 1000:  # seconds off: more than the facts allow, so detected and counted
        assert warm["timeline"]["clock"]["corrected"], warm["timeline"]
        assert status["clockCorrected"] >= 1


def test_the_same_image_delivered_as_gzip_and_as_zstd_both_reach_the_first_step(real_node, jax_image, operator,
                                                                                 custom, core, namespace):
    """`startbench images convert` re-delivers the JAX slim CPU image with zstd layers; a Benchmark comparing the
    two runs both to the first step on the real node (containerd unpacks zstd), and the status says how each
    image is delivered."""
    from startbench.cli import main as cli

    zstd_image = f"{REGISTRY}/startbench-jax:slim-cpu-zstd-{uuid.uuid4().hex[:8]}"
    assert cli.main(["images", "convert", JAX_IMAGE, "--to", "zstd", "--push", zstd_image]) == 0
    realnode.remove_image(JAX_IMAGE)  # both cold: every layer is downloaded
    realnode.wait_unlisted(JAX_IMAGE)
    images = [{"name": "gzip", "image": JAX_IMAGE, "framework": "jax", "variant": "slim"},
              {"name": "zstd", "image": zstd_image, "framework": "jax", "variant": "slim"}]
    body = bm.benchmark("delivery", images, pool="real", max_nodes=1, gpus=0, cache="cold", repetitions=1,
                        parallelism=1, runTimeoutSeconds=600, workload={"steps": 2, "batchSize": 2, "imageSize": 64})
    body["spec"]["nodes"]["tolerations"] = [realnode.TOLERATION]
    bm.create(custom, namespace, body)
    try:
        status = bm.wait_finished(custom, namespace, "delivery", timeout=600)["status"]
        assert status["phase"] == "Succeeded", status.get("message")
        records = {r["image"]: r for r in bm.records(core, namespace, "delivery")}
        for name in ("gzip", "zstd"):
            assert records[name]["cache"] == "miss" and records[name]["timeToFirstStepMs"] > 0, records[name]
            assert records[name]["timeline"]["phases"]["first_step"]["source"] == "report:first_step"
        assert [t.rsplit("+", 1)[-1] for t in status["images"]["zstd"]["layerMediaTypes"]] == ["zstd"]
        assert all(t.endswith("gzip") for t in status["images"]["gzip"]["layerMediaTypes"])
    finally:
        for pod in core.list_namespaced_pod(namespace).items:
            core.delete_namespaced_pod(pod.metadata.name, namespace, grace_period_seconds=0)
        realnode.remove_image(zstd_image, wait_s=300)
