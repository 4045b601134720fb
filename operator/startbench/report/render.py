"""The report's entry points: the options, each named figure, one figure as PNG or SVG bytes, and the capacity
curve from core/capacity.py's model. `html.py` puts the whole page together."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from startbench.core import capacity as model
from startbench.report import data, figures

PLOTS = ("waterfall", "phases", "pulls", "sizes", "failures", "capacity")
FORMATS = ("html", "png", "svg")


class ReportError(ValueError):
    """A report that cannot be made as asked; the message says why and what to change."""


@dataclasses.dataclass(frozen=True)
class Options:
    """The capacity curve's question (the rest of the report has no options)."""

    pods: int = 200
    nodes: int | None = None                  # default: the nodes the benchmark ran on
    pods_per_node: int = 1
    registry_bandwidth: float | None = None   # bytes/s
    run_seconds: float | None = None


@dataclasses.dataclass(frozen=True)
class Capacity:
    question: model.Question | None
    estimates: list[model.Estimate]
    curves: list[tuple[str, str, list[tuple[float, float]]]]   # (image, cache, [(seconds, pods)])
    sentences: list[str]                                       # the model's answer
    notes: list[str]                                           # what could not be estimated, and why

    @property
    def title(self) -> str:
        q = self.question
        if q is None:
            return "Pods started over time"
        return (f"Pods started over time: {q.pods} pods on {q.nodes} node(s), {q.pods_per_node} per node "
                f"(capacity model)")


def capacity(benchmark: Mapping[str, Any], records: Sequence[Mapping[str, Any]], options: Options) -> Capacity:
    """The model's estimate for `options.pods` pods of each image, cold and warm, as curves and sentences."""
    nodes = options.nodes if options.nodes is not None else len((benchmark.get("status") or {}).get("nodes") or [])
    if nodes < 1:
        return Capacity(None, [], [], [], ["the benchmark has not run on any node yet (give --nodes)"])
    try:
        question = model.Question(options.pods, nodes, options.pods_per_node, options.registry_bandwidth,
                                  options.run_seconds)
    except model.CapacityError as err:
        return Capacity(None, [], [], [], [str(err)])
    estimates, notes = [], []
    for image in data.image_order(benchmark, records):
        try:
            profile = model.profile(image, records)
        except model.CapacityError as err:
            notes.append(str(err))
            continue
        for cache in ("cold", "warm"):
            try:
                estimates.append(model.estimate(profile, question, cache))
            except model.CapacityError as err:
                notes.append(f"{image}, {cache}: {err}")
    curves = [(e.image, e.cache, model.curve(e)) for e in estimates]
    return Capacity(question, estimates, curves, model.answer(question, estimates) if estimates else [], notes)


def figure(name: str, benchmark: Mapping[str, Any], records: Sequence[Mapping[str, Any]],
           options: Options = Options(), capacity_result: Capacity | None = None):
    """The named figure (PLOTS), or None when the records hold nothing it could show."""
    images = data.image_order(benchmark, records)
    if name == "waterfall":
        return figures.waterfall(data.runs(records))
    if name == "phases":
        return figures.phases(data.phase_stacks(records, images))
    if name == "pulls":
        return figures.pulls(data.pulls(records), images)
    if name == "sizes":
        return figures.sizes(data.images(benchmark, records), images)
    if name == "failures":
        return figures.failures(data.failures(records))
    if name == "capacity":
        result = capacity_result or capacity(benchmark, records, options)
        return figures.capacity(result.curves, images, result.title)
    raise ReportError(f"no plot {name!r}; choose one of {', '.join(PLOTS)}")


def render_plot(name: str, fmt: str, benchmark: Mapping[str, Any], records: Sequence[Mapping[str, Any]],
                options: Options = Options()) -> bytes:
    """One figure as PNG or SVG bytes, to paste into a ticket."""
    if fmt not in ("png", "svg"):
        raise ReportError(f"one plot is written as png or svg, not {fmt!r}")
    fig = figure(name, benchmark, records, options)
    if fig is None:
        raise ReportError(f"nothing to plot for {name!r}: {EMPTY[name]}")
    return figures.png(fig) if fmt == "png" else figures.svg(fig, name).encode()


EMPTY = {
    "waterfall": "no run has ended yet",
    "phases": "no run has measured a phase yet",
    "pulls": "no run downloaded its image (observed a cache miss) with a pull time and size the kubelet reported",
    "sizes": "neither the status nor the runs give an image size",
    "failures": "no run failed",
    "capacity": "the capacity model has no run to learn from",
}
