"""Capacity planning from a Benchmark's runs (pure): how long until P pods of an image have started on N nodes,
cold or warm, and how much a smaller image saves. `cli/capacity.py` reads the runs from the cluster.

The model, and what it leaves out:
- Pods are placed `pods_per_node` to a node. A node pulls an image once, however many of its pods use it (the
  runtime shares one pull), so P cold pods cost one pull on each of ceil(P / pods_per_node) nodes, all at once.
- A node pulls at the bandwidth measured in the benchmark: the median over its cold runs of the image size the
  kubelet reported divided by the kubelet's pull time. When the registry's egress is given, the nodes pulling at
  once share it evenly: each pulls at min(node bandwidth, registry bandwidth / nodes pulling).
- The rest of a start (scheduling, container create and start, imports, device init, first step) takes what it
  took in the benchmark's cold runs: the median for a typical pod, the p90 for the last ones.
- A warm start takes what the benchmark's warm runs took (no pull is modelled).
- Pods beyond nodes x pods_per_node wait for a free slot: they start in waves, each wave as the one before it
  ends. A pod holds its slot for the run duration: the median, over the benchmark's runs of the image that
  succeeded, of creation to end less the pull (a cold pod of the first wave holds it for its pull on top), or the
  duration the caller gives (`run_seconds`, the pods' real training time). A later wave finds the image on its
  nodes: its pods start as a cold start without its pull (cold), or as a warm start (warm).
Not modelled: the API server's and scheduler's own limits at large P, lazy-pulling snapshotters, registry
mirrors and peer-to-peer caches, several images pulled on one node at once. The measured node bandwidth already
holds whatever contention the benchmark itself had (docs/capacity.md).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from startbench.core.stats import quantile

PULL_PHASES = ("waiting_to_pull", "pulling")
START_PHASES = ("scheduling", "waiting_to_pull", "pulling", "create_start")  # to container start


class CapacityError(ValueError):
    """A question the model cannot answer, or runs it cannot learn from; the message says what to change."""


@dataclasses.dataclass(frozen=True)
class ImageProfile:
    """What the benchmark measured of one image, as the model uses it."""

    image: str
    endpoint: str                   # "first step", or "container start" (runs on nodes that ran no workload)
    cold_runs: int
    warm_runs: int
    pull_bytes: float | None = None       # median image size of the cold pulls (kubelet's Pulled event)
    node_bandwidth: float | None = None   # bytes/s, median over cold pulls
    rest_p50_s: float | None = None       # cold start minus its pull, median
    rest_p90_s: float | None = None
    warm_p50_s: float | None = None
    warm_p90_s: float | None = None
    run_p50_s: float | None = None        # creation to end less the pull (cold runs), median: the slot a pod holds


@dataclasses.dataclass(frozen=True)
class Question:
    pods: int
    nodes: int
    pods_per_node: int = 1
    registry_bandwidth: float | None = None  # bytes/s the registry serves in all; None: not a limit
    run_seconds: float | None = None         # a pod's creation to end; None: the benchmark's measured run

    def __post_init__(self):
        for name in ("pods", "nodes", "pods_per_node"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise CapacityError(f"{name.replace('_', ' ')} must be a whole number of at least 1, not {value!r}")
        if self.registry_bandwidth is not None and not self.registry_bandwidth > 0:
            raise CapacityError(f"the registry bandwidth must be above 0 bytes/s, not {self.registry_bandwidth!r}")
        if self.run_seconds is not None and not self.run_seconds > 0:
            raise CapacityError(f"the run duration must be above 0 seconds, not {self.run_seconds!r}")

    @property
    def slots(self) -> int:
        return self.nodes * self.pods_per_node


@dataclasses.dataclass(frozen=True)
class Estimate:
    image: str
    cache: str                  # cold or warm
    endpoint: str
    pods_started: int           # the pods that fit on the nodes at once: the first wave
    pods_waiting: int           # the rest, waiting for a slot: the later waves
    nodes_pulling: int
    pull_rate: float | None     # bytes/s per node during the fan-out (cold)
    pull_s: float | None        # the fan-out's pull (cold)
    typical_s: float            # a typical pod of the first wave: pull + median rest (cold), or the warm median
    last_s: float               # the last of all the pods: the total
    limited_by: str             # "node bandwidth", "registry bandwidth", or "" (warm)
    first_last_s: float = 0.0   # the last pods of the first wave: pull + p90 rest (cold), or the warm p90
    waves: int = 1              # ceil(pods / slots)
    run_s: float | None = None  # how long a pod holds its slot, creation to end (less the pull), when waves > 1
    run_from: str = ""          # "measured" or "given" (Question.run_seconds); "" with one wave
    wave_typical_s: float | None = None  # a later wave's pods, from their creation: median and p90 start
    wave_last_s: float | None = None


def _phase_ms(record: Mapping[str, Any], names: Sequence[str]) -> float:
    """The time of the run's phases among `names` (a phase merged with a neighbour counts if all it covers is)."""
    phases = (record.get("timeline") or {}).get("phases") or {}
    return sum(float(entry.get("ms") or 0.0) for name, entry in phases.items()
               if set(entry.get("covers") or (name,)) <= set(names))


