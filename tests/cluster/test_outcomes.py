"""Every way a run can end, each caused for real: a real pod on the real node (docs/realnode.md) for what needs a
container, the API server for a refused pod, a simulated node for the pull simulator's share. Each test asserts
the record's result and reason, and that its message names what to change (docs/benchmark.md, Outcomes).

The real-node benchmarks start together (one module fixture) and each test waits for its own, so the file takes
about as long as its slowest run: the one that times out after runTimeoutSeconds (30 s, the least allowed)."""

from __future__ import annotations

import time
import uuid

import pytest
from kubernetes import client

from startbench.localcluster import realnode
from tests.cluster import benchmarks as bm
from tests.cluster.helpers import wait_for
from tests.cluster.test_realnode import real_node  # noqa: F401  (the module-scoped fixture)

SLEEP = ["python3", "-c", "import time; time.sleep(600)"]
SMALL = {"steps": 2, "batchSize": 2, "imageSize": 64}


def _real(name: str, image: str, framework: str, **spec) -> dict:
    """One cold run on the real node, on the CPU."""
    body = bm.benchmark(name, [{"name": "i", "image": image, "framework": framework}], pool="real", max_nodes=1,
                        gpus=0, cache="cold", repetitions=1, parallelism=1, **spec)
    body["spec"]["nodes"]["tolerations"] = [realnode.TOLERATION]
    return body


def _benchmarks(jax: str) -> list[dict]:
    return [
        # 64 MiB is far below what importing JAX takes: the kernel kills the process at the cgroup's limit.
        _real("oom", jax, "jax", runTimeoutSeconds=120,
              workload={**SMALL, "resources": {"requests": {"memory": "64Mi"}, "limits": {"memory": "64Mi"}}}),
        # The image's own entry point (framework none) exits 3 after saying why.
        _real("crash", bm.BASE_IMAGE, "none", runTimeoutSeconds=120, workload={"args": [
            "python3", "-c", "import sys; print('reading /data/train: no such directory'); sys.exit(3)"]}),
        # The workload's failure injection: a report with ok: false, failed before the first step.
        _real("fail", jax, "jax", runTimeoutSeconds=120, workload={**SMALL, "args": ["--fail-at", "first_step"]}),
        # The workload asked for its help: it prints it and exits 0 without running, so without a report.
        _real("noreport", jax, "jax", runTimeoutSeconds=120, workload={**SMALL, "args": ["--help"]}),
        # Still running when runTimeoutSeconds is up: the operator ends the run (the kubelet's deadline is later).
        _real("slow", bm.BASE_IMAGE, "none", runTimeoutSeconds=30, workload={"args": SLEEP}),
        # Deleted by the test (kubectl delete pod) while it runs.
        _real("deleted", bm.BASE_IMAGE, "none", runTimeoutSeconds=300, workload={"args": SLEEP}),
        # A purge asked for on a real node with no cache-purge agent: the run ends before its pod exists.
        _real("purge", bm.BASE_IMAGE, "none", runTimeoutSeconds=120, purgeImageBeforeColdRun=True,
              workload={"args": ["python3", "-c", "print(1)"]}),
        # A pull Secret that does not exist: the image is public, so the run succeeds and only an event says so.
        _real("secrets", bm.BASE_IMAGE, "none", runTimeoutSeconds=120, imagePullSecrets=[{"name": "no-such-secret"}],
              workload={"args": ["python3", "-c", "print(1)"]}),
    ]


def _new_namespace(core) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name, "labels": {"startbench.dev/test": "true"}}})
    wait_for(lambda: core.list_namespaced_service_account(name, field_selector="metadata.name=default").items,
             what="the default service account")
    return name


@pytest.fixture(scope="module")
def started(real_node, jax_image, operator, kube_api, core):  # noqa: F811
    """Every real-node benchmark of this file, created at once in one namespace; yields (namespace, custom API)."""
    custom = client.CustomObjectsApi(kube_api)
    namespace = _new_namespace(core)
    for body in _benchmarks(jax_image):
        bm.create(custom, namespace, body)
    yield namespace, custom
    core.delete_namespace(namespace)
    wait_for(lambda: not core.list_namespace(field_selector=f"metadata.name={namespace}").items, timeout=120,
             what=f"namespace {namespace} to go")


def _only_record(started, core, name: str, timeout: float = 180) -> dict:
    namespace, custom = started
    status = bm.wait_finished(custom, namespace, name, timeout=timeout)["status"]
    records = bm.records(core, namespace, name)
    assert len(records) == 1, records
    assert status["failed"] + status["succeeded"] == 1, status
    return records[0]


@pytest.mark.parametrize("name, reason, words", [pytest.param(*case, id=case[0]) for case in (
    ("oom", "OOMKilled", ["spec.workload.resources.limits.memory (64Mi)", "raise that limit", "batchSize"]),
    ("crash", "Error", ["exited with code 3", "reading /data/train: no such directory", "spec.workload.args"]),
    ("fail", "WorkloadFailed", ["before mark first_step", "InjectedFailure",
                                "remove --fail-at from spec.workload.args"]),
    ("noreport", "NoReport", ["exited 0 without a workload report", "--help"]),
    ("slow", "Timeout", ["spec.runTimeoutSeconds (30s)", "workload still running", "Raise spec.runTimeoutSeconds"]),
    ("purge", "PurgeFailed", ["no running cache-purge agent", "cachePurge.enabled=true",
                              "spec.purgeImageBeforeColdRun to false"]),
)])
def test_a_real_run_ends_with_its_reason_and_what_to_change(started, core, name, reason, words):
    record = _only_record(started, core, name)
    assert (record["result"], record["reason"]) == ("Failed", reason), record["message"]
    for word in words:
        assert word in record["message"], (word, record["message"])
    namespace, custom = started
    status = bm.get(custom, namespace, name)["status"]
    assert status["phase"] == "Failed" and reason in status["message"], status  # the why, where kubectl shows it
    warnings = [e for e in bm.benchmark_events(core, namespace, name) if e.reason == f"Run{reason}"]
    assert warnings and warnings[0].type == "Warning", [e.reason for e in bm.benchmark_events(core, namespace, name)]


