"""The Helm chart on the local cluster: `helm install` creates valid objects, and the chart's RBAC is enough for
the operator to complete an example Benchmark.

The simulated (KWOK) nodes run no containers, so the operator pod the chart's Deployment creates does not really
run there. The test therefore runs the operator exactly as that Deployment would, here: the Deployment's command
and arguments, its environment, and the chart's ServiceAccount (a kubeconfig holding a token from the TokenRequest
API), so every API call is authorised by the chart's RBAC alone. Two things differ, both said where they happen:
the Python interpreter is this checkout's instead of the image's, and the ports bind to free loopback ports
(another process may hold 8080 or 9090 here).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from startbench.localcluster import paths
from tests.cluster import benchmarks as bm
from tests.cluster.helpers import wait_for

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "startbench"
EXAMPLE = REPO / "examples" / "cpu-smoke.yaml"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(*args: str, kubeconfig: str, timeout: float = 120) -> str:
    result = subprocess.run([*args, "--kubeconfig", kubeconfig], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(args[:3])}: {result.stdout[-2000:]}{result.stderr[-2000:]}"
    return result.stdout


@pytest.fixture
def release(crd, local_cluster, core):
    """The chart installed into its own namespace, watching only that namespace; uninstalled afterwards."""
    helm = str(paths.binaries().helm)
    namespace = f"h-{uuid.uuid4().hex[:8]}"  # not t-*: the in-process operator must not handle these Benchmarks
    name = f"sb-{namespace[2:]}"
    core.create_namespace({"metadata": {"name": namespace, "labels": {"startbench.dev/test": "true"}}})
    kubeconfig = local_cluster["kubeconfig"]
    try:
        _run(helm, "install", name, str(CHART), "--namespace", namespace,
             "--set", f"operator.watchNamespaces={{{namespace}}}", kubeconfig=kubeconfig)
        yield {"name": name, "namespace": namespace, "helm": helm, "kubeconfig": kubeconfig}
    finally:
        subprocess.run([helm, "uninstall", name, "--namespace", namespace, "--kubeconfig", kubeconfig],
                       capture_output=True, timeout=120)
        core.delete_namespace(namespace)


def test_helm_install_creates_every_object_of_the_chart(release, kube_api, core):
    manifest = _run(release["helm"], "get", "manifest", release["name"], "--namespace", release["namespace"],
                    kubeconfig=release["kubeconfig"])
    docs = [d for d in yaml.safe_load_all(manifest) if d]
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
                            "Role", "RoleBinding", "Service", "Deployment", "PodDisruptionBudget",
                            "ConfigMap", "ConfigMap"]), kinds
    # Every object is on the server as rendered (the API server validated each one).
    kubectl = str(paths.binaries().kubectl)
    path = Path(f"/tmp/{release['name']}-manifest.yaml")
    path.write_text(manifest)
    try:
        listed = _run(kubectl, "get", "-f", str(path), "-o", "name", kubeconfig=release["kubeconfig"]).split()
    finally:
        path.unlink()
    assert len(listed) == len(docs), listed
    # The Deployment's controller made the operator pod, hardened as the chart says.
    apps = client.AppsV1Api(kube_api)
    deployment = apps.read_namespaced_deployment(f"{release['name']}-startbench", release["namespace"])
    assert deployment.spec.strategy.type == "RollingUpdate" and deployment.spec.replicas == 2
    selector = ",".join(f"{k}={v}" for k, v in deployment.spec.selector.match_labels.items())
    pods = wait_for(lambda: core.list_namespaced_pod(release["namespace"], label_selector=selector).items,
                    what="the operator pod created by the Deployment")
    container = pods[0].spec.containers[0]
    assert container.security_context.read_only_root_filesystem is True
    assert pods[0].spec.security_context.run_as_non_root is True
    # The dashboards' ConfigMaps carry the Grafana sidecar's label.
    maps = core.list_namespaced_config_map(release["namespace"], label_selector="grafana_dashboard=1").items
    assert sorted(m.metadata.name for m in maps) == sorted(
        f"{release['name']}-startbench-dashboard-{p.stem}" for p in (CHART / "dashboards").glob("*.json"))


def _service_account_kubeconfig(core, admin_kubeconfig: str, namespace: str, account: str, path: Path) -> Path:
    token = core.create_namespaced_service_account_token(
        account, namespace, {"spec": {"expirationSeconds": 3600}}).status.token
    admin = yaml.safe_load(Path(admin_kubeconfig).read_text())
    context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])["context"]
    cluster = next(c for c in admin["clusters"] if c["name"] == context["cluster"])["cluster"]
    if "certificate-authority" in cluster:  # make it independent of the admin kubeconfig's directory
        ca = Path(cluster["certificate-authority"])
        cluster = {**cluster, "certificate-authority": str(ca if ca.is_absolute() else Path(admin_kubeconfig).parent / ca)}
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "local", "cluster": cluster}],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "local", "user": account, "namespace": namespace}}]}))
    return path


def _allowed(kube_api, user: str, verb: str, resource: str, namespace: str | None = None, group: str = "") -> bool:
    review = client.AuthorizationV1Api(kube_api).create_subject_access_review({
        "spec": {"user": user, "groups": ["system:serviceaccounts", "system:authenticated"],
                 "resourceAttributes": {"verb": verb, "resource": resource, "group": group,
                                        **({"namespace": namespace} if namespace else {})}}})
    return review.status.allowed


def test_operator_as_the_chart_runs_it_completes_an_example_benchmark(release, kube_api, core, custom, tmp_path):
    namespace = release["namespace"]
    deployment = client.AppsV1Api(kube_api).read_namespaced_deployment(f"{release['name']}-startbench", namespace)
    pod = deployment.spec.template.spec
    container = next(c for c in pod.containers if c.name == "operator")
    account = pod.service_account_name

    # Least privilege, as the API server sees it: the work in the watched namespace, nothing else.
    user = f"system:serviceaccount:{namespace}:{account}"
    assert _allowed(kube_api, user, "create", "pods", namespace)
    assert _allowed(kube_api, user, "patch", "benchmarks", namespace, group="startbench.dev")
    assert _allowed(kube_api, user, "list", "nodes")
    assert not _allowed(kube_api, user, "create", "pods", "default")
    assert not _allowed(kube_api, user, "get", "secrets", namespace)
    assert not _allowed(kube_api, user, "delete", "nodes")

    # The Deployment's command line, with this checkout's interpreter for the image's `python`, and Kopf's
    # liveness endpoint moved to a free loopback port.
    assert container.command[:3] == ["python", "-m", "startbench"], container.command
    health_port, metrics_port = _free_port(), _free_port()
    args = [re.sub(r"^--liveness=http://0\.0\.0\.0:\d+/", f"--liveness=http://127.0.0.1:{health_port}/", a)
            for a in container.args]
    assert args != container.args, "the Deployment gives Kopf no --liveness endpoint"
    env = {e.name: e.value for e in container.env}
    assert env["STARTBENCH_NAMESPACES"] == namespace
    env.update(STARTBENCH_METRICS_PORT=str(metrics_port), STARTBENCH_METRICS_ADDRESS="127.0.0.1")
    kubeconfig = _service_account_kubeconfig(core, release["kubeconfig"], namespace, account, tmp_path / "sa.kubeconfig")
    log_path = tmp_path / "operator.log"
    proc = subprocess.Popen(
        [sys.executable, *container.command[1:], *args], stdout=open(log_path, "wb"), stderr=subprocess.STDOUT,
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PYTHONPATH": str(REPO / "operator"),
             "KUBECONFIG": str(kubeconfig), **env},
        start_new_session=True)
    try:
        probe = container.liveness_probe.http_get

        def live() -> bool:
            assert proc.poll() is None, log_path.read_text()[-3000:]
            try:
                return urllib.request.urlopen(f"http://127.0.0.1:{health_port}{probe.path}", timeout=2).status == 200
            except OSError:
                return False
        wait_for(live, timeout=60, what="the operator's liveness endpoint")

        body = yaml.safe_load(EXAMPLE.read_text())
        bm.create(custom, namespace, body)
        name = body["metadata"]["name"]
        finished = bm.wait_finished(custom, namespace, name, timeout=120)
        assert finished["status"]["phase"] == "Succeeded", (finished["status"], log_path.read_text()[-3000:])
        assert len(bm.records(core, namespace, name)) == finished["status"]["total"] > 0

        metrics = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
        assert "startbench_operator_up 1.0" in metrics
        assert re.search(rf'startbench_runs_total{{benchmark="{name}",reason="",result="Succeeded"}} [1-9]', metrics)

        # Deleting it goes through the operator's finalizer, also with the chart's permissions only.
        custom.delete_namespaced_custom_object("startbench.dev", "v1alpha1", namespace, "benchmarks", name)
        wait_for(lambda: not custom.list_namespaced_custom_object("startbench.dev", "v1alpha1", namespace,
                                                                    "benchmarks")["items"],
                 timeout=60, what="the benchmark deleted")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    log = log_path.read_text()
    # Kopf logs and tolerates some refusals; none may happen with the chart's RBAC.
    refused = [line for line in log.splitlines() if "403" in line or "Forbidden" in line or "forbidden" in line]
    assert not refused, "\n".join(refused[:10])