def _total_ms(record: Mapping[str, Any], endpoint: str) -> float | None:
    if endpoint == "first step":
        return record.get("timeToFirstStepMs")
    return _phase_ms(record, START_PHASES) or None


def run_seconds(record: Mapping[str, Any]) -> float | None:
    """How long a run held its slot, creation (`createdMs`) to end (`finishedMs`, when the operator saw it end),
    less its pull when it pulled (the model adds the pull it predicts); None without both times."""
    created, finished = record.get("createdMs"), record.get("finishedMs")
    if not isinstance(created, (int, float)) or not isinstance(finished, (int, float)) or finished < created:
        return None
    pulled = (record.get("timeline") or {}).get("cacheObserved") == "miss"
    return max(finished - created - (_phase_ms(record, PULL_PHASES) if pulled else 0.0), 0.0) / 1000.0


def profile(image: str, records: Iterable[Mapping[str, Any]]) -> ImageProfile:
    """The profile of `image` from a Benchmark's run records (only its runs that succeeded count).

    Cold means the run found the image absent on its node (the observed cache state, not the requested one).
    If some runs reached a first step and others did not (simulated nodes run no workload), all are measured to
    the end they share, container start.
    """
    runs = [r for r in records if r.get("image") == image and r.get("result") == "Succeeded"]
    if not runs:
        raise CapacityError(f"no run of image {image!r} succeeded: nothing to learn its start from")
    cold = [r for r in runs if (r.get("timeline") or {}).get("cacheObserved") == "miss"]
    warm = [r for r in runs if (r.get("timeline") or {}).get("cacheObserved") == "hit"]
    endpoint = "first step" if all(r.get("timeToFirstStepMs") is not None for r in runs) else "container start"

    fields: dict[str, Any] = {}
    pulls = [(float(r["pull"]["imageSizeBytes"]), float(r["pull"]["seconds"])) for r in cold
             if (r.get("pull") or {}).get("imageSizeBytes") and (r.get("pull") or {}).get("seconds")]
    if pulls:
        fields["pull_bytes"] = quantile([b for b, _ in pulls], 0.5)
        fields["node_bandwidth"] = quantile([b / s for b, s in pulls], 0.5)
    rests = [(total - _phase_ms(r, PULL_PHASES)) / 1000.0 for r in cold
             if (total := _total_ms(r, endpoint)) is not None]
    if rests:
        fields["rest_p50_s"], fields["rest_p90_s"] = quantile(rests, 0.5), quantile(rests, 0.9)
    warms = [total / 1000.0 for r in warm if (total := _total_ms(r, endpoint)) is not None]
    if warms:
        fields["warm_p50_s"], fields["warm_p90_s"] = quantile(warms, 0.5), quantile(warms, 0.9)
    durations = [d for r in runs if (d := run_seconds(r)) is not None]
    if durations:
        fields["run_p50_s"] = quantile(durations, 0.5)
    return ImageProfile(image=image, endpoint=endpoint, cold_runs=len(cold), warm_runs=len(warm), **fields)


