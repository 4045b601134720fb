"""The dashboards against a real Prometheus (Debian's package) scraping the operator while a benchmark runs.

A Prometheus on loopback scrapes the in-process operator's metrics every second (the same Metrics registry and
HTTP endpoint that `startbench operator` serves). A Benchmark with one good and one missing image runs to the
end on the simulated GPU nodes, so runs succeed and fail. Then every query of every dashboard panel, with the
variables filled in as Grafana would, goes to Prometheus' HTTP API and must return data.

Simulated nodes run no workload, so a second, small Benchmark runs the JAX slim image on the real node (when
the machine can run one): its run reaches a first step, so the time-to-first-step panels have real data. The
image panels need no help: the operator reads the sizes of `image:` entries from the registry. One gauge is fed
honestly besides:
- training metrics: from a real in-pod report made on this machine (`python -m startbench.workload`, PyTorch on
  the CPU), through Metrics.set_training as the reconciler does with a pod's report. Metrics the report leaves
  null (GPU utilisation and MFU on a CPU machine) stay unset: their panels are checked for a well-formed query
  and skipped for data, with the reason.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from startbench.runtime import dashboards
from startbench.workload.report import parse_report
from tests.cluster import benchmarks as bm
from tests.cluster.helpers import wait_for

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
DASHBOARDS = {p.stem: json.loads(p.read_text()) for p in sorted((REPO / "charts/startbench/dashboards").glob("*.json"))}
BENCHMARK = "promdash"
REAL_BENCHMARK = "promdash-real"  # a JAX run on the real node: the only runs that reach a first step here
# Training gauges and the report metric each is set from (Metrics.set_training).
REPORT_FIELD = {"startbench_training_samples_per_second": "samples_per_s", "startbench_training_tflops": "tflops",
                "startbench_training_mfu": "mfu", "startbench_training_gpu_utilization_ratio": "gpu_util_mean"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


class Prometheus:
    def __init__(self, base: str):
        self.base = base

    def api(self, path: str, **params) -> dict:
        query = urllib.parse.urlencode(params, doseq=True)
        try:
            body = _get(f"{self.base}/api/v1/{path}?{query}")
        except urllib.error.HTTPError as err:  # a bad query is a 400 with Prometheus' reason
            raise AssertionError(f"Prometheus refused {params}: {err.read().decode()[:500]}") from None
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str, instant: bool) -> list[dict]:
        now = time.time()
        if instant:
            return self.api("query", query=expr, time=now)["result"]
        return self.api("query_range", query=expr, start=now - 120, end=now, step=1)["result"]


@pytest.fixture(scope="module")
def workload_report():
    """A real in-pod report from this machine (PyTorch on the CPU), started first: importing torch is slow."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "startbench.workload", "--framework", "pytorch", "--model", "resnet18", "--steps", "2",
         "--batch-size", "2", "--shape", "tiny-imagenet", "--device", "cpu"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "STARTBENCH_REPORT_PATH": os.devnull, "PYTHONPATH": str(REPO / "operator")})

    def result() -> dict:
        out, _ = proc.communicate(timeout=240)
        assert proc.returncode == 0, out[-3000:]
        return parse_report(out.strip().splitlines()[-1])
    yield result
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def _run_on_the_real_node(custom, core, kubeconfig: str, jax_image: str) -> str | None:
    """Run a small JAX benchmark on the real node (in its own t-* namespace); None when it ran, else why not."""
    from startbench.localcluster import realnode

    said: list[str] = []
    if realnode.ensure(kubeconfig, progress=said.append) is None:
        return "; ".join(said) or "the real node cannot run on this machine"
    namespace = f"t-promreal-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": namespace, "labels": {"startbench.dev/test": "true"}}})
    wait_for(lambda: core.list_namespaced_service_account(namespace, field_selector="metadata.name=default").items,
             what="default service account")
    body = bm.benchmark(REAL_BENCHMARK, [{"name": "jax", "image": jax_image, "framework": "jax", "variant": "slim"}],
                        pool="real", max_nodes=1, gpus=0, cache="cold", repetitions=1, parallelism=1,
                        workload={"steps": 2, "batchSize": 2, "imageSize": 64})
    body["spec"]["nodes"]["tolerations"] = [realnode.TOLERATION]
    bm.create(custom, namespace, body)
    status = bm.wait_finished(custom, namespace, REAL_BENCHMARK, timeout=600)["status"]
    assert status["phase"] == "Succeeded", status
    return None


