"""The typed view of a Benchmark's spec. Pure: a dict in (as the API server stored it), frozen dataclasses out.

The CRD schema (crds/benchmark.yaml) rejects most bad input at `kubectl apply`. `BenchmarkSpec.from_dict`
checks the same rules again, so the operator never trips over a spec it does not understand (an object
stored under an older schema, a test, a hand-made dict), plus what only code can check. Every problem is a
SpecError naming the field (`spec.images[1].image`) and what to change. Defaults here equal the CRD's; a unit
test keeps the two in step.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from startbench.core.contracts import PHASE_BY_CAMEL, PHASE_CAMEL, PHASES, TIME_TO_FIRST_STEP
from startbench.core.reference import problem as reference_problem

# --- enums and limits (the CRD carries the same values; tests/unit/test_spec.py compares them) ---------------

FRAMEWORKS = ("pytorch", "jax", "tensorflow", "none")
VARIANTS = ("naive", "slim", "custom")
FLAVOURS = ("cpu", "cuda")  # images.catalog.FLAVOURS: the wheels a built image gets
CACHE_MODES = ("cold", "warm", "both")
MODES = ("sequential", "fanOut")
MODELS = ("resnet18", "resnet50", "alexnet")
PRECISIONS = ("fp32", "tf32", "bf16", "fp16")
IMAGE_SIZES = (224, 64)
KEEP_FINISHED = ("none", "failed", "all")
QUANTILE_NAMES = ("p50", "p90", "p99")
# Threshold metrics: the whole create-to-first-step time, or one timeline phase (camelCase, contracts.PHASE_CAMEL).
THRESHOLD_METRICS = (TIME_TO_FIRST_STEP,) + tuple(PHASE_CAMEL[p] for p in PHASES)
SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
TOLERATION_OPERATORS = ("Exists", "Equal")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")

MAX_IMAGES = 16
MAX_GPUS_PER_POD = 8
MAX_NODES = 1000
MAX_REPETITIONS = 100
MAX_PARALLELISM = 1000
MAX_RUNS = 10000
MAX_STEPS = 10000
MAX_BATCH = 4096
MIN_TIMEOUT, MAX_TIMEOUT = 30, 86400
MAX_TTL = 604800
# spec.workload.resources: what the run container asks for and is held to (GPUs come from nodes.gpusPerPod).
RESOURCE_NAMES = ("cpu", "memory")
# A Kubernetes quantity, non-negative (apimachinery resource.Quantity's grammar: a decimal number, then a binary
# suffix, a decimal suffix or an exponent). The CRD carries the same pattern; tests/unit/test_spec.py compares.
QUANTITY = r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$"

DEFAULTS: dict[str, Any] = {
    "nodes.gpusPerPod": 1,
    "nodes.maxNodes": 1,
    "cache": "both",
    "repetitions": 3,
    "parallelism": 4,
    "mode": "sequential",
    "workload.model": "resnet18",
    "workload.steps": 15,
    "workload.batchSize": 32,
    "workload.precision": "fp32",
    "workload.imageSize": 224,
    "runTimeoutSeconds": 600,
    "finishedPods.keep": "failed",
    "purgeImageBeforeColdRun": False,
}

# A DNS label (RFC 1123): image entry names become label values and parts of pod names.
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
MAX_IMAGE_NAME = 40

# Image references: one grammar, startbench.core.reference (the CRD's CEL rule is its IMAGE_REFERENCE).
_DNS_LABEL = re.compile(DNS_LABEL)
# Label keys and values (for the node selector).
_LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?" + _LABEL_NAME + "$")
_LABEL_VALUE = re.compile(r"^(" + _LABEL_NAME + ")?$")
_QUANTITY = re.compile(QUANTITY)
_SUFFIX = {"n": "1e-9", "u": "1e-6", "m": "1e-3", "": "1", "k": "1e3", "M": "1e6", "G": "1e9", "T": "1e12",
           "P": "1e15", "E": "1e18", "Ki": str(2**10), "Mi": str(2**20), "Gi": str(2**30), "Ti": str(2**40),
           "Pi": str(2**50), "Ei": str(2**60)}


class SpecError(ValueError):
    """A Benchmark spec that the operator cannot run. `field` is a path below `spec`, e.g. `images[1].image`."""

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"spec.{field}: {message}" if field else f"spec: {message}")


# --- the typed spec ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ImageBuild:
    framework: str
    variant: str
    flavour: str | None = None


@dataclasses.dataclass(frozen=True)
class ImageEntry:
    name: str
    framework: str
    variant: str
    image: str | None = None  # the reference; None for a build entry not yet resolved (see with_built_images)
    build: ImageBuild | None = None

    @property
    def reference(self) -> str:
        """The image reference to run; raises SpecError for a build entry whose image is not built yet."""
        if self.image is None:
            raise SpecError(f"images[{self.name}]", "the operator has not built this image yet")
        return self.image


@dataclasses.dataclass(frozen=True)
class Nodes:
    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[tuple[str, str, tuple[str, ...]], ...] = ()  # (key, operator, values)
    tolerations: tuple[Mapping[str, Any], ...] = ()  # as in a PodSpec, camelCase keys
    gpus_per_pod: int = 1
    max_nodes: int = 1

    @property
    def label_selector(self) -> str:
        """The selector in the string form of `kubectl get nodes -l` and the API's labelSelector parameter."""
        parts = [f"{k}={v}" for k, v in self.match_labels]
        for key, op, values in self.match_expressions:
            if op == "Exists":
                parts.append(key)
            elif op == "DoesNotExist":
                parts.append(f"!{key}")
            else:
                parts.append(f"{key} {op.lower()} ({','.join(values)})")
        return ",".join(parts)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether a node with these labels matches the selector (what the API server does with label_selector)."""
        for k, v in self.match_labels:
            if labels.get(k) != v:
                return False
        for key, op, values in self.match_expressions:
            present = key in labels
            if op == "In" and not (present and labels[key] in values):
                return False
            if op == "NotIn" and present and labels[key] in values:
                return False
            if op == "Exists" and not present:
                return False
            if op == "DoesNotExist" and present:
                return False
        return True


@dataclasses.dataclass(frozen=True)
class Resources:
    """spec.workload.resources: (name, quantity) pairs of `cpu` and `memory`, as the run container asks for them
    (requests) and is held to (limits). Quantities stay the strings the user wrote."""
    requests: tuple[tuple[str, str], ...] = ()
    limits: tuple[tuple[str, str], ...] = ()

    def limit(self, name: str) -> str | None:
        return dict(self.limits).get(name)

    def to_dict(self) -> dict[str, dict[str, str]]:
        """The container's `resources` (without GPUs), empty parts left out."""
        return {k: dict(v) for k, v in (("requests", self.requests), ("limits", self.limits)) if v}


