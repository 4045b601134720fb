"""From `helm install` to results, as a user does it, on the local cluster (docs/operations.md).

The operator is built into its own image (`startbench images build --framework operator`), installed with
`helm install` (two replicas, scheduled on the real node: its taint tolerated and its pool selected by chart
values; the dind builder beside each), and runs there with in-cluster configuration. In order:

1. the pods run from that image, non-root on a read-only root filesystem; one leads (the Lease), one stands by;
2. Debian's Prometheus, as users without the Prometheus Operator run it, discovers the chart's metrics Service
   with `kubernetes_sd_configs` and scrapes the operator pods;
3. `kubectl apply` of examples/cpu-smoke.yaml and of a Benchmark with a `build:` entry (built in the operator's
   pod, pushed, pulled by the real node, run to a first step): both complete; the dashboards' queries return
   data from that scrape;
4. what the operator's ServiceAccount may do, per `kubectl auth can-i`: its job and nothing more, namespaced
   here and cluster-wide in a second release (a glob: the same ClusterRole as watching every namespace, without
   taking other tests' Benchmarks);
5. `helm upgrade` with a changed value while a benchmark runs: it goes on, every run recorded once;
6. the leader killed (SIGKILL of its process on the node) mid-benchmark: the standby takes over after the Lease
   runs out, every run recorded once, no pod created twice;
7. `helm uninstall` leaves no startbench pod behind.
"""

from __future__ import annotations

import json
import math
import re
import socket
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from startbench.localcluster import paths, realnode
from startbench.runtime import dashboards
from tests.cluster import benchmarks as bm
from tests.cluster import release as rel
from tests.cluster.helpers import wait_for

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "cpu-smoke.yaml"
# Debian's prometheus (2.42) is built without Kubernetes service discovery: hack/k8s/build.sh builds 3.16 with it.
PROMETHEUS = paths.prometheus_path()
DASHBOARDS = {p.stem: json.loads(p.read_text()) for p in sorted((REPO / "charts/startbench/dashboards").glob("*.json"))}
LEASE_SECONDS = 15  # the chart's default operator.leaderElection.leaseDurationSeconds


@pytest.fixture(scope="module")
def operator_digest(real_node, base_image):
    return rel.build_operator_image()


@pytest.fixture(scope="module")
def dind_image(real_node, base_image):
    from startbench.localcluster import dindimage
    return dindimage.ensure()


@pytest.fixture(scope="module")
def benchmarks_api(kube_api):
    return client.CustomObjectsApi(kube_api)


@pytest.fixture(scope="module")
def coordination(kube_api):
    return client.CoordinationV1Api(kube_api)


def _namespace(core, name: str) -> str:
    rel.retrying(core.create_namespace, {"metadata": {"name": name, "labels": {"startbench.dev/test": "true"}}})
    wait_for(lambda: rel.retrying(core.list_namespaced_service_account, name,
                                  field_selector="metadata.name=default").items,
             timeout=180, what=f"the default ServiceAccount of {name}")
    return name


def _teardown(release: rel.Release, core, custom, namespaces: list[str]) -> None:
    def listed(ns):
        return rel.retrying(custom.list_namespaced_custom_object, "startbench.dev", "v1alpha1", ns, "benchmarks")["items"]
    for ns in namespaces:
        for b in listed(ns):
            rel.retrying(custom.delete_namespaced_custom_object, "startbench.dev", "v1alpha1", ns, "benchmarks",
                         b["metadata"]["name"])
    release.helm("uninstall", release.name, "--wait", "--timeout", "3m", timeout=240, check=False)
    for ns in [release.namespace, *namespaces]:
        # Benchmarks whose operator went first keep their finalizer; drop it so the namespace can go.
        for b in listed(ns):
            rel.retrying(custom.patch_namespaced_custom_object, "startbench.dev", "v1alpha1", ns, "benchmarks",
                         b["metadata"]["name"], {"metadata": {"finalizers": None}})
        rel.retrying(core.delete_namespace, ns, grace_period_seconds=0)


