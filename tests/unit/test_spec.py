import re
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings, strategies as st

from startbench.core import spec as S
from startbench.core import reference
from startbench.core.reference import problem as image_reference_error
from startbench.core.spec import BenchmarkSpec, SpecError
from startbench.images import catalog

ROOT = Path(__file__).parents[2]
CRD = yaml.safe_load((ROOT / "crds" / "benchmark.yaml").read_text())
SCHEMA = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
SPEC_SCHEMA = SCHEMA["properties"]["spec"]


def prop(path):
    node = SPEC_SCHEMA
    for part in path.split("."):
        node = node["items"] if part == "[]" else node["properties"][part]
    return node


def minimal(**over):
    d = {"images": [{"name": "a", "image": "127.0.0.1:5000/startbench/pytorch:slim", "framework": "pytorch"}],
         "nodes": {"selector": {"matchLabels": {"startbench.dev/pool": "gpu"}}}}
    d.update(over)
    return d


# --- the CRD and spec.py agree ---------------------------------------------------------------------------------

@pytest.mark.parametrize("key", sorted(S.DEFAULTS))
def test_crd_defaults_equal_the_operators(key):
    assert prop(key)["default"] == S.DEFAULTS[key]


@pytest.mark.parametrize("path, values", [
    ("cache", S.CACHE_MODES), ("mode", S.MODES), ("workload.model", S.MODELS),
    ("workload.precision", S.PRECISIONS), ("workload.imageSize", S.IMAGE_SIZES),
    ("finishedPods.keep", S.KEEP_FINISHED), ("images.[].framework", S.FRAMEWORKS),
    ("images.[].variant", S.VARIANTS), ("images.[].build.framework", S.FRAMEWORKS[:3]),
    ("images.[].build.variant", S.VARIANTS[:2]), ("images.[].build.flavour", S.FLAVOURS), ("thresholds.[].metric", S.THRESHOLD_METRICS),
    ("thresholds.[].quantile", S.QUANTILE_NAMES), ("nodes.tolerations.[].effect", S.TAINT_EFFECTS),
    ("nodes.selector.matchExpressions.[].operator", S.SELECTOR_OPERATORS),
])
def test_crd_enums_equal_the_operators(path, values):
    assert tuple(prop(path)["enum"]) == tuple(values)


@pytest.mark.parametrize("path, low, high", [
    ("nodes.gpusPerPod", 0, S.MAX_GPUS_PER_POD), ("nodes.maxNodes", 1, S.MAX_NODES),
    ("repetitions", 1, S.MAX_REPETITIONS), ("parallelism", 1, S.MAX_PARALLELISM),
    ("workload.steps", 2, S.MAX_STEPS), ("workload.batchSize", 1, S.MAX_BATCH),
    ("runTimeoutSeconds", S.MIN_TIMEOUT, S.MAX_TIMEOUT), ("finishedPods.ttlSeconds", 0, S.MAX_TTL),
])
def test_crd_ranges_equal_the_operators(path, low, high):
    assert (prop(path)["minimum"], prop(path)["maximum"]) == (low, high)


def test_crd_limits_and_image_grammar_equal_the_operators():
    assert prop("images")["maxItems"] == S.MAX_IMAGES
    assert prop("images.[].name")["maxLength"] == S.MAX_IMAGE_NAME
    assert prop("images.[].name")["pattern"] == S.DNS_LABEL
    assert prop("images.[].image")["maxLength"] == reference.MAX_IMAGE_REFERENCE
    rule = prop("images.[].image")["x-kubernetes-validations"][0]["rule"]
    assert f"self.matches(r'{reference.IMAGE_REFERENCE}')" == rule
    runs_rule = " ".join(r["rule"] for r in SPEC_SCHEMA["x-kubernetes-validations"])
    assert f"<= {S.MAX_RUNS}" in runs_rule


def test_crd_quantity_pattern_equals_the_operators():
    for part in ("requests", "limits"):
        for name in S.RESOURCE_NAMES:
            node = prop(f"workload.resources.{part}.{name}")
            assert node["pattern"] == S.QUANTITY and node["x-kubernetes-int-or-string"] is True
        assert sorted(prop(f"workload.resources.{part}")["properties"]) == sorted(S.RESOURCE_NAMES)