@dataclasses.dataclass(frozen=True)
class Workload:
    model: str = "resnet18"
    steps: int = 15
    batch_size: int = 32
    precision: str = "fp32"
    image_size: int = 224
    args: tuple[str, ...] = ()
    resources: Resources = Resources()


@dataclasses.dataclass(frozen=True)
class Threshold:
    metric: str  # one of THRESHOLD_METRICS
    quantile: str  # p50, p90 or p99
    max_seconds: float
    image: str | None = None  # an image entry's name; None: every image on its own
    cache: str | None = None  # cold or warm (the cache asked for); None: all runs

    @property
    def phase(self) -> str | None:
        """The timeline phase (contracts.PHASES name) this threshold bounds; None for timeToFirstStep."""
        return PHASE_BY_CAMEL.get(self.metric)

    def describe(self) -> str:
        scope = f" of {self.image}" if self.image else ""
        cache = f" ({self.cache})" if self.cache else ""
        return f"{self.quantile} {self.metric}{scope}{cache} <= {self.max_seconds:g}s"


@dataclasses.dataclass(frozen=True)
class BenchmarkSpec:
    images: tuple[ImageEntry, ...]
    nodes: Nodes
    cache: str = "both"
    repetitions: int = 3
    parallelism: int = 4
    mode: str = "sequential"
    workload: Workload = Workload()
    run_timeout_seconds: int = 600
    image_pull_secrets: tuple[str, ...] = ()
    keep_finished_pods: str = "failed"
    finished_pods_ttl_seconds: int | None = None
    thresholds: tuple[Threshold, ...] = ()
    purge_image_before_cold_run: bool = False

    @property
    def caches(self) -> tuple[str, ...]:
        """The cache states asked for, in run order: cold before warm."""
        return ("cold", "warm") if self.cache == "both" else (self.cache,)

    def image(self, name: str) -> ImageEntry:
        for entry in self.images:
            if entry.name == name:
                return entry
        raise KeyError(f"no image entry named {name!r}; the spec has {', '.join(e.name for e in self.images)}")

    def max_runs(self) -> int:
        """Runs the spec asks for when nodes.maxNodes nodes match."""
        return len(self.images) * self.nodes.max_nodes * len(self.caches) * self.repetitions

    def with_built_images(self, references: Mapping[str, str]) -> "BenchmarkSpec":
        """A copy where build entries carry the reference of the image the operator built for them."""
        images = []
        for entry in self.images:
            if entry.build is not None and entry.name in references:
                problem = reference_problem(references[entry.name])
                if problem:
                    raise SpecError(f"images[{entry.name}].build", f"the built image {problem}")
                entry = dataclasses.replace(entry, image=references[entry.name])
            images.append(entry)
        return dataclasses.replace(self, images=tuple(images))

    @property
    def unbuilt_images(self) -> tuple[ImageEntry, ...]:
        return tuple(e for e in self.images if e.image is None)

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> "BenchmarkSpec":
        """Parse and check a Benchmark's `.spec`; raises SpecError naming the field and the fix."""
        return _parse(spec)


