"""What the report shows, taken from a Benchmark and its run records (docs/benchmark.md): no plotting here, so
each number can be tested on its own.

Cache states: the one asked for is the record's `cacheAsked` (older records: `cache`); the one observed is the
timeline's `cacheObserved` (hit, miss, revalidated or unknown). Only `miss` pulls downloaded the image, so only
they measure pull throughput.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from startbench.core.contracts import PHASES
from startbench.core.stats import quantile

BOUNDARY_LABELS = {"created": "creation", "scheduled": "scheduling", "pull_started": "pull start",
                   "pulled": "pull end", "container_started": "container start",
                   "framework_imported": "framework import", "device_ready": "device ready",
                   "first_step": "first step"}


def cache_asked(record: Mapping[str, Any]) -> str:
    return str(record.get("cacheAsked") or record.get("cache") or "?")


def cache_observed(record: Mapping[str, Any]) -> str:
    return str((record.get("timeline") or {}).get("cacheObserved") or "unknown")


def image_order(benchmark: Mapping[str, Any], records: Iterable[Mapping[str, Any]]) -> list[str]:
    """The images in spec order, then any the records name that the spec does not."""
    names = [str(e.get("name")) for e in (benchmark.get("spec") or {}).get("images") or [] if e.get("name")]
    for r in records:
        if r.get("image") and r["image"] not in names:
            names.append(str(r["image"]))
    return names


# --- the waterfall: one bar per run ----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Segment:
    phase: str           # the phase the span starts with (its colour)
    start_s: float       # from the run's creation
    seconds: float
    covers: tuple[str, ...]  # the phases the span covers: more than one when a boundary was not observed

    @property
    def merged(self) -> bool:
        return len(self.covers) > 1


@dataclasses.dataclass(frozen=True)
class Run:
    name: str
    image: str
    node: str
    order: int
    asked: str           # cold or warm
    observed: str        # hit, miss, revalidated, unknown
    result: str          # Succeeded or Failed
    reason: str
    message: str
    segments: tuple[Segment, ...]
    end: str             # the last boundary reached
    total_s: float       # creation to that boundary

    @property
    def failed(self) -> bool:
        return self.result != "Succeeded"


def runs(records: Iterable[Mapping[str, Any]]) -> list[Run]:
    """Every record as a waterfall row, in run order: its phases laid end to end from creation."""
    out = []
    for r in records:
        timeline = r.get("timeline") or {}
        phases = timeline.get("phases") or {}
        at, segments = 0.0, []
        for name in PHASES:
            entry = phases.get(name)
            if not entry or entry.get("ms") is None:
                continue
            seconds = max(float(entry["ms"]), 0.0) / 1000.0
            segments.append(Segment(name, at, seconds, tuple(entry.get("covers") or (name,))))
            at += seconds
        out.append(Run(name=str(r.get("name") or "?"), image=str(r.get("image") or "?"), node=str(r.get("node") or "?"),
                       order=int(r.get("order") or 0), asked=cache_asked(r), observed=cache_observed(r),
                       result=str(r.get("result") or "?"), reason=str(r.get("reason") or ""),
                       message=str(r.get("message") or ""), segments=tuple(segments),
                       end=str(timeline.get("end") or ("created" if not segments else "?")), total_s=at))
    return sorted(out, key=lambda run: (run.order, run.name))


# --- phases per image and observed cache state -----------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class PhaseStack:
    image: str
    cache: str                        # observed
    runs: int                         # runs that measured at least one phase
    p50: dict[str, float]             # seconds, per phase measured on its own by at least one run
    p90: dict[str, float]
    counts: dict[str, int]            # runs that measured each phase on its own
    total_p50: float | None           # creation to `endpoint`, over the runs that reached it
    total_p90: float | None
    endpoint: str                     # first step, or the boundary most runs of the group ended at


def phase_stacks(records: Sequence[Mapping[str, Any]], images: Sequence[str]) -> list[PhaseStack]:
    """Per image x observed cache state: each phase's median and p90 (only spans that are that phase alone, as
    in status.summaries), and the median and p90 of the total to the endpoint the group's runs share."""
    groups: dict[tuple[str, str], list[Run]] = {}
    for run in runs(records):
        if run.segments:
            groups.setdefault((run.image, run.observed), []).append(run)
    rank = {name: i for i, name in enumerate(images)}
    out = []
    for (image, cache) in sorted(groups, key=lambda k: (rank.get(k[0], len(rank)), k[0], k[1])):
        group = groups[(image, cache)]
        values: dict[str, list[float]] = {}
        for run in group:
            for seg in run.segments:
                if not seg.merged:
                    values.setdefault(seg.phase, []).append(seg.seconds)
        endpoint = "first_step" if any(r.end == "first_step" for r in group) else \
            Counter(r.end for r in group).most_common(1)[0][0]
        totals = [r.total_s for r in group if r.end == endpoint]
        out.append(PhaseStack(
            image=image, cache=cache, runs=len(group),
            p50={p: quantile(v, 0.5) for p, v in values.items()}, p90={p: quantile(v, 0.9) for p, v in values.items()},
            counts={p: len(v) for p, v in values.items()},
            total_p50=quantile(totals, 0.5) if totals else None, total_p90=quantile(totals, 0.9) if totals else None,
            endpoint=BOUNDARY_LABELS.get(endpoint, endpoint)))
    return out