def test_every_schema_field_is_documented():
    def walk(node, path):
        if path and "description" not in node and path.split(".")[-1] not in ("apiVersion", "kind", "metadata"):
            if not path.endswith("[]") and not path.endswith("additionalProperties"):
                yield path
        for name, child in (node.get("properties") or {}).items():
            yield from walk(child, f"{path}.{name}" if path else name)
        if "items" in node:
            yield from walk(node["items"], f"{path}[]")
    missing = list(walk(SPEC_SCHEMA, "spec"))
    assert missing == []


def test_build_choices_equal_the_image_builders():
    assert S.FRAMEWORKS[:3] == catalog.FRAMEWORKS and S.VARIANTS[:2] == catalog.VARIANTS
    assert S.FLAVOURS == catalog.FLAVOURS


def test_names_follow_the_contract():
    names = CRD["spec"]["names"]
    assert (CRD["spec"]["group"], names["kind"], names["plural"], names["shortNames"]) == (
        "startbench.dev", "Benchmark", "benchmarks", ["sbench"])
    assert [v["name"] for v in CRD["spec"]["versions"]] == ["v1alpha1"]
    columns = [c["name"] for c in CRD["spec"]["versions"][0]["additionalPrinterColumns"]]
    assert columns[:4] == ["Phase", "Progress", "P50-First-Step", "Age"]


# --- parsing -----------------------------------------------------------------------------------------------------

def test_minimal_spec_gets_defaults():
    s = BenchmarkSpec.from_dict(minimal())
    assert (s.cache, s.repetitions, s.parallelism, s.mode, s.run_timeout_seconds) == ("both", 3, 4, "sequential", 600)
    assert s.workload == S.Workload()
    assert s.nodes.gpus_per_pod == 1 and s.nodes.max_nodes == 1
    assert s.images[0].variant == "custom" and s.caches == ("cold", "warm")
    assert s.keep_finished_pods == "failed" and s.finished_pods_ttl_seconds is None
    assert s.max_runs() == 6


def test_full_spec():
    s = BenchmarkSpec.from_dict(minimal(
        images=[{"name": "naive", "build": {"framework": "pytorch", "variant": "naive", "flavour": "cuda"}},
                {"name": "slim", "image": "r/slim@sha256:" + "ab" * 32, "framework": "jax", "variant": "slim"}],
        cache="warm", repetitions=5, parallelism=8, mode="fanOut",
        nodes={"selector": {"matchLabels": {"startbench.dev/pool": "gpu"},
                            "matchExpressions": [{"key": "nvidia.com/gpu.product", "operator": "In",
                                                  "values": ["NVIDIA-H100-80GB-HBM3"]}]},
               "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
               "gpusPerPod": 8, "maxNodes": 4},
        workload={"model": "alexnet", "steps": 30, "batchSize": 256, "precision": "fp16", "imageSize": 64},
        runTimeoutSeconds=1200, imagePullSecrets=[{"name": "regcred"}], finishedPods={"keep": "all", "ttlSeconds": 60},
        thresholds=[{"metric": "deviceInit", "quantile": "p90", "maxSeconds": 2.5, "image": "slim"}],
        purgeImageBeforeColdRun=True))
    assert s.images[0].build == S.ImageBuild("pytorch", "naive", "cuda") and s.images[0].image is None
    assert [e.name for e in s.unbuilt_images] == ["naive"]
    assert s.images[1].framework == "jax"
    assert s.nodes.label_selector == "startbench.dev/pool=gpu,nvidia.com/gpu.product in (NVIDIA-H100-80GB-HBM3)"
    assert s.thresholds[0].phase == "device_init" and s.thresholds[0].describe() == "p90 deviceInit of slim <= 2.5s"
    assert s.image_pull_secrets == ("regcred",) and s.finished_pods_ttl_seconds == 60
    assert s.caches == ("warm",)


def test_workload_resources_keep_the_quantities_as_written():
    s = BenchmarkSpec.from_dict(minimal(workload={"resources": {"requests": {"cpu": "500m", "memory": "1Gi"},
                                                                "limits": {"cpu": 2, "memory": "1.5Gi"}}}))
    r = s.workload.resources
    assert r.requests == (("cpu", "500m"), ("memory", "1Gi")) and r.limits == (("cpu", "2"), ("memory", "1.5Gi"))
    assert r.limit("memory") == "1.5Gi" and r.limit("gpu") is None
    assert BenchmarkSpec.from_dict(minimal()).workload.resources == S.Resources()
    # Equal request and limit is allowed; 1Gi and 1024Mi are the same quantity.
    BenchmarkSpec.from_dict(minimal(workload={"resources": {"requests": {"memory": "1Gi"},
                                                            "limits": {"memory": "1024Mi"}}}))