# --- parsing -----------------------------------------------------------------------------------------------------

def _obj(value: Any, field: str, required: bool = False) -> Mapping[str, Any]:
    if value is None:
        if required:
            raise SpecError(field, "is required")
        return {}
    if not isinstance(value, Mapping):
        raise SpecError(field, f"must be an object, not {type(value).__name__}")
    return value


def _list(value: Any, field: str, max_items: int) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise SpecError(field, f"must be a list, not {type(value).__name__}")
    if len(value) > max_items:
        raise SpecError(field, f"has {len(value)} items; at most {max_items} are allowed")
    return value


def _int(obj: Mapping[str, Any], key: str, field: str, default: int | None, low: int, high: int) -> int | None:
    value = obj.get(key, default)
    if value is None:
        if default is None:
            return None
        value = default
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(field, f"must be a whole number between {low} and {high}, not {value!r}")
    if not low <= value <= high:
        raise SpecError(field, f"is {value}; set it between {low} and {high}")
    return value


def _enum(obj: Mapping[str, Any], key: str, field: str, allowed: tuple, default: Any = None) -> Any:
    value = obj.get(key, default)
    if value is None:
        raise SpecError(field, f"is required; one of {', '.join(map(str, allowed))}")
    if isinstance(value, bool) or value not in allowed:
        raise SpecError(field, f"is {value!r}; use one of {', '.join(map(str, allowed))}")
    return value


def _str(value: Any, field: str, max_len: int = 253) -> str:
    if not isinstance(value, str) or not value:
        raise SpecError(field, "must be a non-empty string")
    if len(value) > max_len:
        raise SpecError(field, f"is {len(value)} characters long; at most {max_len} are allowed")
    return value


def _parse_image(raw: Any, i: int) -> ImageEntry:
    f = f"images[{i}]"
    entry = _obj(raw, f, required=True)
    name = _str(entry.get("name"), f"{f}.name", MAX_IMAGE_NAME)
    if not _DNS_LABEL.match(name):
        raise SpecError(f"{f}.name", f"{name!r} must be a DNS label: lower-case letters, digits and '-', "
                                     "starting and ending with a letter or digit")
    has_image, has_build = entry.get("image") is not None, entry.get("build") is not None
    if has_image == has_build:
        raise SpecError(f, "give exactly one of `image` (a reference to run) or `build` (an image the operator builds)")
    if has_image:
        problem = reference_problem(entry["image"])
        if problem:
            raise SpecError(f"{f}.image", problem)
        if entry.get("framework") is None:
            raise SpecError(f"{f}.framework", f"is required with `image`; one of {', '.join(FRAMEWORKS)}")
        framework = _enum(entry, "framework", f"{f}.framework", FRAMEWORKS)
        variant = _enum(entry, "variant", f"{f}.variant", VARIANTS, "custom")
        return ImageEntry(name=name, framework=framework, variant=variant, image=entry["image"])
    if entry.get("framework") is not None or entry.get("variant") is not None:
        raise SpecError(f, "with `build`, set framework and variant inside `build`, not beside it")
    b = _obj(entry["build"], f"{f}.build", required=True)
    framework = _enum(b, "framework", f"{f}.build.framework", FRAMEWORKS[:3])
    variant = _enum(b, "variant", f"{f}.build.variant", VARIANTS[:2])
    flavour = b.get("flavour")
    if flavour is not None:
        flavour = _enum(b, "flavour", f"{f}.build.flavour", FLAVOURS)
    return ImageEntry(name=name, framework=framework, variant=variant, build=ImageBuild(framework, variant, flavour))