def estimate(p: ImageProfile, q: Question, cache: str = "cold") -> Estimate:
    """How long until `q.pods` pods of the profiled image have started (see the module's model)."""
    started = min(q.pods, q.slots)
    nodes_pulling = math.ceil(started / q.pods_per_node)
    waves = math.ceil(q.pods / q.slots)
    if cache == "warm":
        if p.warm_p50_s is None:
            raise CapacityError(f"image {p.image!r} has no warm run that succeeded; run the benchmark with "
                                "cache: warm or both")
        first = dict(pull_rate=None, pull_s=None, typical_s=p.warm_p50_s, first_last_s=p.warm_p90_s,
                     limited_by="")
        later = (p.warm_p50_s, p.warm_p90_s)
        offset = 0.0
    elif cache == "cold":
        if p.node_bandwidth is None or p.pull_bytes is None or p.rest_p50_s is None:
            raise CapacityError(f"image {p.image!r} has no cold run with a pull the kubelet reported (size and "
                                "duration); run the benchmark with cache: cold or both")
        rate, limited_by = p.node_bandwidth, "node bandwidth"
        if q.registry_bandwidth is not None and q.registry_bandwidth / nodes_pulling < rate:
            rate, limited_by = q.registry_bandwidth / nodes_pulling, "registry bandwidth"
        pull_s = p.pull_bytes / rate
        rest_p90 = p.rest_p90_s if p.rest_p90_s is not None else p.rest_p50_s
        first = dict(pull_rate=rate, pull_s=pull_s, typical_s=pull_s + p.rest_p50_s, first_last_s=pull_s + rest_p90,
                     limited_by=limited_by)
        later = (p.rest_p50_s, rest_p90)  # the image is on the node now: a cold start without its pull
        offset = pull_s                   # the first wave's pods hold their slots for their pull on top
    else:
        raise CapacityError(f"cache must be cold or warm, not {cache!r}")
    base = Estimate(p.image, cache, p.endpoint, started, q.pods - started, nodes_pulling, last_s=first["first_last_s"],
                    **first)
    if waves == 1:
        return base
    run_s, run_from = (q.run_seconds, "given") if q.run_seconds is not None else (p.run_p50_s, "measured")
    if run_s is None:
        raise CapacityError(f"{q.pods} pods outnumber the {q.slots} slots ({q.nodes} node(s) x {q.pods_per_node}), "
                            f"and the runs of {p.image!r} have no creation and end times to learn how long a pod "
                            "holds its slot: give the run duration (--run-seconds)")
    if run_from == "given" and run_s < later[0]:
        raise CapacityError(f"a run of {run_s:g} s ends before its pod starts (a typical start of {p.image!r} takes "
                            f"{later[0]:.1f} s): the run duration counts from the pod's creation to its end")
    last_s = offset + (waves - 1) * run_s + later[1]
    return dataclasses.replace(base, last_s=last_s, waves=waves, run_s=run_s, run_from=run_from,
                               wave_typical_s=later[0], wave_last_s=later[1])


def wave_pods(e: Estimate) -> list[int]:
    """The pods of each wave: full waves of `pods_started`, the last one what is left."""
    total = e.pods_started + e.pods_waiting
    return [min(e.pods_started, total - w * e.pods_started) for w in range(e.waves)]


def curve(e: Estimate) -> list[tuple[float, float]]:
    """Pods started over time (seconds, pods), the model's picture of one estimate: in each wave none start
    before the wave's pull ends (cold, first wave) or before the wave is created, half have started by the
    typical start and all by the last pods' start (p90), linearly in between. A wave is created when the one
    before it ends (the run duration after its creation, the first cold wave's pull on top)."""
    points: list[tuple[float, float]] = [(0.0, 0.0)]
    done = 0.0
    pull = e.pull_s or 0.0
    for w, n in enumerate(wave_pods(e)):
        if w == 0:
            begin, typical, last = pull, e.typical_s, e.first_last_s
        else:
            created = pull + w * (e.run_s or 0.0)
            begin, typical, last = created, created + (e.wave_typical_s or 0.0), created + (e.wave_last_s or 0.0)
        typical = max(typical, begin)
        last = max(last, typical)
        points += [(begin, done), (typical, done + n / 2), (last, done + n)]
        done += n
    return points