@pytest.mark.parametrize("text, value", [
    ("500m", "0.5"), ("2", "2"), ("64Mi", str(64 * 2**20)), ("1.5Gi", str(3 * 2**29)), ("1e3", "1000"),
    ("1E-3", "0.001"), (".5", "0.5"), ("2k", "2000"), ("1M", "1000000"), ("10n", "0.00000001"),
])
def test_quantity_values(text, value):
    assert S.quantity_value(text) == Decimal(value)


@pytest.mark.parametrize("text", ["", "1.2.3", "1mi", "Gi", "-1", "1 Gi", "1Gib", "0x10", "1e"])
def test_not_quantities(text):
    assert not re.match(S.QUANTITY, text)


@pytest.mark.parametrize("over, field, words", [
    ({"images": []}, "images", "at least one image"),
    ({"images": [{"name": "a", "image": "x:1", "framework": "pytorch"}] * 2}, "images[1].name", "used twice"),
    ({"images": [{"name": "A", "image": "x:1", "framework": "pytorch"}]}, "images[0].name", "DNS label"),
    ({"images": [{"name": "a", "image": "x:1"}]}, "images[0].framework", "required with `image`"),
    ({"images": [{"name": "a"}]}, "images[0]", "exactly one of"),
    ({"images": [{"name": "a", "image": "team/UPPER:1", "framework": "none"}]}, "images[0].image", "lower case"),
    ({"images": [{"name": "a", "build": {"framework": "jax", "variant": "slim"}, "variant": "slim"}]},
     "images[0]", "inside `build`"),
    ({"images": [{"name": "a", "build": {"framework": "none", "variant": "slim"}}]}, "images[0].build.framework", "none"),
    ({"nodes": None}, "nodes", "required"),
    ({"nodes": {"selector": {}}}, "nodes.selector", "selects every node"),
    ({"nodes": {"selector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}},
     "nodes.selector.matchExpressions[0].values", "at least one value"),
    ({"nodes": {"selector": {"matchLabels": {"a": "b"}}, "tolerations": [{"operator": "Equal"}]}},
     "nodes.tolerations[0].operator", "must be Exists"),
    ({"nodes": {"selector": {"matchLabels": {"a": "b"}}, "gpusPerPod": 9}}, "nodes.gpusPerPod", "between 0 and 8"),
    ({"repetitions": True}, "repetitions", "whole number"),
    ({"cache": "hot"}, "cache", "one of cold, warm, both"),
    ({"mode": "fanOut", "nodes": {"selector": {"matchLabels": {"a": "b"}}, "maxNodes": 9}}, "parallelism", "maxNodes"),
    ({"workload": {"steps": 1}}, "workload.steps", "between 2 and"),
    ({"workload": {"imageSize": 128}}, "workload.imageSize", "224, 64"),
    ({"runTimeoutSeconds": 5}, "runTimeoutSeconds", "between 30"),
    ({"thresholds": [{"metric": "pulling", "quantile": "p50", "maxSeconds": 0}]}, "thresholds[0].maxSeconds", "above 0"),
    ({"thresholds": [{"metric": "pulling", "quantile": "p50", "maxSeconds": 1, "image": "zz"}]}, "thresholds[0].image",
     "names no entry"),
    ({"cache": "cold", "thresholds": [{"metric": "pulling", "quantile": "p50", "maxSeconds": 1, "cache": "warm"}]},
     "thresholds[0].cache", "no run would count"),
    ({"repetitions": 100, "nodes": {"selector": {"matchLabels": {"a": "b"}}, "maxNodes": 1000}}, "repetitions",
     "at most 10000"),
    ({"purgeImageBeforeColdRun": "yes"}, "purgeImageBeforeColdRun", "true or false"),
    ({"workload": {"resources": {"limits": {"memory": "64MB"}}}}, "workload.resources.limits.memory",
     "not a Kubernetes quantity; give e.g."),
    ({"workload": {"resources": {"requests": {"cpu": 0.5}}}}, "workload.resources.requests.cpu", "'500m'"),
    ({"workload": {"resources": {"requests": {"cpu": "-1"}}}}, "workload.resources.requests.cpu", "not a Kubernetes"),
    ({"workload": {"resources": {"limits": {"nvidia.com/gpu": "1"}}}}, "workload.resources.limits.nvidia.com/gpu",
     "spec.nodes.gpusPerPod"),
    ({"workload": {"resources": {"limit": {"cpu": "1"}}}}, "workload.resources.limit", "use requests and limits"),
    ({"workload": {"resources": {"limits": {"memory": "0"}}}}, "workload.resources.limits.memory", "above 0"),
    ({"workload": {"resources": {"requests": {"memory": "2Gi"}, "limits": {"memory": "1024Mi"}}}},
     "workload.resources.requests.memory", "above limits.memory '1024Mi'"),
])
def test_errors_name_the_field_and_the_fix(over, field, words):
    with pytest.raises(SpecError) as info:
        BenchmarkSpec.from_dict(minimal(**over))
    assert info.value.field == field
    assert words in str(info.value)
    assert str(info.value).startswith(f"spec.{field}: ")


@pytest.mark.parametrize("ref", [
    "busybox", "busybox:1.36", "library/busybox", "docker.io/library/python:3.11-slim", "127.0.0.1:5000/a/b:c",
    "localhost/x", "my-registry.example.com:443/team/a__b.c-d:v1.0_rc", "r/x@sha256:" + "0" * 64,
    "r/x:tag@sha256:" + "f" * 64, "registry:5000/x", "Registry.Example.com/x",
])
def test_valid_image_references(ref):
    assert image_reference_error(ref) is None


@pytest.mark.parametrize("ref, words", [
    ("", "empty"), ("a b", "white space"), ("https://r/x", "scheme"), ("R/X", "lower case"), ("x:", "not a valid"),
    ("x@sha256:abc", "not a valid"), ("-x", "not a valid"), ("x" * 600, "at most 512"), ("x/" * 130 + "x", "255"),
])
def test_invalid_image_references(ref, words):
    assert words in image_reference_error(ref)


path_component = st.from_regex(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*", fullmatch=True).filter(lambda s: len(s) < 30)
domain = st.from_regex(r"[a-z0-9]{1,10}(\.[a-z0-9]{1,10}){0,2}(:[0-9]{2,5})?", fullmatch=True)
tag = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)


@given(st.one_of(st.none(), domain), st.lists(path_component, min_size=1, max_size=3), st.one_of(st.none(), tag))
def test_generated_references_are_accepted(dom, parts, t):
    ref = "/".join(([dom] if dom else []) + parts) + (f":{t}" if t else "")
    assert image_reference_error(ref) is None, ref


@given(st.text(max_size=80))
def test_image_reference_check_never_raises(text):
    problem = image_reference_error(text)
    assert problem is None or isinstance(problem, str)
    if problem is None:
        assert not re.search(r"\s", text)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 20000) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20)