def _label(key: Any, field: str) -> str:
    if not isinstance(key, str) or len(key) > 317 or not _LABEL_KEY.match(key):
        raise SpecError(field, f"{key!r} is not a label key (e.g. startbench.dev/pool)")
    return key


def _label_value(value: Any, field: str) -> str:
    if not isinstance(value, str) or not _LABEL_VALUE.match(value):
        raise SpecError(field, f"{value!r} is not a label value (at most 63 letters, digits, '-', '_', '.')")
    return value


def _parse_nodes(raw: Any) -> Nodes:
    nodes = _obj(raw, "nodes", required=True)
    selector = _obj(nodes.get("selector"), "nodes.selector", required=True)
    match_labels = _obj(selector.get("matchLabels"), "nodes.selector.matchLabels")
    labels = tuple(sorted((_label(k, f"nodes.selector.matchLabels[{k}]"), _label_value(v, f"nodes.selector.matchLabels[{k}]"))
                          for k, v in match_labels.items()))
    expressions = []
    for j, expr in enumerate(_list(selector.get("matchExpressions"), "nodes.selector.matchExpressions", 32)):
        f = f"nodes.selector.matchExpressions[{j}]"
        expr = _obj(expr, f, required=True)
        key = _label(expr.get("key"), f"{f}.key")
        op = _enum(expr, "operator", f"{f}.operator", SELECTOR_OPERATORS)
        values = _list(expr.get("values"), f"{f}.values", 64)
        if op in ("In", "NotIn") and not values:
            raise SpecError(f"{f}.values", f"must list at least one value with operator {op}")
        if op in ("Exists", "DoesNotExist") and values:
            raise SpecError(f"{f}.values", f"must be empty with operator {op}")
        expressions.append((key, op, tuple(_label_value(v, f"{f}.values[{n}]") for n, v in enumerate(values))))
    if not labels and not expressions:
        raise SpecError("nodes.selector", "selects every node; give matchLabels or matchExpressions, "
                                          "e.g. matchLabels: {startbench.dev/pool: gpu}")
    tolerations = []
    for j, tol in enumerate(_list(nodes.get("tolerations"), "nodes.tolerations", 32)):
        f = f"nodes.tolerations[{j}]"
        tol = _obj(tol, f, required=True)
        op = _enum(tol, "operator", f"{f}.operator", TOLERATION_OPERATORS, "Equal")
        if tol.get("key") is not None:
            _label(tol["key"], f"{f}.key")
        elif op != "Exists":
            raise SpecError(f"{f}.operator", "must be Exists when key is empty (tolerate every taint)")
        if op == "Exists" and tol.get("value"):
            raise SpecError(f"{f}.value", "must be empty with operator Exists")
        if tol.get("effect") is not None:
            _enum(tol, "effect", f"{f}.effect", TAINT_EFFECTS)
        if tol.get("tolerationSeconds") is not None:
            _int(tol, "tolerationSeconds", f"{f}.tolerationSeconds", None, 0, 2**62)
        clean = {k: tol[k] for k in ("key", "operator", "value", "effect", "tolerationSeconds") if tol.get(k) is not None}
        tolerations.append(clean)
    return Nodes(
        match_labels=labels,
        match_expressions=tuple(expressions),
        tolerations=tuple(tolerations),
        gpus_per_pod=_int(nodes, "gpusPerPod", "nodes.gpusPerPod", DEFAULTS["nodes.gpusPerPod"], 0, MAX_GPUS_PER_POD),
        max_nodes=_int(nodes, "maxNodes", "nodes.maxNodes", DEFAULTS["nodes.maxNodes"], 1, MAX_NODES),
    )