@pytest.fixture(scope="module")
def scraped(operator, kube_api, workload_report, jax_image, local_cluster, tmp_path_factory):
    """Prometheus scraping the operator after a finished benchmark: yields (Prometheus, report, benchmark body)."""
    if not os.access(PROMETHEUS, os.X_OK):
        pytest.fail(f"prometheus is not installed at {PROMETHEUS}: run hack/ci/setup-30-prometheus.sh")
    metrics = operator["metrics"]
    server = metrics.serve(0, "127.0.0.1")
    core, custom = client.CoreV1Api(kube_api), client.CustomObjectsApi(kube_api)
    namespace = f"t-prom-{uuid.uuid4().hex[:6]}"  # t-*: the in-process operator watches it
    core.create_namespace({"metadata": {"name": namespace, "labels": {"startbench.dev/test": "true"}}})
    tmp = tmp_path_factory.mktemp("prometheus")
    web = f"127.0.0.1:{_free_port()}"
    (tmp / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "startbench",
                            "static_configs": [{"targets": [f"127.0.0.1:{server.server_port}"]}]}]}))
    log = open(tmp / "prometheus.log", "wb")
    prom = subprocess.Popen([PROMETHEUS, f"--config.file={tmp / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp / 'data'}", f"--web.listen-address={web}",
                             "--storage.tsdb.retention.time=1h", "--log.level=warn"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def ready() -> bool:
            if prom.poll() is not None:
                pytest.fail(f"prometheus exited: {(tmp / 'prometheus.log').read_text()[-2000:]}")
            try:
                return urllib.request.urlopen(f"http://{web}/-/ready", timeout=2).status == 200
            except OSError:
                return False
        wait_for(ready, timeout=60, what="prometheus ready")
        prometheus = Prometheus(f"http://{web}")
        wait_for(lambda: prometheus.query('up{job="startbench"} == 1', instant=True), timeout=30,
                 what="prometheus scraping the operator")

        wait_for(lambda: core.list_namespaced_service_account(namespace, field_selector="metadata.name=default").items,
                 what="default service account")
        images = [{"name": "base", "image": bm.BASE_IMAGE, "framework": "pytorch", "variant": "naive"},
                  {"name": "missing", "image": "127.0.0.1:5000/startbench/not-there:v0", "framework": "pytorch",
                   "variant": "slim"}]
        bm.create(custom, namespace, bm.benchmark(BENCHMARK, images, max_nodes=2, cache="both"))
        body = bm.wait_finished(custom, namespace, BENCHMARK, timeout=150)
        no_real_node = _run_on_the_real_node(custom, core, local_cluster["kubeconfig"], jax_image)

        report = workload_report()
        hostname = socket.gethostname()
        metrics.set_training({"benchmark": BENCHMARK, "image": "host", "framework": report["framework"],
                              "model": report["model"], "node": hostname}, report["metrics"])
        # Two scrapes after the last change, so instant and range queries both see it.
        stamp = time.time()
        wait_for(lambda: prometheus.api("query", query='timestamp(up{job="startbench"})')["result"]
                 and float(prometheus.api("query", query='timestamp(up{job="startbench"})')["result"][0]["value"][1])
                 > stamp + 1.5, timeout=30, what="two scrapes after the benchmark")
        yield prometheus, report, body, no_real_node
    finally:
        prom.terminate()
        try:
            prom.wait(20)
        except subprocess.TimeoutExpired:
            prom.kill()
        log.close()
        server.shutdown()
        core.delete_namespace(namespace)


def _cases():
    for name, dashboard in DASHBOARDS.items():
        instant = {(p["title"], t["refId"]): t["instant"] for p in dashboard["panels"] for t in p["targets"]}
        for title, ref, expr in dashboards.panel_queries(dashboard):
            yield pytest.param(name, title, expr, instant[(title, ref)], id=f"{name}:{title}:{ref}")


@pytest.mark.parametrize("dashboard,title,expr,instant", list(_cases()))
def test_panel_query_returns_data(scraped, dashboard, title, expr, instant):
    prometheus, report, _body, no_real_node = scraped
    # Both benchmarks and both frameworks selected, as a Grafana multi-value variable renders them.
    values = {"benchmark": f"{BENCHMARK}|{REAL_BENCHMARK}", "framework": "pytorch|jax", "node": ".*"}
    query = dashboards.substitute(expr, values)
    result = prometheus.query(query, instant)  # a malformed query fails here, with Prometheus' reason
    gauge = next((m for m in REPORT_FIELD if m in expr), None)
    if gauge and report["metrics"].get(REPORT_FIELD[gauge]) is None:
        # Never faked: the gauge was not set, so the well-formed query must come back empty.
        assert result == [], f"{gauge} has data although the report's {REPORT_FIELD[gauge]} is null: {result}"
        pytest.skip(f"no GPU on this machine: the in-pod report's {REPORT_FIELD[gauge]} is null "
                    f"(device {report['device']['kind']}), so {gauge} has no value; query checked well-formed")
    if "startbench_time_to_first_step_seconds" in expr and no_real_node:
        # Simulated nodes run no workload: only the real node's runs reach a first step.
        assert result == [], f"time to first step has data without any run that reached a first step: {result}"
        pytest.skip(f"no run reached a first step: the real node could not run here ({no_real_node}); "
                    "query checked well-formed")
    assert result, f"panel {title!r} of the {dashboard} dashboard got no data for {query}"
    numbers = [float(v[1]) for series in result for v in ([series["value"]] if instant else series["values"])]
    assert any(math.isfinite(n) for n in numbers), f"panel {title!r}: only NaN/Inf for {query}: {result[:3]}"


def test_variables_list_the_benchmark_its_framework_and_nodes(scraped):
    prometheus, _report, body, _no_real_node = scraped
    for name, dashboard in DASHBOARDS.items():
        for var in dashboard["templating"]["list"]:
            if var["type"] != "query":
                continue
            metric, label = var["query"]["query"][len("label_values("):-1].split(", ")
            values = prometheus.api(f"label/{label}/values", **{"match[]": metric})
            expected = {"benchmark": BENCHMARK, "framework": "pytorch"}.get(label)
            assert values and (expected is None or expected in values), (name, var["name"], values)
    nodes = set(prometheus.api("label/node/values", **{"match[]": "startbench_phase_seconds_count"}))
    assert set(body["status"]["nodes"]) <= nodes


def test_the_benchmark_shows_up_as_it_ran(scraped):
    """The numbers behind the panels are the benchmark's: its runs by result, and one failure reason."""
    prometheus, _report, body, _no_real_node = scraped
    by_result = {s["metric"]["result"]: float(s["value"][1]) for s in prometheus.query(
        f'sum by (result) (startbench_runs_total{{benchmark="{BENCHMARK}"}})', instant=True)}
    status = body["status"]
    assert by_result.get("Succeeded", 0) == status["succeeded"] and status["succeeded"] > 0
    assert sum(by_result.values()) == status["succeeded"] + status["failed"] and status["failed"] > 0
    reasons = {s["metric"]["reason"] for s in prometheus.query(
        f'startbench_runs_total{{benchmark="{BENCHMARK}",result!="Succeeded"}}', instant=True)}
    assert reasons & {"ErrImagePull", "ImagePullBackOff"}, reasons
    up = prometheus.query("startbench_operator_up", instant=True)
    assert [float(s["value"][1]) for s in up] == [1.0]
