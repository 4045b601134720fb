"""The report's figures, drawn with matplotlib's object-oriented API (a `Figure` per plot, no pyplot and so no
global state or GUI backend: PNGs come from the Agg canvas, SVGs from the SVG one). Each function takes what
`data.py` extracted and returns a Figure, or None when there is nothing to draw. Colours and sizes are style.py's.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence

import matplotlib
from matplotlib.figure import Figure
from matplotlib.collections import PatchCollection
from matplotlib.patches import Patch, Rectangle

from startbench.core.contracts import PHASES
from startbench.core.stats import quantile
from startbench.report import data, style

RC = {"font.size": style.FONT_SIZE, "axes.titlesize": style.TITLE_SIZE, "axes.labelsize": style.FONT_SIZE,
      "legend.fontsize": style.FONT_SIZE - 1, "svg.fonttype": "none", "svg.hashsalt": "startbench",
      "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True, "axes.grid.axis": "x",
      "grid.color": "#dddddd", "axes.axisbelow": True}
MAX_WATERFALL_RUNS = 300   # more runs than this: the first ones in run order (the page says how many)


def _figure(height_in: float) -> Figure:
    return Figure(figsize=(style.WIDTH_IN, max(height_in, 2.0)), layout="constrained")


def _xlim(ax, largest: float, room: float) -> None:
    """x from 0 to the largest value plus `room` of it (space for the labels at the bars' ends)."""
    ax.set_xlim(0, (largest if largest > 0 else 1.0) * (1 + room))


def _phase_legend(fig: Figure, merged: bool = False, failed: bool = False) -> None:
    handles = [Patch(facecolor=style.PHASE_COLOURS[p], edgecolor=style.EDGE_COLOUR, linewidth=0.5,
                     label=style.PHASE_LABELS[p]) for p in PHASES]
    if merged:
        handles.append(Patch(facecolor="white", edgecolor=style.EDGE_COLOUR, hatch=style.MERGED_HATCH,
                             label="merged (boundary not seen)"))
    if failed:
        handles.append(Patch(facecolor="white", edgecolor=style.FAILED_COLOUR, linestyle="--",
                             label="failed run (faded)"))
    fig.legend(handles=handles, loc="outside upper center", ncol=min(len(handles), 5), frameon=False)


def waterfall(runs: Sequence[data.Run]) -> Figure | None:
    """One horizontal bar per run, creation to its last boundary, split into its phases; in run order."""
    runs = list(runs)[:MAX_WATERFALL_RUNS]
    if not runs:
        return None
    with matplotlib.rc_context(RC):
        fig = _figure(1.6 + 0.26 * len(runs))
        ax = fig.add_subplot()
        # One collection of rectangles per (phase, merged, failed): the same bars as a barh per span, drawn and
        # written as SVG many times faster for hundreds of runs.
        groups: dict[tuple[str, bool, bool], list[Rectangle]] = {}
        for y, run in enumerate(runs):
            for seg in run.segments:
                groups.setdefault((seg.phase, seg.merged, run.failed), []).append(
                    Rectangle((seg.start_s, y - 0.36), seg.seconds, 0.72))
        for (phase, merged, failed), rects in groups.items():
            ax.add_collection(PatchCollection(rects, facecolor=style.PHASE_COLOURS[phase], edgecolor=style.EDGE_COLOUR,
                                              linewidth=0.4, hatch=style.MERGED_HATCH if merged else None,
                                              alpha=0.45 if failed else 1.0))
        for y, run in enumerate(runs):
            if run.failed:
                ax.text(run.total_s, y, f"  FAILED: {run.reason}", va="center", ha="left", color=style.FAILED_COLOUR,
                        fontweight="bold", fontsize=style.FONT_SIZE - 1)
        ax.set_yticks(range(len(runs)), [f"{r.name}  {r.asked}/{r.observed}" for r in runs],
                      fontsize=style.FONT_SIZE - 1 if len(runs) < 60 else 6)
        ax.set_ylim(len(runs) - 0.5, -0.5)  # the first run at the top
        _xlim(ax, max(r.total_s for r in runs), 0.25 if any(r.failed for r in runs) else 0.04)
        ax.set_xlabel("seconds since the run's pod was created")
        ax.set_ylabel("run (cache asked/observed)")
        ax.set_title("Each run from creation to its first step (or the last boundary it reached), in run order")
        _phase_legend(fig, merged=any(merged for _, merged, _ in groups), failed=any(r.failed for r in runs))
    return fig


def phases(stacks: Sequence[data.PhaseStack]) -> Figure | None:
    """Per image x observed cache state: the median of each phase, stacked; the total's median and p90."""
    stacks = list(stacks)
    if not stacks:
        return None
    with matplotlib.rc_context(RC):
        fig = _figure(1.8 + 0.55 * len(stacks))
        ax = fig.add_subplot()
        for y, s in enumerate(stacks):
            left = 0.0
            for p in PHASES:
                if p in s.p50:
                    ax.barh(y, s.p50[p], left=left, height=0.6, color=style.PHASE_COLOURS[p],
                            edgecolor=style.EDGE_COLOUR, linewidth=0.4)
                    left += s.p50[p]
            if s.total_p50 is not None and s.total_p90 is not None:
                ax.errorbar([s.total_p50], [y], xerr=[[0.0], [s.total_p90 - s.total_p50]], fmt="|", color="black",
                            markersize=16, capsize=6, elinewidth=1.5)
        ax.set_yticks(range(len(stacks)), [f"{s.image}, {s.cache} ({s.runs} run{'s' if s.runs != 1 else ''})"
                                           for s in stacks])
        ax.set_ylim(len(stacks) - 0.5, -0.5)
        _xlim(ax, max(max(sum(s.p50.values()), s.total_p90 or 0.0) for s in stacks), 0.05)
        ax.set_xlabel("seconds (bars: median of each phase, stacked; black tick and whisker: median and p90 of "
                      "the whole start)")
        ax.set_title("Phases per image and observed cache state")
        _phase_legend(fig)
    return fig


def _strip(ax, groups: dict[str, list[tuple[float, str]]], colours: dict[str, str]) -> None:
    """Points per group (value, colour key) with a little fixed vertical spread, and the group's median."""
    names = list(groups)
    points: dict[str, tuple[list[float], list[float]]] = {}
    for y, name in enumerate(names):
        for i, (value, key) in enumerate(groups[name]):
            xs, ys = points.setdefault(key, ([], []))
            xs.append(value)
            ys.append(y + ((i % 7) - 3) * 0.06)
    for key, (xs, ys) in points.items():
        ax.scatter(xs, ys, s=25, color=colours[key], alpha=0.85)
    for y, name in enumerate(names):
        values = groups[name]
        median = quantile([v for v, _ in values], 0.5)
        ax.plot(median, y, "|", color="black", markersize=22, markeredgewidth=2.5)
    ax.set_yticks(range(len(names)), names)
    ax.set_ylim(len(names) - 0.5, -0.5)
    _xlim(ax, max(v for values in groups.values() for v, _ in values), 0.08)


def pulls(items: Sequence[data.Pull], images: Sequence[str]) -> Figure | None:
    """Download throughput of every real pull (cache miss), per node and per image."""
    items = list(items)
    if not items:
        return None
    colours = {name: style.image_colour(list(images), name) for name in {p.image for p in items} | set(images)}
    by_node: dict[str, list[tuple[float, str]]] = {}
    by_image: dict[str, list[tuple[float, str]]] = {}
    for p in sorted(items, key=lambda p: (p.node, p.image)):
        by_node.setdefault(p.node, []).append((p.mb_per_s, p.image))
    for name in [i for i in images if any(p.image == i for p in items)] + \
            sorted({p.image for p in items} - set(images)):
        by_image[name] = [(p.mb_per_s, p.image) for p in items if p.image == name]
    with matplotlib.rc_context(RC):
        fig = _figure(1.8 + 0.5 * max(len(by_node), len(by_image)))
        left, right = fig.subplots(1, 2)
        _strip(left, by_node, colours)
        left.set_title("per node")
        left.set_xlabel("MB/s (image size / kubelet pull time)")
        _strip(right, by_image, colours)
        right.set_title("per image")
        right.set_xlabel("MB/s (image size / kubelet pull time)")
        fig.suptitle("Pull throughput of the downloads (runs that observed a cache miss); black tick: median",
                     fontsize=style.TITLE_SIZE)
        fig.legend(handles=[Patch(color=colours[name], label=name) for name in by_image],
                   loc="outside lower center", ncol=min(len(by_image), 6), frameon=False)
    return fig


def sizes(infos: Sequence[data.ImageInfo], images: Sequence[str]) -> Figure | None:
    """Each image's size: compressed (registry), unpacked, and what the kubelet reported pulling."""
    kinds = (("compressed_bytes", "compressed (registry)", None), ("uncompressed_bytes", "unpacked", ".."),
             ("pulled_bytes", "pulled (kubelet, median)", "xx"))
    rows = [i for i in infos if any(getattr(i, k) for k, _, _ in kinds)]
    if not rows:
        return None
    with matplotlib.rc_context(RC):
        fig = _figure(1.8 + 0.75 * len(rows))
        ax = fig.add_subplot()
        height = 0.8 / len(kinds)
        for y, info in enumerate(rows):
            colour = style.image_colour(list(images), info.name)
            for k, (attr, _, hatch) in enumerate(kinds):
                value = getattr(info, attr)
                if not value:
                    continue
                pos = y - 0.4 + height * (k + 0.5)
                ax.barh(pos, value / 1e6, height=height * 0.9, color=colour, alpha=1.0 if hatch is None else 0.55,
                        hatch=hatch, edgecolor=style.EDGE_COLOUR, linewidth=0.4)
                ax.text(value / 1e6, pos, f" {value / 1e6:,.0f} MB", va="center", fontsize=style.FONT_SIZE - 1)
        labels = [f"{i.name}" + (f" ({i.layers} layers)" if i.layers is not None else "") for i in rows]
        ax.set_yticks(range(len(rows)), labels)
        ax.set_ylim(len(rows) - 0.5, -0.5)
        _xlim(ax, max(getattr(i, k) or 0 for i in rows for k, _, _ in kinds) / 1e6, 0.15)
        ax.set_xlabel("MB (10^6 bytes)")
        ax.set_title("Image sizes")
        fig.legend(handles=[Patch(facecolor="#bbbbbb", hatch=h, edgecolor=style.EDGE_COLOUR, label=label)
                            for _, label, h in kinds], loc="outside upper center", ncol=3, frameon=False)
    return fig


def failures(items: Sequence[data.Failure]) -> Figure | None:
    """Failed runs per reason."""
    items = list(items)
    if not items:
        return None
    with matplotlib.rc_context(RC):
        fig = _figure(1.4 + 0.45 * len(items))
        ax = fig.add_subplot()
        ax.barh(range(len(items)), [f.count for f in items], height=0.6, color=style.FAILED_COLOUR)
        for y, f in enumerate(items):
            ax.text(f.count, y, f" {f.count}", va="center")
        ax.set_yticks(range(len(items)), [f.reason for f in items])
        ax.set_ylim(len(items) - 0.5, -0.5)
        _xlim(ax, max(f.count for f in items), 0.08)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel("failed runs")
        ax.set_title("Failures by reason")
    return fig


def capacity(curves: Sequence[tuple[str, str, list[tuple[float, float]]]], images: Sequence[str],
             title: str) -> Figure | None:
    """Pods started over time, from the capacity model: one line per image and cache state."""
    curves = [c for c in curves if c[2]]
    if not curves:
        return None
    with matplotlib.rc_context(RC):
        fig = _figure(4.6)
        ax = fig.add_subplot()
        ax.grid(True, axis="both")
        for image, cache, points in curves:
            xs, ys = zip(*points)
            ax.plot(xs, ys, color=style.image_colour(list(images), image), linewidth=2.2,
                    linestyle="-" if cache == "cold" else "--", label=f"{image}, {cache}")
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
        ax.set_xlabel("seconds since the pods were created")
        ax.set_ylabel("pods started")
        ax.set_title(title)
        ax.legend(loc="lower right", frameon=False)
    return fig


# --- output -----------------------------------------------------------------------------------------------------

_ID = re.compile(r'\bid="([^"]+)"')
_REF = re.compile(r'(href="#|url\(#)([^")]+)')


def svg(fig: Figure, prefix: str) -> str:
    """The figure as an <svg> element to put inline in HTML: no XML prolog or metadata, text kept as text, and
    every id prefixed so that several figures on one page never share one."""
    buf = io.StringIO()
    with matplotlib.rc_context(RC):
        fig.savefig(buf, format="svg", metadata={"Creator": None, "Date": None, "Format": None, "Type": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.DOTALL)
    text = _ID.sub(lambda m: f'id="{prefix}-{m.group(1)}"', text)
    text = _REF.sub(lambda m: f"{m.group(1)}{prefix}-{m.group(2)}", text)
    return text


def png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    with matplotlib.rc_context(RC):
        fig.savefig(buf, format="png", dpi=style.DPI)
    return buf.getvalue()