def test_a_timed_out_run_ends_at_the_operators_deadline_and_its_pod_goes(started, core):
    record = _only_record(started, core, "slow")
    ended_after = (record["finishedMs"] - record["createdMs"]) / 1000.0
    # runTimeoutSeconds after creation, give or take a reconcile step: the kubelet's deadline (60 s later) never.
    assert 30.0 < ended_after < 40.0, ended_after
    namespace, _ = started
    wait_for(lambda: not core.list_namespaced_pod(namespace, label_selector=f"startbench.dev/run={record['name']}")
             .items, timeout=30, what="the timed-out run's pod to go")


def test_a_pod_deleted_while_it_runs_is_pod_deleted(started, core):
    namespace, custom = started
    pod = wait_for(lambda: [p for p in core.list_namespaced_pod(namespace, label_selector="startbench.dev/benchmark="
                                                                "deleted").items if p.status.phase == "Running"],
                   timeout=120, what="the run's pod to be running")[0]
    time.sleep(1)  # the operator has seen it running
    core.delete_namespaced_pod(pod.metadata.name, namespace)  # as `kubectl delete pod` does: with its grace period
    record = _only_record(started, core, "deleted")
    assert (record["result"], record["reason"]) == ("Failed", "PodDeleted"), record["message"]
    assert "workload still running" in record["message"] and "new name" in record["message"], record["message"]


def test_a_missing_pull_secret_is_named_in_a_warning_on_the_real_node(started, core):
    record = _only_record(started, core, "secrets")
    assert (record["result"], record["reason"]) == ("Succeeded", "Completed"), record["message"]
    namespace, _ = started
    warnings = wait_for(lambda: [e for e in bm.benchmark_events(core, namespace, "secrets")
                                 if e.reason == "MissingPullSecrets"], what="the MissingPullSecrets event")
    assert len(warnings) == 1 and warnings[0].type == "Warning"
    assert "no-such-secret" in warnings[0].message and "real-node-0" in warnings[0].message
    assert "create the Secret" in warnings[0].message


def test_a_missing_pull_secret_is_named_in_a_warning_on_a_simulated_node(operator, custom, core, namespace):
    body = bm.benchmark("secrets", [{"name": "base", "image": bm.BASE_IMAGE, "framework": "none"}], pool="cpu",
                        max_nodes=1, gpus=0, cache="cold", imagePullSecrets=[{"name": "no-such-secret"}])
    bm.create(custom, namespace, body)
    status = bm.wait_finished(custom, namespace, "secrets", timeout=60)["status"]
    assert status["phase"] == "Succeeded", status
    kubelet = [e for e in core.list_namespaced_event(namespace).items if e.reason == "FailedToRetrieveImagePullSecret"]
    assert kubelet and kubelet[0].message == ("Unable to retrieve some image pull secrets (no-such-secret); "
                                              "attempting to pull the image may not succeed."), kubelet
    warnings = [e for e in bm.benchmark_events(core, namespace, "secrets") if e.reason == "MissingPullSecrets"]
    assert len(warnings) == 1 and "no-such-secret" in warnings[0].message, [e.message for e in warnings]


def test_a_resource_quota_refuses_the_pods_and_the_message_says_what_to_change(operator, custom, core, namespace):
    core.create_namespaced_resource_quota(namespace, {"metadata": {"name": "memory"}, "spec": {"hard": {
        "requests.memory": "1Gi", "limits.memory": "1Gi"}}})
    # The quota admission refuses every pod until the controller has counted the quota's use once.
    wait_for(lambda: (core.read_namespaced_resource_quota("memory", namespace).status.hard or {}), timeout=30,
             what="the quota's status")
    over = {"requests": {"memory": "2Gi"}, "limits": {"memory": "2Gi"}}
    for name, workload in (("over", {"resources": over}), ("unstated", {})):
        bm.create(custom, namespace, bm.benchmark(name, [{"name": "base", "image": bm.BASE_IMAGE, "framework": "none"}],
                                                  pool="cpu", max_nodes=1, gpus=0, cache="cold", workload=workload))
    for name, words in (("over", ["exceeded quota", "limits.memory=2Gi", "lower spec.workload.resources",
                                  "raise the quota"]),
                        ("unstated", ["must specify", "set them in spec.workload.resources"])):
        assert bm.wait_finished(custom, namespace, name, timeout=60)["status"]["phase"] == "Failed"
        (record,) = bm.records(core, namespace, name)
        assert record["reason"] == "PodRejected", record["message"]
        for word in words:
            assert word in record["message"], (word, record["message"])
    assert core.list_namespaced_pod(namespace).items == []