@pytest.fixture(scope="module")
def installed(local_cluster, crd, core, benchmarks_api, operator_digest, dind_image, tmp_path_factory):
    """The chart installed as docs/operations.md says, watching one namespace, with the dind builder."""
    suffix = uuid.uuid4().hex[:6]
    release = rel.Release(f"sbe-{suffix}", _namespace(core, f"sbe-{suffix}"), local_cluster["kubeconfig"])
    watched = _namespace(core, f"sbe-{suffix}-w")
    tmp = tmp_path_factory.mktemp("chart")
    try:
        release.install(rel.values(operator_digest, [watched], builder=True, build_namespace=release.namespace), tmp)
        yield {"release": release, "watched": watched, "tmp": tmp, "digest": operator_digest}
    finally:
        _teardown(release, core, benchmarks_api, [watched])
        rel.forget_built_image(f"{release.namespace}/startbench-jax", "slim-cpu")


def _apply(release: rel.Release, namespace: str, body: dict | Path) -> str:
    text = body.read_text() if isinstance(body, Path) else yaml.safe_dump(body)
    return release.kubectl("apply", "-n", namespace, "-f", "-", input=text)


def test_operator_runs_from_its_image_on_the_real_node_one_leading(installed, core, coordination, real_node):
    release = installed["release"]
    pods = wait_for(lambda: (p := release.operator_pods(core)) and len(p) == 2
                    and all(s.ready for x in p for s in x.status.container_statuses or []) and p,
                    timeout=180, what="two operator pods ready")
    for pod in pods:
        assert pod.spec.node_name == real_node
        operator = next(s for s in pod.status.container_statuses if s.name == "operator")
        assert operator.image_id.endswith(installed["digest"]), operator.image_id
        spec = next(c for c in pod.spec.containers if c.name == "operator")
        assert spec.security_context.read_only_root_filesystem is True
        assert pod.spec.security_context.run_as_user == 10001
        # In-cluster configuration: no kubeconfig, the ServiceAccount's token.
        assert not [e for e in spec.env or [] if e.name == "KUBECONFIG"]
        assert pod.spec.service_account_name == release.fullname
    leader = wait_for(lambda: release.leader(coordination), timeout=60, what="a leader in the Lease")
    assert leader in {p.metadata.name for p in pods}
    standby = next(p.metadata.name for p in pods if p.metadata.name != leader)
    leader_log = release.kubectl("logs", "-n", release.namespace, leader, "-c", "operator")
    assert "leading: acquired lease" in leader_log and "startbench operator started" in leader_log
    standby_log = release.kubectl("logs", "-n", release.namespace, standby, "-c", "operator")
    assert "standing by: lease" in standby_log and "startbench operator started" not in standby_log


@pytest.fixture(scope="module")
def finished(installed, benchmarks_api, core):
    """examples/cpu-smoke.yaml and a Benchmark with a build: entry, applied with kubectl, run to the end."""
    release, watched = installed["release"], installed["watched"]
    _apply(release, watched, EXAMPLE)
    _apply(release, watched, rel.build_benchmark("built-jax"))
    # And runs that fail (an image no registry has), for the failures panel.
    missing = rel.long_benchmark("missing", repetitions=1)
    missing["spec"]["images"][0]["image"] = "127.0.0.1:5000/startbench/not-there:v0"
    missing["spec"]["runTimeoutSeconds"] = 60
    _apply(release, watched, missing)
    smoke = rel.wait_finished(benchmarks_api, watched, "cpu-smoke", timeout=180)
    built = rel.wait_finished(benchmarks_api, watched, "built-jax", timeout=1500)
    failed = rel.wait_finished(benchmarks_api, watched, "missing", timeout=300)
    return {"cpu-smoke": smoke, "built-jax": built, "missing": failed}


@pytest.fixture(scope="module")
def scraped(finished, prometheus):
    """Two scrapes after the benchmarks ended, so instant and range queries both see them (the counters and
    histograms are cumulative since the operator started, whenever Prometheus started)."""
    stamp = time.time()
    wait_for(lambda: (r := prometheus.api("query", query="max(timestamp(startbench_operator_up))")["result"])
             and float(r[0]["value"][1]) > stamp + 3, timeout=90, what="two scrapes after the benchmarks")
    return prometheus