def quantity_value(text: str) -> Decimal:
    """The value of a Kubernetes quantity string that matches QUANTITY (`500m` is 0.5, `64Mi` is 67108864)."""
    m = _QUANTITY.match(text)
    if m is None:
        raise ValueError(f"{text!r} is not a quantity")
    suffix = m.group(3) or ""
    if suffix[:1] in ("e", "E"):
        return Decimal(m.group(1)) * Decimal(10) ** int(suffix[1:])
    return Decimal(m.group(1)) * Decimal(_SUFFIX[suffix])


def _quantity(value: Any, field: str) -> str:
    example = "'500m' or 2 for cpu, '512Mi' or '2Gi' for memory"
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise SpecError(field, f"is {value!r}; give a Kubernetes quantity, e.g. {example}")
    text = str(value)
    if not _QUANTITY.match(text):
        raise SpecError(field, f"{text!r} is not a Kubernetes quantity; give e.g. {example}")
    return text


def _parse_resources(raw: Any) -> Resources:
    r = _obj(raw, "workload.resources")
    for key in r:
        if key not in ("requests", "limits"):
            raise SpecError(f"workload.resources.{key}", "is not a field; use requests and limits")
    parts: dict[str, tuple[tuple[str, str], ...]] = {}
    for part in ("requests", "limits"):
        given = _obj(r.get(part), f"workload.resources.{part}")
        for name in given:
            if name not in RESOURCE_NAMES:
                hint = " (GPUs: set spec.nodes.gpusPerPod)" if "gpu" in str(name) else ""
                raise SpecError(f"workload.resources.{part}.{name}",
                                f"is not a resource the run container can ask for here; use cpu or memory{hint}")
        parts[part] = tuple((name, _quantity(given[name], f"workload.resources.{part}.{name}"))
                            for name in RESOURCE_NAMES if given.get(name) is not None)
    requests, limits = dict(parts["requests"]), dict(parts["limits"])
    for name, limit in limits.items():
        if quantity_value(limit) == 0:
            raise SpecError(f"workload.resources.limits.{name}", f"is {limit!r}; a limit must be above 0 (leave it "
                                                                 "out for no limit)")
        if name in requests and quantity_value(requests[name]) > quantity_value(limit):
            raise SpecError(f"workload.resources.requests.{name}",
                            f"is {requests[name]!r}, above limits.{name} {limit!r}; the API server refuses such a "
                            f"pod: lower the request or raise the limit")
    return Resources(requests=parts["requests"], limits=parts["limits"])


def _parse_workload(raw: Any) -> Workload:
    w = _obj(raw, "workload")
    args = tuple(_str(a, f"workload.args[{j}]", 256) for j, a in enumerate(_list(w.get("args"), "workload.args", 32)))
    return Workload(
        model=_enum(w, "model", "workload.model", MODELS, DEFAULTS["workload.model"]),
        steps=_int(w, "steps", "workload.steps", DEFAULTS["workload.steps"], 2, MAX_STEPS),
        batch_size=_int(w, "batchSize", "workload.batchSize", DEFAULTS["workload.batchSize"], 1, MAX_BATCH),
        precision=_enum(w, "precision", "workload.precision", PRECISIONS, DEFAULTS["workload.precision"]),
        image_size=_enum(w, "imageSize", "workload.imageSize", IMAGE_SIZES, DEFAULTS["workload.imageSize"]),
        args=args,
        resources=_parse_resources(w.get("resources")),
    )