@dataclasses.dataclass(frozen=True)
class Saving:
    image: str           # the faster image
    against: str         # the slower one
    cache: str
    seconds: float       # saved on the last pods' start
    fraction: float      # of the slower image's time


def savings(estimates: Sequence[Estimate]) -> list[Saving]:
    """For each cache state, what the fastest image saves against each slower one (last pods' start)."""
    out = []
    for cache in ("cold", "warm"):
        group = sorted((e for e in estimates if e.cache == cache), key=lambda e: e.last_s)
        for slower in group[1:]:
            saved = slower.last_s - group[0].last_s
            out.append(Saving(group[0].image, slower.image, cache, saved,
                              saved / slower.last_s if slower.last_s > 0 else 0.0))
    return out


_UNITS = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12, "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}


def parse_bandwidth(text: str) -> float:
    """Bytes per second from '10Gbit/s', '1.25GB/s', '800MiB/s', '125000000' (bytes/s)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(?:([kmgt]i?)?(b|bit|bps|byte)?(?:/s)?)\s*", text, re.IGNORECASE)
    if not match or (match.group(2) and not match.group(3)):
        raise CapacityError(f"{text!r} is not a bandwidth; write e.g. 10Gbit/s, 1.25GB/s or 800MiB/s")
    value = float(match.group(1)) * _UNITS[(match.group(2) or "").lower()]
    unit = match.group(3) or "B"
    bits = unit.lower() in ("bit", "bps") or unit == "b"
    if value <= 0:
        raise CapacityError(f"{text!r}: a bandwidth must be above 0")
    return value / 8 if bits else value


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def _rate(bps: float | None) -> str:
    return "-" if bps is None else f"{bps / 1e6:.1f} MB/s"


def answer(q: Question, estimates: Sequence[Estimate]) -> list[str]:
    """The estimates in sentences, one per estimate, then one per saving."""
    lines = []
    for e in estimates:
        if e.cache == "cold":
            how = (f"each of {e.nodes_pulling} node(s) pulls it once at {_rate(e.pull_rate)} ({e.limited_by}), "
                   f"{_duration(e.pull_s or 0.0)}")
        else:
            how = "already on every node"
        if e.waves == 1:
            lines.append(f"{e.pods_started} pods of {e.image}, {e.cache}: {how}; the last reach their {e.endpoint} "
                         f"in about {_duration(e.last_s)} (a typical pod {_duration(e.typical_s)}).")
            continue
        source = ("measured: the median of its runs, creation to end, less the pull" if e.run_from == "measured"
                  else "given: --run-seconds")
        lines.append(f"{e.pods_started + e.pods_waiting} pods of {e.image}, {e.cache}: {e.pods_started} start at once "
                     f"({q.nodes} node(s) x {q.pods_per_node}), {how}; the other {e.pods_waiting} start in "
                     f"{e.waves - 1} more wave(s) as earlier pods end, each pod holding its slot "
                     f"{_duration(e.run_s or 0.0)} ({source}); the last reach their {e.endpoint} in about "
                     f"{_duration(e.last_s)} (a typical pod of the first wave {_duration(e.typical_s)}).")
    for s in savings(estimates):
        lines.append(f"{s.image} instead of {s.against}, {s.cache}: saves about {_duration(s.seconds)} "
                     f"({s.fraction:.0%}).")
    return lines


def to_dict(q: Question, profiles: Sequence[ImageProfile], estimates: Sequence[Estimate]) -> dict[str, Any]:
    return {"question": dataclasses.asdict(q), "profiles": [dataclasses.asdict(p) for p in profiles],
            "estimates": [dataclasses.asdict(e) for e in estimates],
            "savings": [dataclasses.asdict(s) for s in savings(estimates)], "answer": answer(q, estimates)}


def pods_per_node(allocatable_gpus: list[int], gpus_per_pod: int) -> int:
    """Pods each of the benchmark's nodes fits at once: the smallest node decides (1 for CPU pods)."""
    if gpus_per_pod <= 0 or not allocatable_gpus:
        return 1
    return max(1, min(allocatable_gpus) // gpus_per_pod)