# --- pulls and images -----------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Pull:
    run: str
    image: str
    node: str
    size_bytes: float
    seconds: float

    @property
    def mb_per_s(self) -> float:
        return self.size_bytes / self.seconds / 1e6


def pulls(records: Iterable[Mapping[str, Any]]) -> list[Pull]:
    """The real downloads: runs that observed a miss, with the kubelet's pull duration and image size."""
    out = []
    for r in records:
        pull = r.get("pull") or {}
        size, seconds = pull.get("imageSizeBytes"), pull.get("seconds")
        if cache_observed(r) != "miss" or not size or not seconds or float(seconds) <= 0:
            continue
        out.append(Pull(str(r.get("name") or "?"), str(r.get("image") or "?"), str(r.get("node") or "?"),
                        float(size), float(seconds)))
    return out


@dataclasses.dataclass(frozen=True)
class ImageInfo:
    name: str
    reference: str | None
    digest: str | None
    compressed_bytes: int | None
    uncompressed_bytes: int | None
    layers: int | None
    media_types: dict[str, int]      # layer media type -> layers of it, when the status has them
    pulled_bytes: float | None       # median size the kubelet reported for the image's downloads
    message: str | None


def _media_types(entry: Mapping[str, Any]) -> dict[str, int]:
    value = entry.get("layerMediaTypes") or entry.get("mediaTypes")
    if isinstance(value, Mapping):
        return {str(k): int(v) for k, v in value.items() if isinstance(v, (int, float))}
    if isinstance(value, list):
        return dict(Counter(str(v) for v in value))
    layers = entry.get("layers")
    if isinstance(layers, list):
        return dict(Counter(str(l.get("mediaType")) for l in layers if isinstance(l, Mapping) and l.get("mediaType")))
    return {}


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def images(benchmark: Mapping[str, Any], records: Sequence[Mapping[str, Any]]) -> list[ImageInfo]:
    """Each image of the benchmark with what status.images knows of it and the size its downloads reported."""
    described = (benchmark.get("status") or {}).get("images") or {}
    spec = {str(e.get("name")): e for e in (benchmark.get("spec") or {}).get("images") or []}
    sizes: dict[str, list[float]] = {}
    for p in pulls(records):
        sizes.setdefault(p.image, []).append(p.size_bytes)
    out = []
    for name in image_order(benchmark, records):
        entry = described.get(name) or {}
        layers = entry.get("layers")
        out.append(ImageInfo(
            name=name, reference=entry.get("reference") or (spec.get(name) or {}).get("image"),
            digest=entry.get("digest"), compressed_bytes=_int(entry.get("compressedBytes")),
            uncompressed_bytes=_int(entry.get("uncompressedBytes")),
            layers=len(layers) if isinstance(layers, list) else _int(layers), media_types=_media_types(entry),
            pulled_bytes=quantile(sizes[name], 0.5) if name in sizes else None, message=entry.get("message")))
    return out


# --- failures ---------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Failure:
    reason: str
    count: int
    runs: tuple[str, ...]    # the first few, in run order
    message: str             # the first run's message


def failures(records: Iterable[Mapping[str, Any]]) -> list[Failure]:
    """Failed runs by reason, the most frequent first."""
    by: dict[str, list[Run]] = {}
    for run in runs(records):
        if run.failed:
            by.setdefault(run.reason or "Unknown", []).append(run)
    return [Failure(reason, len(group), tuple(r.name for r in group[:5]), group[0].message)
            for reason, group in sorted(by.items(), key=lambda kv: (-len(kv[1]), kv[0]))]


# --- nodes ------------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class NodeInfo:
    name: str
    runs: int
    failed: int
    devices: tuple[str, ...]     # what the in-pod reports saw: "kind name"


def nodes(benchmark: Mapping[str, Any], records: Iterable[Mapping[str, Any]]) -> list[NodeInfo]:
    """The benchmark's nodes (status.nodes, then any other the records name) with their runs and devices."""
    names = [str(n) for n in (benchmark.get("status") or {}).get("nodes") or []]
    count: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    devices: dict[str, set[str]] = {}
    for r in records:
        node = str(r.get("node") or "?")
        if node not in names:
            names.append(node)
        count[node] += 1
        failed[node] += r.get("result") != "Succeeded"
        device = (r.get("report") or {}).get("device") or {}
        text = " ".join(str(device[k]) for k in ("kind", "name") if device.get(k))
        if text:
            devices.setdefault(node, set()).add(text)
    return [NodeInfo(n, count[n], failed[n], tuple(sorted(devices.get(n, ())))) for n in names]