def _parse(raw: Mapping[str, Any]) -> BenchmarkSpec:
    spec = _obj(raw, "", required=True)
    images_raw = _list(spec.get("images"), "images", MAX_IMAGES)
    if not images_raw:
        raise SpecError("images", "is required: list at least one image to benchmark")
    images = tuple(_parse_image(e, i) for i, e in enumerate(images_raw))
    seen: set[str] = set()
    for i, e in enumerate(images):
        if e.name in seen:
            raise SpecError(f"images[{i}].name", f"{e.name!r} is used twice; image names must be unique")
        seen.add(e.name)
    nodes = _parse_nodes(spec.get("nodes"))
    cache = _enum(spec, "cache", "cache", CACHE_MODES, DEFAULTS["cache"])
    repetitions = _int(spec, "repetitions", "repetitions", DEFAULTS["repetitions"], 1, MAX_REPETITIONS)
    parallelism = _int(spec, "parallelism", "parallelism", DEFAULTS["parallelism"], 1, MAX_PARALLELISM)
    mode = _enum(spec, "mode", "mode", MODES, DEFAULTS["mode"])
    if mode == "fanOut" and parallelism < nodes.max_nodes:
        raise SpecError("parallelism", f"is {parallelism}, below nodes.maxNodes ({nodes.max_nodes}); in fanOut mode "
                                       "a wave starts one pod on every node at once, so raise parallelism to at least maxNodes")
    secrets = []
    for j, s in enumerate(_list(spec.get("imagePullSecrets"), "imagePullSecrets", 16)):
        s = _obj(s, f"imagePullSecrets[{j}]", required=True)
        secrets.append(_str(s.get("name"), f"imagePullSecrets[{j}].name"))
    finished = _obj(spec.get("finishedPods"), "finishedPods")
    thresholds = []
    for j, t in enumerate(_list(spec.get("thresholds"), "thresholds", 32)):
        f = f"thresholds[{j}]"
        t = _obj(t, f, required=True)
        max_seconds = t.get("maxSeconds")
        if isinstance(max_seconds, bool) or not isinstance(max_seconds, (int, float)) or not 0 < max_seconds <= 86400:
            raise SpecError(f"{f}.maxSeconds", f"is {max_seconds!r}; give a number of seconds above 0 and at most 86400")
        image = t.get("image")
        if image is not None and image not in seen:
            raise SpecError(f"{f}.image", f"{image!r} names no entry of spec.images (have {', '.join(sorted(seen))})")
        cache_filter = t.get("cache")
        if cache_filter is not None:
            cache_filter = _enum(t, "cache", f"{f}.cache", ("cold", "warm"))
            if cache not in ("both", cache_filter):
                raise SpecError(f"{f}.cache", f"is {cache_filter!r} but spec.cache is {cache!r}: no run would count")
        thresholds.append(Threshold(
            metric=_enum(t, "metric", f"{f}.metric", THRESHOLD_METRICS),
            quantile=_enum(t, "quantile", f"{f}.quantile", QUANTILE_NAMES),
            max_seconds=float(max_seconds), image=image, cache=cache_filter))
    purge = spec.get("purgeImageBeforeColdRun", DEFAULTS["purgeImageBeforeColdRun"])
    if not isinstance(purge, bool):
        raise SpecError("purgeImageBeforeColdRun", f"must be true or false, not {purge!r}")
    result = BenchmarkSpec(
        images=images,
        nodes=nodes,
        cache=cache,
        repetitions=repetitions,
        parallelism=parallelism,
        mode=mode,
        workload=_parse_workload(spec.get("workload")),
        run_timeout_seconds=_int(spec, "runTimeoutSeconds", "runTimeoutSeconds", DEFAULTS["runTimeoutSeconds"],
                                 MIN_TIMEOUT, MAX_TIMEOUT),
        image_pull_secrets=tuple(secrets),
        keep_finished_pods=_enum(finished, "keep", "finishedPods.keep", KEEP_FINISHED, DEFAULTS["finishedPods.keep"]),
        finished_pods_ttl_seconds=_int(finished, "ttlSeconds", "finishedPods.ttlSeconds", None, 0, MAX_TTL),
        thresholds=tuple(thresholds),
        purge_image_before_cold_run=purge,
    )
    if result.max_runs() > MAX_RUNS:
        raise SpecError("repetitions", f"the spec asks for up to {result.max_runs()} runs (images x nodes.maxNodes x "
                                       f"cache states x repetitions); at most {MAX_RUNS} are allowed: lower one of them")
    return result
