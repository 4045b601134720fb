"""From a spec and the nodes it selected to the run matrix, and which runs to start now. Pure and deterministic.

A run is one pod: one image on one node in one cache state, one repetition. `plan()` gives every run a
name that depends only on the benchmark's name, the image entry, the node's position in the selected node list
and the repetition, so an operator that restarts re-plans the same names and finds the pods it already made
(pod name = run name). The caller keeps the selected node list in `status.nodes` the first time it plans and
plans from that list afterwards; the spec is immutable, so the plan never changes.

Order and cache states
----------------------
Runs go repetition by repetition; within one, image by image; within one image, cold runs before warm runs;
within one cache state, node by node. A warm run waits (`after`) for the cold run of the same image, node and
repetition to finish, whatever its result, so the image was just pulled there. With `cache: warm` alone, one
priming run per image and node (repetition 0, cache `cold`) comes first and every warm run of that image on that
node waits for it; the priming run is recorded like any other run. A run's pod asks for a cache state through
its pull policy (manifests.py); the timeline records the state the kubelet reports, never the one asked for.

Scheduling (`next_runs`)
------------------------
`sequential`: at most `parallelism` pods in flight; runs start in plan order as earlier ones finish, skipping a
run whose `after` has not finished or whose image is being started on the same node right now (two pods of one
image on one node would share a pull). `fanOut`: a wave is every run of one (repetition, image, cache state),
one per node; a wave starts all at once when nothing is in flight (a pull storm) and the next waits for it.
The CRD requires `parallelism >= nodes.maxNodes` in fanOut mode; were it lower, a wave starts in slices.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from startbench.core.spec import BenchmarkSpec, SpecError

MAX_NAME = 63  # pod names are label values (startbench.dev/run), so 63 characters at most


class PlanError(SpecError):
    """The spec is valid but cannot run on this cluster (e.g. its selector matches no usable node)."""


class RunState(str, enum.Enum):
    PENDING = "Pending"  # no pod yet
    RUNNING = "Running"  # pod created, run not finished
    DONE = "Done"  # finished, with any result


@dataclasses.dataclass(frozen=True)
class Run:
    name: str  # DNS-1123 label, <= 63 characters; also the pod name
    image: str  # the image entry's name
    node: str
    cache: str  # the cache state asked for: cold or warm
    repetition: int  # 1..repetitions; 0 for a priming run
    order: int  # position in the plan, from 0
    wave: int  # runs of one (repetition, image, cache) share a wave, one per node
    after: str | None = None  # a run that must be finished before this one starts
    purge_first: bool = False  # the caller removes the image from the node before creating this run's pod

    @property
    def priming(self) -> bool:
        return self.repetition == 0


def _sanitize(text: str) -> str:
    text = re.sub(r"[^a-z0-9-]+", "-", text.lower())
    return re.sub(r"-+", "-", text).strip("-") or "x"


def _short_hash(text: str, n: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def run_names(benchmark: str, image_names: Sequence[str], node_count: int,
              coordinates: Iterable[tuple[int, int, str, int]]) -> list[str]:
    """Names for runs given as (image index, node index, cache, repetition).

    `{benchmark}-{image}-n{node index}-{c|w}{repetition}` when every name of the plan fits 63 characters,
    otherwise `{benchmark}-i{image index}-n{node index}-{c|w}{repetition}` for all of them, with the benchmark's
    name cut and followed by a hash of the whole name when even that is too long. Read from the right, the
    suffix is unambiguous, so the names of one benchmark are unique by construction.
    """
    coords = list(coordinates)
    bench = _sanitize(benchmark)
    widest_node = f"n{max(node_count - 1, 0)}"
    widest_rep = max((r for _, _, _, r in coords), default=0)
    widest_suffix = len(f"-{widest_node}-c{widest_rep}")
    hashed = 0 if bench == benchmark else 9
    readable = all(len(bench) + hashed + 1 + len(name) + widest_suffix <= MAX_NAME for name in image_names)

    def image_part(i: int) -> str:
        return image_names[i] if readable else f"i{i}"

    longest = max((len(image_part(i)) for i in range(len(image_names))), default=0) + 1 + widest_suffix
    # A name that had to change (dots, upper case) or be cut gets a hash of the original, so two benchmarks
    # of one namespace ("a.b" and "a-b") never share pod names.
    if bench != benchmark or len(bench) + longest > MAX_NAME:
        keep = min(len(bench), MAX_NAME - longest - 9)
        bench = f"{bench[:keep].rstrip('-')}-{_short_hash(benchmark)}"
    return [f"{bench}-{image_part(i)}-n{n}-{cache[0]}{r}" for i, n, cache, r in coords]


def plan(benchmark_name: str, spec: BenchmarkSpec, nodes: Sequence[str]) -> list[Run]:
    """Every run of the benchmark, in order. `nodes`: the selected node names (see select_nodes), in a fixed order."""
    if not nodes:
        raise PlanError("nodes.selector", "no node was selected; the plan needs at least one node")
    if len(set(nodes)) != len(nodes):
        raise ValueError(f"node names repeat in {list(nodes)!r}")
    image_names = [e.name for e in spec.images]
    coords: list[tuple[int, int, str, int, int]] = []  # image, node, cache, repetition, wave
    wave = 0
    if spec.cache == "warm":
        for i in range(len(image_names)):
            for n in range(len(nodes)):
                coords.append((i, n, "cold", 0, wave))
            wave += 1
    for rep in range(1, spec.repetitions + 1):
        for i in range(len(image_names)):
            for cache in spec.caches:
                for n in range(len(nodes)):
                    coords.append((i, n, cache, rep, wave))
                wave += 1
    names = run_names(benchmark_name, image_names, len(nodes), [(i, n, c, r) for i, n, c, r, _ in coords])
    by_coord = {(i, n, c, r): name for (i, n, c, r, _), name in zip(coords, names)}
    runs = []
    for order, ((i, n, cache, rep, w), name) in enumerate(zip(coords, names)):
        after = None
        if cache == "warm":
            after = by_coord[(i, n, "cold", rep if spec.cache == "both" else 0)]
        runs.append(Run(name=name, image=image_names[i], node=nodes[n], cache=cache, repetition=rep, order=order,
                        wave=w, after=after, purge_first=cache == "cold" and spec.purge_image_before_cold_run))
    return runs


def next_runs(runs: Sequence[Run], states: Mapping[str, RunState | str], parallelism: int,
              mode: str = "sequential") -> list[Run]:
    """The runs to create now. `states` maps run names to RunState (a missing name is PENDING).

    Pure and deterministic: the same plan and states give the same answer, so calling it after every pod event
    and again after a restart is safe.
    """
    if parallelism < 1:
        raise ValueError(f"parallelism must be at least 1, not {parallelism}")
    state = {r.name: RunState(states.get(r.name, RunState.PENDING)) for r in runs}
    running = [r for r in runs if state[r.name] is RunState.RUNNING]
    room = parallelism - len(running)
    if room <= 0:
        return []
    ordered = sorted(runs, key=lambda r: r.order)
    if mode == "fanOut":
        if running:
            return []
        pending = [r for r in ordered if state[r.name] is RunState.PENDING]
        if not pending:
            return []
        wave = pending[0].wave
        return [r for r in pending if r.wave == wave][:room]
    if mode != "sequential":
        raise ValueError(f"unknown mode {mode!r}; expected sequential or fanOut")
    busy = {(r.image, r.node) for r in running}
    chosen = []
    for r in ordered:
        if len(chosen) == room:
            break
        if state[r.name] is not RunState.PENDING or (r.image, r.node) in busy:
            continue
        if r.after is not None and state.get(r.after) is not RunState.DONE:
            continue
        chosen.append(r)
        busy.add((r.image, r.node))
    return chosen


# --- node selection ---------------------------------------------------------------------------------------------

def _get(obj: Any, *path: str) -> Any:
    """Read a field from a node given as the API's camelCase dict or the Python client's snake_case to_dict()."""
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        snake = re.sub(r"(?<!^)([A-Z])", r"_\1", key).lower()
        obj = obj.get(key, obj.get(snake))
    return obj


def _tolerates(tolerations: Sequence[Mapping[str, Any]], taint: Mapping[str, Any]) -> bool:
    for tol in tolerations:
        if tol.get("effect") and tol["effect"] != taint.get("effect"):
            continue
        op = tol.get("operator", "Equal")
        if not tol.get("key"):
            if op == "Exists":
                return True
            continue
        if tol["key"] != taint.get("key"):
            continue
        if op == "Exists" or (tol.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def _gpus(node: Mapping[str, Any]) -> int:
    allocatable = _get(node, "status", "allocatable") or {}
    raw = allocatable.get("nvidia.com/gpu", "0") if isinstance(allocatable, Mapping) else "0"
    try:
        return int(str(raw))
    except ValueError:
        return 0


@dataclasses.dataclass(frozen=True)
class NodeSelection:
    nodes: tuple[str, ...]  # names of the nodes to run on, sorted, at most maxNodes
    excluded: tuple[tuple[str, str], ...]  # (node, why) for matching nodes that cannot run the pod
    matched: int  # nodes that matched the selector


def select_nodes(spec: BenchmarkSpec, nodes: Iterable[Mapping[str, Any]]) -> NodeSelection:
    """Pick the nodes to run on from the cluster's nodes (camelCase or snake_case dicts).

    Keeps nodes that match spec.nodes.selector, are Ready, not cordoned, whose NoSchedule/NoExecute taints the
    spec tolerates and that have at least gpusPerPod allocatable GPUs; sorts them by name and keeps maxNodes.
    Raises PlanError naming what to change when none is left.
    """
    sel = spec.nodes
    selector = sel.label_selector
    matched, usable, excluded = 0, [], []
    for node in nodes:
        name = _get(node, "metadata", "name")
        labels = _get(node, "metadata", "labels") or {}
        if not name or not sel.matches(labels):
            continue
        matched += 1
        conditions = _get(node, "status", "conditions") or []
        ready = any(_get(c, "type") == "Ready" and _get(c, "status") == "True" for c in conditions)
        untolerated = [t for t in (_get(node, "spec", "taints") or [])
                       if _get(t, "effect") in ("NoSchedule", "NoExecute")
                       and not _tolerates(sel.tolerations, {k: _get(t, k) for k in ("key", "value", "effect")})]
        if _get(node, "spec", "unschedulable"):
            excluded.append((name, "is cordoned (unschedulable)"))
        elif not ready:
            excluded.append((name, "is not Ready"))
        elif untolerated:
            t = untolerated[0]
            value = f"={_get(t, 'value')}" if _get(t, "value") else ""
            excluded.append((name, f"has taint {_get(t, 'key')}{value}:{_get(t, 'effect')} that spec.nodes.tolerations "
                                   "does not tolerate (add a toleration for it)"))
        elif _gpus(node) < sel.gpus_per_pod:
            excluded.append((name, f"has {_gpus(node)} allocatable nvidia.com/gpu but spec.nodes.gpusPerPod is "
                                   f"{sel.gpus_per_pod} (lower gpusPerPod or select GPU nodes)"))
        else:
            usable.append(name)
    if matched == 0:
        raise PlanError("nodes.selector", f"no node matches the selector {selector!r}; check `kubectl get nodes -l "
                                          f"'{selector}'` and change spec.nodes.selector")
    if not usable:
        detail = "; ".join(f"{n} {why}" for n, why in sorted(excluded)[:5])
        more = f" (and {len(excluded) - 5} more)" if len(excluded) > 5 else ""
        raise PlanError("nodes", f"{matched} node(s) match {selector!r} but none can run the pod: {detail}{more}")
    return NodeSelection(nodes=tuple(sorted(usable)[: sel.max_nodes]), excluded=tuple(sorted(excluded)), matched=matched)
