"""The Benchmark CRD against the real API server: defaults, rejections with clear messages, immutability,
the status subresource keeping every field the operator writes, and the printer columns.

The CRD is applied (created or updated) and left installed: it is cluster infrastructure the operator's
tests need as well. Every Benchmark lives in the test's own namespace, deleted by the fixture.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from startbench.core.planner import plan
from startbench.core.spec import BenchmarkSpec
from startbench.core.status import failed_status, progress_status

pytestmark = pytest.mark.cluster

CRD_PATH = Path(__file__).parents[2] / "crds" / "benchmark.yaml"
GROUP, VERSION, PLURAL = "startbench.dev", "v1alpha1", "benchmarks"
NOW = "2025-11-24T16:00:00Z"


@pytest.fixture(scope="module")
def crd(kube_api):
    body = yaml.safe_load(CRD_PATH.read_text())
    ext = client.ApiextensionsV1Api(kube_api)
    name = body["metadata"]["name"]
    try:
        current = ext.read_custom_resource_definition(name)
        body["metadata"]["resourceVersion"] = current.metadata.resource_version
        ext.replace_custom_resource_definition(name, body)
    except ApiException as exc:
        if exc.status != 404:
            raise
        ext.create_custom_resource_definition(body)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        got = ext.read_custom_resource_definition(name)
        conds = {c.type: c.status for c in (got.status.conditions or [])}
        if conds.get("Established") == "True":
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"CRD {name} not Established: {conds}")
    # Established can come a moment before the new schema serves; a dry-run create shows when it does.
    time.sleep(1)
    return body


@pytest.fixture
def objects(kube_api, crd):
    return client.CustomObjectsApi(kube_api)


def benchmark(name="b1", **spec_over):
    spec = {
        "images": [{"name": "torch-slim", "image": "127.0.0.1:5000/startbench/pytorch:slim", "framework": "pytorch"}],
        "nodes": {"selector": {"matchLabels": {"startbench.dev/pool": "gpu"}},
                  "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]},
    }
    spec.update(spec_over)
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Benchmark", "metadata": {"name": name}, "spec": spec}


def create(objects, namespace, body):
    return objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)


def rejected(objects, namespace, body) -> str:
    with pytest.raises(ApiException) as info:
        create(objects, namespace, body)
    assert info.value.status == 422, info.value.body
    return json.loads(info.value.body)["message"]


def test_defaults_are_applied_and_equal_the_operators(objects, namespace):
    got = create(objects, namespace, benchmark())
    spec = got["spec"]
    assert spec["cache"] == "both" and spec["repetitions"] == 3 and spec["parallelism"] == 4
    assert spec["mode"] == "sequential" and spec["runTimeoutSeconds"] == 600
    assert spec["nodes"]["gpusPerPod"] == 1 and spec["nodes"]["maxNodes"] == 1
    assert spec["workload"] == {"model": "resnet18", "steps": 15, "batchSize": 32, "precision": "fp32",
                                "imageSize": 224}
    assert spec["finishedPods"] == {"keep": "failed"} and spec["purgeImageBeforeColdRun"] is False
    # The operator reads the defaulted spec and the bare one the same way.
    assert BenchmarkSpec.from_dict(spec) == BenchmarkSpec.from_dict(benchmark()["spec"])


@pytest.mark.parametrize("over, words", [
    ({"images": [{"name": "a", "image": "Foo Bar:1", "framework": "pytorch"}]},
     ['spec.images[0].image', '"Foo Bar:1" is not an image reference']),
    ({"images": [{"name": "a", "image": "x:1", "framework": "pytorch"},
                 {"name": "a", "image": "y:1", "framework": "jax"}]},
     ["image names must be unique"]),
    ({"images": [{"name": "a", "image": "x:1", "framework": "pytorch", "build": {"framework": "jax",
                                                                                 "variant": "slim"}}]},
     ["exactly one of image", "or build"]),
    ({"images": [{"name": "a", "image": "x:1"}]}, ["framework is required with image"]),
    ({"images": [{"name": "Bad_Name", "image": "x:1", "framework": "none"}]}, ["spec.images[0].name"]),
    ({"cache": "lukewarm"}, ['spec.cache: Unsupported value: "lukewarm"', '"cold", "warm", "both"']),
    ({"repetitions": 0}, ["spec.repetitions", "greater than or equal to 1"]),
    ({"workload": {"model": "vgg16"}}, ['spec.workload.model: Unsupported value: "vgg16"']),
    ({"nodes": {"selector": {}}}, ["an empty selector would select every node"]),
    ({"nodes": {"selector": {"matchLabels": {"a": "b"}}, "gpusPerPod": 9}}, ["spec.nodes.gpusPerPod"]),
    ({"mode": "fanOut", "nodes": {"selector": {"matchLabels": {"a": "b"}}, "maxNodes": 10}, "parallelism": 4},
     ["set parallelism to at least nodes.maxNodes"]),
    ({"repetitions": 100, "nodes": {"selector": {"matchLabels": {"a": "b"}}, "maxNodes": 1000}},
     ["too many runs"]),
    ({"thresholds": [{"metric": "timeToFirstStep", "quantile": "p99", "maxSeconds": 60, "image": "nope"}]},
     ["thresholds[].image must be the name of an entry in spec.images"]),
    ({"thresholds": [{"metric": "timeToFirstStep", "quantile": "p95", "maxSeconds": 60}]},
     ['spec.thresholds[0].quantile: Unsupported value: "p95"']),
    ({"workload": {"resources": {"limits": {"memory": "64MB"}}}}, ["spec.workload.resources.limits.memory",
                                                                  "should match"]),
    ({"workload": {"resources": {"requests": {"cpu": -1}}}}, ["spec.workload.resources.requests.cpu",
                                                             "must not be negative"]),
])
def test_bad_specs_are_rejected_with_clear_messages(objects, namespace, over, words):
    message = rejected(objects, namespace, benchmark(**over))
    for w in words:
        assert w in message, message


def test_workload_resources_take_quantities_as_strings_or_whole_numbers(objects, namespace):
    resources = {"requests": {"cpu": "500m", "memory": "1.5Gi"}, "limits": {"cpu": 2, "memory": "2Gi"}}
    got = create(objects, namespace, benchmark(workload={"resources": resources}))
    assert got["spec"]["workload"]["resources"] == resources
    parsed = BenchmarkSpec.from_dict(got["spec"]).workload.resources
    assert parsed.limits == (("cpu", "2"), ("memory", "2Gi"))


def test_name_longer_than_a_label_value_is_rejected(objects, namespace):
    message = rejected(objects, namespace, benchmark(name="b" * 64))
    assert "metadata.name must be at most 63 characters" in message


def test_spec_is_immutable_but_metadata_is_not(objects, namespace):
    create(objects, namespace, benchmark())
    with pytest.raises(ApiException) as info:
        objects.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "b1", {"spec": {"repetitions": 5}})
    assert info.value.status == 422
    assert "spec is immutable once the Benchmark exists" in json.loads(info.value.body)["message"]
    patched = objects.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "b1",
                                                     {"metadata": {"labels": {"team": "ml"}}})
    assert patched["metadata"]["labels"] == {"team": "ml"}


def operator_status(body):
    """A status as the operator writes it: everything status.py produces, plus the fields the caller owns."""
    spec = BenchmarkSpec.from_dict(body["spec"])
    runs = plan("b1", spec, ["sim-gpu-00"])
    records = [{"name": r.name, "image": r.image, "cache": r.cache, "order": r.order, "result": "Succeeded",
                "reason": "Completed", "message": "ok", "finishedMs": 1.0 + r.order, "timeToFirstStepMs": 12_500.0,
                "timeline": {"cacheObserved": "miss", "phases": {"pulling": {"ms": 9000.0, "source": "event:Pulled"}}}}
               for r in runs[:-1]]
    status = progress_status(spec, runs, records, running=1, conditions=[], generation=1, now=NOW)
    status.update(
        nodes=["sim-gpu-00"], excludedNodes=[{"name": "sim-gpu-01", "reason": "is not Ready"}],
        images={"torch-slim": {"reference": "127.0.0.1:5000/startbench/pytorch:slim",
                               "digest": "sha256:" + "a" * 64, "framework": "pytorch", "variant": "slim",
                               "flavour": "cpu", "compressedBytes": 957_000_000, "uncompressedBytes": 2_430_000_000,
                               "layers": 4}},
        recordsConfigMaps=["b1-records-0"], startedAt=NOW, finishedAt=NOW, message="running")
    return status


def test_status_subresource_keeps_every_field_the_operator_writes(objects, namespace):
    body = create(objects, namespace, benchmark(thresholds=[
        {"metric": "timeToFirstStep", "quantile": "p99", "maxSeconds": 60},
        {"metric": "pulling", "quantile": "p50", "maxSeconds": 5, "cache": "cold"}]))
    status = operator_status(body)
    assert status["thresholds"] and status["summaries"] and status["conditions"]
    got = objects.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, "b1", {"status": status})
    assert got["status"] == status  # nothing pruned: every field is declared in the schema
    assert got["metadata"]["generation"] == body["metadata"]["generation"]  # status writes leave spec alone
    # A status patch cannot change the spec, and a spec patch is refused anyway.
    failed = failed_status(got["status"]["conditions"], "NoMatchingNodes", "spec.nodes.selector: no node", 1, NOW)
    got = objects.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, "b1", {"status": failed})
    assert got["status"]["phase"] == "Failed"


def test_printer_columns_show_phase_progress_and_p50(kube_api, objects, namespace):
    body = create(objects, namespace, benchmark())
    objects.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, "b1",
                                                  {"status": operator_status(body)})
    # What `kubectl get sbench` prints: the server-side Table of the printer columns.
    request = kube_api.param_serialize(
        method="GET", resource_path=f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/b1",
        header_params={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}, auth_settings=["BearerToken"])
    response = kube_api.call_api(*request)
    response.read()
    table = json.loads(response.data)
    columns = [c["name"] for c in table["columnDefinitions"]]
    assert columns[:5] == ["Name", "Phase", "Progress", "P50-First-Step", "Age"]
    cells = dict(zip(columns, table["rows"][0]["cells"]))
    assert cells["Phase"] == "Running" and cells["Progress"] == "5/6" and cells["P50-First-Step"] == 12.5


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[2] / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_examples_are_accepted(objects, namespace, path):
    for doc in yaml.safe_load_all(path.read_text()):
        got = objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, doc, dry_run="All")
        assert got["spec"]["images"] == doc["spec"]["images"]


def test_results_command_reads_status_and_record_configmaps(kube_api, objects, namespace, local_cluster, capsys):
    from startbench.cli import main as cli
    from startbench.core.manifests import BenchmarkRef
    from startbench.core.records import chunk_records, records_configmap

    body = create(objects, namespace, benchmark())
    status = operator_status(body)
    ref = BenchmarkRef(name="b1", namespace=namespace, uid=body["metadata"]["uid"])
    records = [{"name": f"b1-torch-slim-n0-c{i}", "image": "torch-slim", "node": "sim-gpu-00", "cache": "cold",
                "repetition": i, "order": i, "result": "Succeeded", "reason": "Completed", "message": "ok",
                "finishedMs": 1.0 + i, "timeToFirstStepMs": 1000.0 * i, "timeline": {"cacheObserved": "miss"}}
               for i in range(1, 41)]
    chunks = chunk_records(records, 2000)
    assert len(chunks) > 1
    core = client.CoreV1Api(kube_api)
    for i, chunk in enumerate(chunks):
        core.create_namespaced_config_map(namespace, records_configmap(ref, i, chunk))
    status["recordsConfigMaps"] = [f"b1-records-{i}" for i in range(len(chunks))]
    objects.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, "b1", {"status": status})

    argv = ["results", "b1", "-n", namespace, "--kubeconfig", local_cluster["kubeconfig"]]
    assert cli.main(argv + ["--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in doc["runs"]] == [r["name"] for r in records]
    assert doc["phase"] == "Running" and doc["progress"] == status["progress"]
    assert cli.main(argv + ["--format", "csv"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 1 + len(records)
    assert cli.main(argv) == 0
    assert "Seconds per image" in capsys.readouterr().out
    assert cli.main(["results", "nope", "-n", namespace, "--kubeconfig", local_cluster["kubeconfig"]]) == 1
    assert "no Benchmark 'nope'" in capsys.readouterr().err
    assert cli.main(["capacity", "nope", "--pods", "10", "-n", namespace, "--kubeconfig", local_cluster["kubeconfig"]]) == 1
    assert capsys.readouterr().err.startswith("startbench capacity: no Benchmark 'nope'")