def test_cpu_smoke_and_a_built_image_complete(installed, finished, core):
    watched = installed["watched"]
    smoke, built = finished["cpu-smoke"]["status"], finished["built-jax"]["status"]
    assert smoke["phase"] == "Succeeded", smoke
    assert len(rel.records(core, watched, "cpu-smoke")) == smoke["total"] == 2
    assert built["phase"] == "Succeeded", built
    assert finished["missing"]["status"]["phase"] == "Failed", finished["missing"]["status"]
    image = built["images"]["jax-built"]
    assert image["reference"] == f"{rel.POD_REGISTRY}/{installed['release'].namespace}/startbench-jax:slim-cpu"
    assert image["compressedBytes"] > 0 and image["uncompressedBytes"] > image["compressedBytes"]
    [record] = rel.records(core, watched, "built-jax")
    assert record["node"] == realnode.NODE_NAME and record["result"] == "Succeeded", record


@pytest.fixture(scope="module")
def prometheus(installed, tmp_path_factory):
    """Prometheus on loopback, configured as a user without the Prometheus Operator does: Kubernetes service
    discovery of the chart's metrics Service (endpoints role), scraping each operator pod."""
    release = installed["release"]
    tmp = tmp_path_factory.mktemp("prometheus")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        web = f"127.0.0.1:{s.getsockname()[1]}"
    config = {
        "global": {"scrape_interval": "2s", "scrape_timeout": "2s", "evaluation_interval": "2s"},
        "scrape_configs": [{
            "job_name": "startbench",
            # docs/operations.md's scrape config; the kubeconfig stands for wherever this Prometheus gets its
            # credentials (in a pod: its ServiceAccount).
            "kubernetes_sd_configs": [{"role": "endpoints", "kubeconfig_file": release.kubeconfig,
                                       "namespaces": {"names": [release.namespace]}}],
            "relabel_configs": [
                {"source_labels": ["__meta_kubernetes_service_label_app_kubernetes_io_component"],
                 "regex": "metrics", "action": "keep"},
                # The endpoints role also makes a target of every other container port of the pods behind the
                # Service (the health port 8080, the dind builder's): keep the Service's own port only.
                {"source_labels": ["__meta_kubernetes_endpoint_port_name"], "regex": "metrics", "action": "keep"},
                {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"}],
        }]}
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = open(tmp / "prometheus.log", "wb")
    proc = subprocess.Popen([str(PROMETHEUS), f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'data'}",
                             f"--web.listen-address={web}", "--storage.tsdb.retention.time=1h", "--log.level=warn"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    from tests.cluster.test_prometheus import Prometheus
    prom = Prometheus(f"http://{web}")
    try:
        def ready() -> bool:
            assert proc.poll() is None, (tmp / "prometheus.log").read_text()[-2000:]
            try:
                return urllib.request.urlopen(f"http://{web}/-/ready", timeout=2).status == 200
            except OSError:
                return False
        wait_for(ready, timeout=60, what="prometheus ready")
        yield prom
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.mark.tools("prometheus-k8s")
def test_prometheus_discovers_and_scrapes_both_operator_pods(installed, prometheus, core):
    release = installed["release"]
    targets = wait_for(lambda: (t := prometheus.api("targets")["activeTargets"]) and len(t) == 2
                       and all(x["health"] == "up" for x in t) and t, timeout=90,
                       what="both operator pods discovered and scraped (and nothing else)")
    pods = {p.status.pod_ip: p.metadata.name for p in release.operator_pods(core)}
    assert {t["labels"]["instance"].split(":")[0] for t in targets} == set(pods)
    up = {s["metric"]["pod"]: float(s["value"][1]) for s in prometheus.query("startbench_operator_up", instant=True)}
    assert sorted(up.values()) == [0.0, 1.0], up  # one leads (Kopf runs), one stands by


def _cases():
    for name, dashboard in DASHBOARDS.items():
        instant = {(p["title"], t["refId"]): t["instant"] for p in dashboard["panels"] for t in p["targets"]}
        for title, ref, expr in dashboards.panel_queries(dashboard):
            yield pytest.param(name, title, expr, instant[(title, ref)], id=f"{name}:{title}:{ref}")


@pytest.mark.tools("prometheus-k8s")
@pytest.mark.parametrize("dashboard,title,expr,instant", list(_cases()))
def test_dashboard_queries_return_data_from_the_scrape(finished, scraped, dashboard, title, expr, instant):
    built = finished["built-jax"]["status"]
    values = {"benchmark": "cpu-smoke|built-jax|missing", "framework": "none|jax", "node": ".*"}
    result = scraped.query(dashboards.substitute(expr, values), instant)
    if not result and ("gpu" in expr or "mfu" in expr):
        pytest.skip("no GPU here: the JAX run's report has no GPU utilisation or MFU, so the gauge is unset "
                    "(the query is well-formed: Prometheus accepted it)")
    assert result, f"panel {title!r} of {dashboard} got no data (built-jax: {built.get('summaries')})"
    numbers = [float(v[1]) for series in result for v in ([series["value"]] if instant else series["values"])]
    assert any(math.isfinite(n) for n in numbers), (title, result[:3])


# ---- permissions -----------------------------------------------------------------------------------------------

def _can_i(release: rel.Release, account: str, verb: str, resource: str, namespace: str | None = None,
           subresource: str | None = None) -> bool:
    args = ["auth", "can-i", verb, resource, "--as", account]
    args += ["-n", namespace] if namespace else []
    args += [f"--subresource={subresource}"] if subresource else []
    out = release.kubectl(*args, check=False).strip()
    assert out in ("yes", "no"), out
    return out == "yes"


def can_i_table(release: rel.Release, watched: str, other: str) -> list[tuple[str, str, bool]]:
    """(what, where, allowed) for the operator's ServiceAccount: the rows docs/operations.md shows."""
    sa = f"system:serviceaccount:{release.namespace}:{release.fullname}"
    rows = []
    for verb, resource, ns, sub in [
        ("create", "pods", watched, None), ("delete", "pods", watched, None), ("patch", "pods", watched, None),
        ("patch", "benchmarks.startbench.dev", watched, None), ("patch", "benchmarks.startbench.dev", watched, "status"),
        ("update", "benchmarks.startbench.dev", watched, "finalizers"), ("create", "configmaps", watched, None),
        ("update", "configmaps", watched, None), ("create", "events", watched, None),
        ("list", "nodes", None, None), ("watch", "namespaces", None, None),
        ("list", "customresourcedefinitions.apiextensions.k8s.io", None, None),
        ("update", f"leases.coordination.k8s.io/{release.fullname}", release.namespace, None),
        # what it must not do
        ("create", "pods", other, None), ("get", "secrets", watched, None), ("list", "secrets", None, None),
        ("delete", "configmaps", watched, None), ("delete", "benchmarks.startbench.dev", watched, None),
        ("create", "pods", watched, "exec"), ("patch", "nodes", None, None), ("delete", "nodes", None, None),
        ("get", "nodes", None, "proxy"), ("update", "leases.coordination.k8s.io/another", release.namespace, None),
        ("create", "rolebindings.rbac.authorization.k8s.io", watched, None),
        ("create", "deployments.apps", watched, None),
    ]:
        what = f"{verb} {resource}" + (f"/{sub}" if sub else "")
        rows.append((what, ns or "(cluster)", _can_i(release, sa, verb, resource, ns, sub)))
    return rows


def _rules(release: rel.Release, namespace: str) -> set[tuple[str, str, str]]:
    """`kubectl auth can-i --list` as the ServiceAccount in `namespace`: (resource, names, verbs), resource rules
    only, without the self-reviews every authenticated user has."""
    sa = f"system:serviceaccount:{release.namespace}:{release.fullname}"
    out = release.kubectl("auth", "can-i", "--list", "-n", namespace, "--as", sa)
    rows = set()
    for line in out.splitlines()[1:]:
        match = re.match(r"^(\S+)\s+\[([^\]]*)\]\s+\[([^\]]*)\]\s+\[([^\]]*)\]", line)
        if match and not match.group(1).startswith("self"):
            rows.add((match.group(1), match.group(3), " ".join(sorted(match.group(4).split()))))
    return rows


READ = {("nodes", "", "get list watch"), ("namespaces", "", "list watch"),
        ("customresourcedefinitions.apiextensions.k8s.io", "", "list watch")}
WORK = {("benchmarks.startbench.dev", "", "get list patch watch"), ("benchmarks.startbench.dev/status", "", "get patch"),
        ("benchmarks.startbench.dev/finalizers", "", "update"),
        ("pods", "", "create delete get list patch watch"), ("events", "", "create list watch"),
        ("configmaps", "", "create get list update")}


def test_namespaced_permissions_are_the_job_and_nothing_more(installed):
    release, watched = installed["release"], installed["watched"]
    table = can_i_table(release, watched, "default")
    # The first 13 rows are the job: all allowed; the rest are not.
    assert [ok for _what, _where, ok in table] == [True] * 13 + [False] * (len(table) - 13), table
    lease = {("leases.coordination.k8s.io", release.fullname, "get update"), ("leases.coordination.k8s.io", "", "create")}
    assert _rules(release, watched) == READ | WORK
    assert _rules(release, release.namespace) == READ | lease
    assert _rules(release, "default") == READ


@pytest.fixture(scope="module")
def cluster_wide(local_cluster, crd, core, benchmarks_api, operator_digest, tmp_path_factory):
    """A second release with cluster-wide permissions: a glob of namespaces (the same ClusterRole as watching all
    of them, `watchNamespaces: []`, tests/unit/test_chart.py), so it takes no other test's Benchmarks."""
    suffix = uuid.uuid4().hex[:6]
    release = rel.Release(f"sbc-{suffix}", _namespace(core, f"sbc-{suffix}"), local_cluster["kubeconfig"])
    watched = _namespace(core, f"sbc-{suffix}-w1")
    try:
        release.install(rel.values(operator_digest, [f"sbc-{suffix}-w*"], replicas=1), tmp_path_factory.mktemp("cw"))
        yield {"release": release, "watched": watched}
    finally:
        _teardown(release, core, benchmarks_api, [watched])


def test_cluster_wide_permissions_are_the_job_everywhere_and_nothing_more(cluster_wide, custom, core):
    release, watched = cluster_wide["release"], cluster_wide["watched"]
    table = can_i_table(release, watched, "default")
    # The job, now in every namespace (row 14: create pods in default); still no secrets, exec, node writes, RBAC.
    assert [ok for _what, _where, ok in table] == [True] * 14 + [False] * (len(table) - 14), table
    assert table[13] == ("create pods", "default", True)
    assert _rules(release, "default") == READ | WORK
    _apply(release, watched, EXAMPLE)
    smoke = rel.wait_finished(custom, watched, "cpu-smoke", timeout=180)["status"]
    assert smoke["phase"] == "Succeeded", smoke
    for pod in release.operator_pods(core):
        log = release.kubectl("logs", "-n", release.namespace, pod.metadata.name, "-c", "operator")
        refused = [line for line in log.splitlines() if " 403" in line or "Forbidden" in line or "forbidden" in line]
        assert not refused, refused[:5]


# ---- upgrade, takeover, uninstall --------------------------------------------------------------------------------

def _assert_recorded_once(core, custom, namespace: str, name: str, watch: rel.PodWatch) -> dict:
    body = rel.wait_finished(custom, namespace, name, timeout=400)
    status = body["status"]
    assert status["phase"] == "Succeeded", status
    records = rel.records(core, namespace, name)
    names = [r["name"] for r in records]
    assert len(names) == len(set(names)) == status["total"], (len(names), len(set(names)), status["total"])
    pods = {n: uids for n, uids in watch.uids.items() if n.startswith(name)}
    assert len(pods) == status["total"], sorted(pods)
    assert all(len(uids) == 1 for uids in pods.values()), {n: u for n, u in pods.items() if len(u) > 1}
    return body


def test_helm_upgrade_keeps_a_running_benchmark_going(installed, kube_api, core, custom, coordination):
    release, watched = installed["release"], installed["watched"]
    watch = rel.PodWatch(kube_api, watched)
    try:
        _apply(release, watched, rel.long_benchmark("upgraded"))
        wait_for(lambda: len(rel.records(core, watched, "upgraded")) >= 2, timeout=120, what="two runs recorded")
        running = rel.retrying(bm.get, custom, watched, "upgraded")["status"]
        assert running["phase"] == "Running" and len(rel.records(core, watched, "upgraded")) < running["total"]
        before = {p.metadata.name for p in release.operator_pods(core)}
        old_leader = release.leader(coordination)
        t0 = time.monotonic()
        release.install(rel.values(installed["digest"], [watched], builder=True,
                                   build_namespace=release.namespace), installed["tmp"],
                        "--set", "operator.logLevel=DEBUG", command="upgrade")
        after = {p.metadata.name for p in release.operator_pods(core)}
        assert not before & after, "helm upgrade did not replace the operator pods"
        new_leader = wait_for(lambda: (n := release.leader(coordination)) in after and n, timeout=60,
                              what="a new pod leading")
        assert new_leader != old_leader
        body = _assert_recorded_once(core, custom, watched, "upgraded", watch)
        print(f"helm upgrade: {time.monotonic() - t0:.1f}s; {body['status']['total']} runs recorded once")
    finally:
        watch.stop()


def test_killing_the_leader_mid_benchmark_the_standby_takes_over(installed, kube_api, core, custom, coordination):
    release, watched = installed["release"], installed["watched"]
    wait_for(lambda: len([p for p in release.operator_pods(core)
                          if all(s.ready for s in p.status.container_statuses or [])]) == 2,
             timeout=120, what="two operator pods ready")
    watch = rel.PodWatch(kube_api, watched)
    try:
        _apply(release, watched, rel.long_benchmark("taken-over", repetitions=12))
        wait_for(lambda: len(rel.records(core, watched, "taken-over")) >= 3, timeout=120, what="three runs recorded")
        leader = release.leader(coordination)
        holder = release.lease_holder(coordination)
        killed_at = rel.kill_container_process(core, release.namespace, leader)
        new_holder = wait_for(lambda: (h := release.lease_holder(coordination)) not in ("", holder) and h,
                              timeout=LEASE_SECONDS + 30, interval=0.1, what="another replica holding the Lease")
        lease_s = time.monotonic() - killed_at
        resumed = wait_for(lambda: watch.created_after(killed_at + lease_s), timeout=60, interval=0.1,
                           what="a run pod created by the new leader")
        resume_s = resumed[0][0] - killed_at
        # The standby, not the killed pod's restarted container, took over; after the lease ran out, not before.
        assert new_holder.rpartition("_")[0] != leader, (new_holder, leader)
        assert LEASE_SECONDS - 3 <= lease_s <= LEASE_SECONDS + 10, lease_s
        _assert_recorded_once(core, custom, watched, "taken-over", watch)
        print(f"takeover after SIGKILL of the leader: Lease taken in {lease_s:.1f}s, first new run pod "
              f"{resume_s:.1f}s after the kill")
    finally:
        watch.stop()


def test_helm_uninstall_leaves_no_startbench_pod(installed, core, custom):
    release, watched = installed["release"], installed["watched"]
    for b in rel.retrying(custom.list_namespaced_custom_object, "startbench.dev", "v1alpha1", watched,
                          "benchmarks")["items"]:
        release.kubectl("delete", "benchmark", "-n", watched, b["metadata"]["name"], "--wait", timeout=180)
    release.helm("uninstall", release.name, "--wait", "--timeout", "3m", timeout=240)

    def leftovers():
        pods = rel.retrying(core.list_pod_for_all_namespaces,
                            label_selector=f"app.kubernetes.io/instance={release.name}").items
        pods += rel.retrying(core.list_namespaced_pod, watched).items
        pods += rel.retrying(core.list_namespaced_pod, release.namespace).items
        return pods
    wait_for(lambda: not leftovers(), timeout=120, what="no pod of the release, nor of its Benchmarks, left")