spec_keys = st.sampled_from(["images", "nodes", "cache", "repetitions", "parallelism", "mode", "workload",
                             "runTimeoutSeconds", "imagePullSecrets", "finishedPods", "thresholds",
                             "purgeImageBeforeColdRun"])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(spec_keys, json_values, max_size=8))
def test_malformed_specs_raise_only_spec_errors(over):
    try:
        BenchmarkSpec.from_dict(minimal(**over))
    except SpecError as exc:
        assert str(exc).startswith("spec")


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_malformed_image_entries_raise_only_spec_errors(entry):
    for images in ([entry], entry):
        try:
            BenchmarkSpec.from_dict(minimal(images=images))
        except SpecError:
            pass


@settings(max_examples=200, deadline=None)
@given(json_values, json_values)
def test_malformed_nodes_and_thresholds_raise_only_spec_errors(nodes, thresholds):
    for over in ({"nodes": nodes}, {"nodes": {"selector": nodes}}, {"thresholds": thresholds},
                 {"thresholds": [thresholds]}, {"nodes": {"selector": {"matchLabels": {"a": "b"}},
                                                          "tolerations": [nodes]}}):
        try:
            BenchmarkSpec.from_dict(minimal(**over))
        except SpecError:
            pass


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_examples_parse(path):
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert docs
    for doc in docs:
        assert doc["kind"] == "Benchmark" and doc["apiVersion"] == "startbench.dev/v1alpha1"
        spec = BenchmarkSpec.from_dict(doc["spec"])
        for entry in spec.images:
            assert entry.build is not None or entry.image.startswith("127.0.0.1:5000/startbench/")
