"""Fixtures for tests against the real local cluster (marker `cluster`).

The session brings the cluster up once (reusing a healthy one that is already running) and, if it started
it, takes it down at the end. Each test gets its own namespace, deleted afterwards.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from kubernetes import client, config

from startbench.localcluster import cluster, paths


def pytest_collection_modifyitems(items):
    # Every test here needs the cluster; the test that stops it runs last.
    for item in items:
        if "tests/cluster/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.cluster)
    items.sort(key=lambda item: item.get_closest_marker("cluster_last") is not None)


@pytest.fixture(scope="session")
def local_cluster():
    """The running local cluster: {'kubeconfig': path}. Started here unless already running."""
    started_here = False
    # A Docker engine and registries already running serve someone else too (a build, the docker tier): the
    # cluster uses them and leaves them running.
    docker_was_up = all(row["healthy"] for row in cluster.status() if row["name"] in ("docker_engine", "registry"))
    if not cluster.control_plane_healthy():
        cluster.up(cluster.UpOptions(), progress=lambda m: print(f"[cluster] {m}", flush=True))
        started_here = True
    yield {"kubeconfig": str(paths.kubeconfig_path())}
    if started_here:
        cluster.down(progress=lambda m: print(f"[cluster] {m}", flush=True), docker=not docker_was_up)


@pytest.fixture(scope="session")
def kube_api(local_cluster) -> client.ApiClient:
    return config.new_client_from_config(local_cluster["kubeconfig"])


@pytest.fixture(scope="session")
def core(kube_api) -> client.CoreV1Api:
    return client.CoreV1Api(kube_api)


@pytest.fixture
def namespace(core) -> str:
    """A fresh namespace for one test, with its default ServiceAccount ready; deleted afterwards."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name, "labels": {"startbench.dev/test": "true"}}})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if core.list_namespaced_service_account(name, field_selector="metadata.name=default").items:
            break
        time.sleep(0.1)
    yield name
    core.delete_namespace(name, grace_period_seconds=0)
    # Wait while the operator still runs: it removes its finalizer from the namespace's Benchmarks.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if not core.list_namespace(field_selector=f"metadata.name={name}").items:
            break
        time.sleep(0.2)


REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def crd(kube_api):
    """The Benchmark CRD from crds/, applied (server-side) and established."""
    import yaml
    ext = client.ApiextensionsV1Api(kube_api)
    body = yaml.safe_load((REPO / "crds" / "benchmark.yaml").read_text())
    try:
        ext.create_custom_resource_definition(body)
    except client.exceptions.ApiException as err:
        if err.status != 409:
            raise
        current = ext.read_custom_resource_definition(body["metadata"]["name"])
        body["metadata"]["resourceVersion"] = current.metadata.resource_version
        ext.replace_custom_resource_definition(body["metadata"]["name"], body)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        conds = ext.read_custom_resource_definition(body["metadata"]["name"]).status.conditions or []
        if any(c.type == "Established" and c.status == "True" for c in conds):
            return body
        time.sleep(0.2)
    raise AssertionError("the Benchmark CRD was not established in 30s")


@pytest.fixture(scope="session")
def operator(crd, local_cluster):
    """The operator, in-process (Kopf in a thread), watching the test namespaces (t-*). Yields its memo:
    tests read its metrics from memo['metrics']."""
    import os
    import threading

    from startbench.runtime import config as config_module
    from startbench.runtime import handlers
    from startbench.runtime.metrics import Metrics

    os.environ["KUBECONFIG"] = local_cluster["kubeconfig"]
    memo = {"config": config_module.load({"STARTBENCH_NAMESPACES": "t-*"}), "metrics": Metrics()}
    ready, stop = threading.Event(), threading.Event()
    thread = handlers.run_in_thread(memo, ("t-*",), ready=ready, stop=stop)
    _RUNNING_OPERATORS.append((stop, thread))
    assert ready.wait(60), "the operator did not become ready in 60s"
    yield memo
    _stop_operators()


_RUNNING_OPERATORS: list = []  # (stop event, thread) of the in-process operator, while it runs


def _stop_operators() -> None:
    while _RUNNING_OPERATORS:
        stop, thread = _RUNNING_OPERATORS.pop()
        stop.set()
        thread.join(30)


@pytest.fixture
def operator_stopped():
    """For a test that stops the cluster: the in-process operator stops first. (A cluster brought up again has
    no Benchmark CRD, and Kopf's watch ends its thread with 404 Not Found.) Only cluster_last tests use it."""
    _stop_operators()


@pytest.fixture
def custom(kube_api) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube_api)


@pytest.fixture(scope="session")
def fresh_image(local_cluster, docker_client, registries, base_image):
    """make(payload_bytes) -> the reference of a new image (the base image plus one layer of that many bytes)
    under a tag no node has seen, pushed to the no-auth registry here, so a fresh registry has it and its first
    pull on any node is a real download."""
    import io
    import tarfile
    import uuid

    def make(payload_bytes: int = 64 * 1024) -> str:
        reference = f"{registries['noauth']}/startbench-fixtures/tiny:{uuid.uuid4().hex[:12]}"
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name, data in (("Dockerfile", f"FROM {base_image}\nCOPY payload /opt/payload\n".encode()),
                               ("payload", uuid.uuid4().bytes * (payload_bytes // 16))):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        buf.seek(0)
        docker_client.images.build(fileobj=buf, custom_context=True, tag=reference, rm=True, pull=False)
        for line in docker_client.images.push(reference, stream=True, decode=True):
            if "error" in line:
                raise AssertionError(f"pushing {reference} failed: {line['error']}")
        return reference

    return make


@pytest.fixture(scope="module")
def real_node(local_cluster):
    """The real node's name, started unless it runs (the cluster's `down` stops it). Skips, with the exact reason,
    on a machine that cannot run it. tests/cluster/test_realnode.py has its own, which also stops a node it
    started and checks it left nothing behind."""
    from startbench.localcluster import realnode

    said: list[str] = []
    name = realnode.ensure(local_cluster["kubeconfig"], progress=said.append)
    if name is None:
        pytest.skip("; ".join(m for m in said if "unavailable" in m) or "the real node cannot run here")
    return name
