"""The operator on the real local cluster: plan, schedule, record timelines and failures, survive a restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from startbench.cli import main as cli
from startbench.localcluster import paths
from tests.cluster import benchmarks as bm
from tests.cluster.helpers import wait_for
from tests.support.registry_http import manifest_of

REPO = paths.REPO_ROOT


def _images(*names):
    return [{"name": n, "image": bm.BASE_IMAGE, "framework": "pytorch", "variant": "naive"} for n in names]


def test_two_images_cold_and_warm_three_repetitions_succeed_with_complete_timelines(operator, custom, core, namespace,
                                                                                 local_cluster, fresh_image, capsys):
    # Two images no node has seen, of different sizes: the first cold pull on each node downloads.
    images = [{"name": "base", "image": fresh_image(1024), "framework": "pytorch", "variant": "naive"},
              {"name": "tiny", "image": fresh_image(256 * 1024), "framework": "pytorch", "variant": "slim"}]
    bm.create(custom, namespace, bm.benchmark("compare", images, max_nodes=2, cache="both", repetitions=3))
    seen_progress = set()

    def finished():
        body = bm.get(custom, namespace, "compare")
        seen_progress.add(body.get("status", {}).get("progress"))
        return body.get("status", {}).get("phase") in bm.TERMINAL and body

    body = wait_for(finished, timeout=180, interval=0.2, what="benchmark finished")
    status = body["status"]
    assert status["phase"] == "Succeeded", status
    assert status["progress"] == "24/24" and status["succeeded"] == 24
    assert len(seen_progress - {None, "24/24"}) >= 1, "progress was never shown while the benchmark ran"
    records = bm.records(core, namespace, "compare")
    assert len(records) == 24 and len({r["name"] for r in records}) == 24
    for record in records:
        timeline = record["timeline"]
        phase_sum = sum(p["ms"] for p in timeline["phases"].values())
        assert abs(phase_sum - timeline["totalMs"]) <= 0.01 * timeline["totalMs"], record["name"]
        assert set(timeline["phases"]) >= {"scheduling", "waiting_to_pull", "pulling", "create_start"}
        assert all(p["source"] for p in timeline["phases"].values())
        assert (record.get("pull") or {}).get("imageSizeBytes", 0) > 0 or timeline["cacheObserved"] == "hit"
    # The cache state is the one observed: every warm run found the image; of the cold runs (pull policy Always,
    # no purge) on each node, the first downloaded the image and the next two re-resolved it and transferred
    # nothing, as the node's image list before each run shows.
    assert {r["timeline"]["cacheObserved"] for r in records if r["cacheAsked"] == "warm"} == {"hit"}
    for node in status["nodes"]:
        for image in ("base", "tiny"):
            cold = sorted((r for r in records if (r["node"], r["image"], r["cacheAsked"]) == (node, image, "cold")),
                          key=lambda r: r["order"])
            assert [r["cache"] for r in cold] == ["miss", "revalidated", "revalidated"], (node, image, cold)
            assert [r["timeline"]["cacheEvidence"]["imageOnNode"] for r in cold] == [False, True, True]
    assert [c["name"] for c in status["nodeContext"]] == status["nodes"]
    assert all(c["simulated"] and c["serializeImagePulls"] is True for c in status["nodeContext"])
    # Only the downloads set the pull throughput: each node's gauge is the size over the pull time of its miss.
    throughput = {(s.labels["node"], s.labels["image"]): s.value for fam in operator["metrics"].registry.collect()
                  if fam.name == "startbench_pull_throughput_bytes_per_second" for s in fam.samples}
    for r in records:
        if r["cache"] == "miss":
            expected = r["pull"]["imageSizeBytes"] / r["pull"]["seconds"]
            assert throughput[(r["node"], r["image"])] == pytest.approx(expected), r
    assert {s["image"] for s in status["summaries"]} == {"base", "tiny"}
    assert core.list_namespaced_pod(namespace).items == [], "succeeded run pods are kept (keep: failed)"
    reasons = [e.reason for e in bm.benchmark_events(core, namespace, "compare")]
    assert "Planned" in reasons and "BenchmarkSucceeded" in reasons
    # Metrics were recorded for every run, with bounded labels.
    runs = sum(s.value for fam in operator["metrics"].registry.collect() if fam.name == "startbench_runs"
               for s in fam.samples if s.name == "startbench_runs_total" and s.labels["benchmark"] == "compare")
    assert runs == 24
    # Each image is described from its registry's manifest, in the status and in the image metrics.
    sizes = {(s.labels["image"], s.labels["kind"]): s.value for fam in operator["metrics"].registry.collect()
             if fam.name == "startbench_image_size_bytes" for s in fam.samples if s.labels["benchmark"] == "compare"}
    for image in images:
        doc, digest = manifest_of(image["image"])
        compressed = sum(layer["size"] for layer in doc["layers"])
        assert status["images"][image["name"]] == {
            "reference": image["image"], "framework": "pytorch", "variant": image["variant"], "digest": digest,
            "compressedBytes": compressed, "layers": len(doc["layers"]),
            "layerMediaTypes": sorted({layer["mediaType"] for layer in doc["layers"]})}
        assert sizes[(image["name"], "compressed")] == compressed
    # The capacity report learns from these runs: each image cold and warm, on the benchmark's 2 nodes, which
    # fit 8 pods each (8 GPUs, 1 per pod), so of 40 pods 16 start at once and 24 wait.
    argv = ["capacity", "compare", "-n", namespace, "--kubeconfig", local_cluster["kubeconfig"], "--pods", "40"]
    assert cli.main(argv + ["--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["question"]["nodes"], doc["question"]["pods_per_node"]) == (2, 8)
    # Cold profiles learn from the downloads only (one per node), never from the transfer-free pulls.
    assert {(p["image"], p["cold_runs"], p["warm_runs"], p["endpoint"]) for p in doc["profiles"]} == {
        ("base", 2, 6, "container start"), ("tiny", 2, 6, "container start")}
    assert {(e["image"], e["cache"], e["pods_started"], e["pods_waiting"], e["nodes_pulling"])
            for e in doc["estimates"]} == {(i, c, 16, 24, 2) for i in ("base", "tiny") for c in ("cold", "warm")}
    assert cli.main(argv + ["--nodes", "10", "--registry-bandwidth", "1Gbit/s"]) == 0
    out = capsys.readouterr().out
    assert "40 pods on 10 node(s), 8 per node, registry 125 MB/s" in out and "saves about" in out


def test_missing_image_and_unschedulable_runs_fail_with_reasons(operator, custom, core, namespace):
    images = [{"name": "missing", "image": "127.0.0.1:5000/startbench/not-there:v0", "framework": "pytorch",
               "variant": "naive"}]
    bm.create(custom, namespace, bm.benchmark("nopull", images, max_nodes=1, cache="cold"))
    # A blocker pod holds one of sim-gpu-03's 8 GPUs; a benchmark that needs 8 there passes planning (the node is
    # Ready with 8 allocatable) but the scheduler cannot place its pod.
    blocker = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "blocker"},
               "spec": {"nodeSelector": {"kubernetes.io/hostname": "sim-gpu-03"},
                        "tolerations": bm.GPU_TOLERATIONS,
                        "containers": [{"name": "c", "image": "registry.example/hold:v1",
                                        "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}}
    blocker["metadata"]["annotations"] = {"sim.startbench.dev/image-bytes": "1"}
    core.create_namespaced_pod(namespace, blocker)
    wait_for(lambda: core.read_namespaced_pod("blocker", namespace).status.phase == "Running", what="blocker runs")
    unsched = bm.benchmark("nogpu", _images("base"), max_nodes=4, gpus=8, cache="cold", runTimeoutSeconds=30)
    unsched["spec"]["nodes"]["selector"] = {"matchLabels": {"kubernetes.io/hostname": "sim-gpu-03"}}
    bm.create(custom, namespace, unsched)

    nopull = bm.wait_finished(custom, namespace, "nopull")
    assert nopull["status"]["phase"] == "Failed"
    [record] = bm.records(core, namespace, "nopull")
    assert record["reason"] in ("ErrImagePull", "ImagePullBackOff") and "not found" in record["message"]
    events = bm.benchmark_events(core, namespace, "nopull")
    assert any(e.reason.startswith("Run") and e.type == "Warning" for e in events)
    # The operator could not read the image either: it says so, records no size, and the run still went ahead.
    assert "HTTP 404" in nopull["status"]["images"]["missing"]["message"]
    assert "compressedBytes" not in nopull["status"]["images"]["missing"]
    assert any(e.reason == "ImageUnreadable" and e.type == "Warning" for e in events)

    nogpu = bm.wait_finished(custom, namespace, "nogpu", timeout=90)
    [record] = bm.records(core, namespace, "nogpu")
    assert nogpu["status"]["phase"] == "Failed"
    assert record["reason"] == "Unschedulable" and "nvidia.com/gpu" in record["message"]
    # Pods that never ran are not kept holding a node.
    wait_for(lambda: [p.metadata.name for p in core.list_namespaced_pod(namespace).items] == ["blocker"],
             what="failed run pods deleted")


def test_selector_matching_no_node_fails_with_what_to_change(operator, custom, namespace):
    body = bm.benchmark("nowhere", _images("base"))
    body["spec"]["nodes"]["selector"] = {"matchLabels": {"startbench.dev/pool": "tpu"}}
    bm.create(custom, namespace, body)
    status = bm.wait_finished(custom, namespace, "nowhere", timeout=30)["status"]
    assert status["phase"] == "Failed"
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert failed["status"] == "True" and failed["reason"] == "NoUsableNodes"
    assert "startbench.dev/pool=tpu" in failed["message"] and "change spec.nodes.selector" in failed["message"]


def test_build_entry_without_a_push_registry_fails_saying_what_to_set(operator, custom, namespace):
    body = bm.benchmark("tobuild", [{"name": "jax-slim", "build": {"framework": "jax", "variant": "slim"}}])
    bm.create(custom, namespace, body)
    status = bm.wait_finished(custom, namespace, "tobuild", timeout=30)["status"]
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert status["phase"] == "Failed" and failed["reason"] == "ImageBuildFailed"
    assert "STARTBENCH_BUILD_REGISTRY" in failed["message"]


def test_deleting_a_benchmark_removes_its_pods(operator, custom, core, namespace):
    body = bm.benchmark("deleteme", _images("base"), max_nodes=2, repetitions=5, parallelism=2,
                        runTimeoutSeconds=600)
    body["spec"]["workload"] = {"model": "resnet18"}
    bm.create(custom, namespace, body)
    wait_for(lambda: core.list_namespaced_pod(namespace, label_selector="startbench.dev/benchmark=deleteme").items,
             what="run pods created")
    custom.delete_namespaced_custom_object("startbench.dev", "v1alpha1", namespace, "benchmarks", "deleteme")
    wait_for(lambda: not core.list_namespaced_pod(namespace, label_selector="startbench.dev/benchmark=deleteme").items
             and not core.list_namespaced_config_map(namespace, label_selector="startbench.dev/benchmark=deleteme").items,
             timeout=60, what="pods and records garbage-collected")


def _operator_process(kubeconfig: str, namespace: str, log_path) -> subprocess.Popen:
    env = {**os.environ, "KUBECONFIG": kubeconfig, "STARTBENCH_NAMESPACES": namespace, "STARTBENCH_METRICS_PORT": "0",
           "PYTHONPATH": str(REPO / "operator")}
    return subprocess.Popen([sys.executable, "-m", "startbench", "operator", "--liveness", ""],
                            stdout=open(log_path, "wb"), stderr=subprocess.STDOUT, env=env, start_new_session=True)


def test_operator_killed_mid_benchmark_finishes_after_restart_exactly_once(crd, local_cluster, custom, core, tmp_path):
    # Its own namespace and its own operator process (the in-process one watches t-* only).
    namespace = f"k-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": namespace}})
    wait_for(lambda: core.list_namespaced_service_account(namespace, field_selector="metadata.name=default").items,
             what="default service account")
    try:
        first = _operator_process(local_cluster["kubeconfig"], namespace, tmp_path / "first.log")
        bm.create(custom, namespace, bm.benchmark("restart", _images("a", "b"), max_nodes=2, cache="both",
                                                  repetitions=2, parallelism=2))

        def some_done():
            progress = bm.get(custom, namespace, "restart").get("status", {}).get("progress") or "0/16"
            return 3 <= int(progress.split("/")[0]) < 14
        wait_for(some_done, timeout=90, interval=0.1, what="a few runs recorded")
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
        killed_at = bm.get(custom, namespace, "restart")["status"]["progress"]
        time.sleep(2)  # runs in flight go on without an operator
        second = _operator_process(local_cluster["kubeconfig"], namespace, tmp_path / "second.log")
        try:
            body = bm.wait_finished(custom, namespace, "restart", timeout=180)
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(30)
        assert body["status"]["phase"] == "Succeeded", (killed_at, body["status"], (tmp_path / "second.log").read_text()[-3000:])
        records = bm.records(core, namespace, "restart")
        names = [r["name"] for r in records]
        assert len(names) == 16 and len(set(names)) == 16, f"runs recorded more or less than once: {sorted(names)}"
        assert core.list_namespaced_pod(namespace).items == [], "orphan pods after the restart"
    finally:
        core.delete_namespace(namespace)


def test_thresholds_gate_the_benchmark_with_a_condition_and_an_event(operator, custom, core, namespace):
    body = bm.benchmark("gate", _images("base"), max_nodes=1, cache="cold", thresholds=[
        {"metric": "pulling", "quantile": "p99", "maxSeconds": 0.001},   # no real pull is that fast
        {"metric": "scheduling", "quantile": "p50", "maxSeconds": 60},
    ])
    bm.create(custom, namespace, body)
    status = bm.wait_finished(custom, namespace, "gate", timeout=60)["status"]
    assert status["phase"] == "Succeeded"  # every run ran; the gate is a separate verdict
    met = next(c for c in status["conditions"] if c["type"] == "ThresholdsMet")
    assert met["status"] == "False" and "pulling" in met["message"]
    verdicts = {t["metric"]: t for t in status["thresholds"]}
    assert verdicts["pulling"]["met"] is False and verdicts["scheduling"]["met"] is True
    warnings = [e for e in bm.benchmark_events(core, namespace, "gate") if e.type == "Warning"]
    assert any("pulling" in e.message for e in warnings), [e.message for e in warnings]


def test_purge_before_cold_runs_makes_every_cold_run_pull_the_whole_image(operator, custom, core, namespace):
    # Pull policy Always on a node that has the image transfers nothing (the manifest round trip only); with
    # purgeImageBeforeColdRun the operator removes the image first, so every cold run pulls it whole.
    pulls = {}
    for purge in (True, False):
        name = f"purge-{str(purge).lower()}"
        bm.create(custom, namespace, bm.benchmark(name, _images("base"), max_nodes=1, cache="cold", repetitions=3,
                                                  purgeImageBeforeColdRun=purge))
        assert bm.wait_finished(custom, namespace, name, timeout=90)["status"]["phase"] == "Succeeded"
        pulls[purge] = {r["repetition"]: r["pull"]["seconds"] for r in bm.records(core, namespace, name)}
    whole = pulls[True]
    assert max(whole.values()) < 2 * min(whole.values()), f"purged pulls differ: {whole}"
    # Without the purge the image is on the node from the runs before: later cold runs transfer nothing.
    assert all(pulls[False][rep] < 0.5 * min(whole.values()) for rep in (2, 3)), pulls
