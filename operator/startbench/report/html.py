"""The report page: one self-contained HTML file (figures as inline SVG, the style inline, no script, no link
outside the page), readable on its own: what was asked (the spec), what came out (conditions, thresholds, every
run), where the time went, and what it means at scale (the capacity curve)."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from startbench import __version__
from startbench.core.contracts import PHASES
from startbench.core.stats import quantile
from startbench.report import data, figures, render, style

CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, "DejaVu Sans", Arial, sans-serif; margin: 24px auto;
       max-width: 1320px; color: #1a1a1a; line-height: 1.45; padding: 0 16px; }
h1 { font-size: 26px; margin-bottom: 4px; } h2 { font-size: 20px; margin-top: 36px; border-bottom: 1px solid #ccc; }
.sub { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 14px; }
th, td { border: 1px solid #d0d0d0; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f2f2f2; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.ok { color: #0a6b2c; font-weight: bold; } .bad { color: #b00020; font-weight: bold; }
.unknown { color: #666; font-weight: bold; }
.figure svg { max-width: 100%; height: auto; } .caption { color: #444; font-size: 14px; max-width: 1100px; }
.empty { color: #666; font-style: italic; } pre { background: #f6f6f6; padding: 10px; overflow-x: auto; }
nav a { margin-right: 14px; } .msg { max-width: 640px; overflow-wrap: anywhere; }
"""


def _e(value: Any) -> str:
    return html.escape("-" if value is None else str(value))


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value / 1e6:,.1f}"


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[int] = ()) -> str:
    """An HTML table; cells are already escaped HTML."""
    out = ["<table><tr>", *(f"<th>{_e(h)}</th>" for h in head), "</tr>"]
    for row in rows:
        out.append("<tr>" + "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>"
                                    for i, c in enumerate(row)) + "</tr>")
    out.append("</table>")
    return "".join(out)


def _figure(fig, name: str, caption: str) -> str:
    if fig is None:
        return f'<p class="empty">Nothing to plot: {_e(render.EMPTY[name])}.</p>'
    return f'<div class="figure" id="figure-{name}">{figures.svg(fig, name)}</div><p class="caption">{caption}</p>'


def _verdict(met: Any) -> str:
    return {True: '<span class="ok">met</span>', False: '<span class="bad">NOT MET</span>'}.get(
        met, '<span class="unknown">no data</span>')


def _condition_status(status: Any) -> str:
    cls = {"True": "ok", "False": "bad"}.get(str(status), "unknown")
    return f'<span class="{cls}">{_e(status)}</span>'


def _summary(benchmark: Mapping[str, Any], runs: Sequence[data.Run]) -> str:
    status = benchmark.get("status") or {}
    ended, failed = len(runs), sum(r.failed for r in runs)
    planned = status.get("total")
    firsts = sorted(r.total_s for r in runs if r.end == "first_step")
    median = f"{quantile(firsts, 0.5):.3f} s" if firsts else "no run reached a first step"
    cond = {c.get("type"): c for c in status.get("conditions") or []}
    gate = cond.get("ThresholdsMet") or {}
    lines = [
        f"<b>Phase</b> {_e(status.get('phase') or 'not started')}",
        f"<b>Runs</b> {ended} ended of {_e(planned if planned is not None else '?')} planned, {failed} failed",
        f"<b>Median time to first step</b> {_e(median)}",
        f"<b>ThresholdsMet</b> {_condition_status(gate.get('status', 'Unknown'))} {_e(gate.get('reason') or '')}",
    ]
    if status.get("message"):
        lines.append(f"<b>Message</b> {_e(status['message'])}")
    span = [f"started {_e(status['startedAt'])}" if status.get("startedAt") else "",
            f"finished {_e(status['finishedAt'])}" if status.get("finishedAt") else ""]
    if any(span):
        lines.append(", ".join(s for s in span if s))
    return "<p>" + "<br>".join(lines) + "</p>"


def render_html(benchmark: Mapping[str, Any], records: Sequence[Mapping[str, Any]],
                options: render.Options = render.Options(), generated_at: str = "") -> str:
    """The whole report as one HTML document."""
    meta = benchmark.get("metadata") or {}
    status = benchmark.get("status") or {}
    title = f"{meta.get('namespace') or '-'}/{meta.get('name') or '-'}"
    images = data.image_order(benchmark, records)
    runs = data.runs(records)
    stacks = data.phase_stacks(records, images)
    pulls = data.pulls(records)
    infos = data.images(benchmark, records)
    fails = data.failures(records)
    cap = render.capacity(benchmark, records, options)
    parts: list[str] = []
    add = parts.append

    add(f"<h1>startbench report: {_e(title)}</h1>")
    add(f'<p class="sub">Benchmark {_e(title)}; startbench {_e(__version__)}'
        f"{', generated ' + _e(generated_at) if generated_at else ''}; {len(records)} run record(s).</p>")
    add('<nav><a href="#results">Results</a><a href="#waterfall">Runs</a><a href="#phases">Phases</a>'
        '<a href="#pulls">Pulls</a><a href="#images">Images</a><a href="#failures">Failures</a>'
        '<a href="#capacity">Capacity</a><a href="#nodes">Nodes</a><a href="#spec">Spec</a></nav>')

    add('<h2 id="results">Results</h2>')
    add(_summary(benchmark, runs))
    checks = status.get("thresholds") or []
    if checks:
        add("<h3>Thresholds</h3>")
        add(_table(("image", "check", "cache", "observed (s)", "limit (s)", "runs", "verdict"), [
            (_e(t.get("image")), _e(f"{t.get('quantile')} {t.get('metric')}"), _e(t.get("cache") or "any"),
             _num(t.get("observedSeconds")), _num(t.get("maxSeconds")), _e(t.get("count")), _verdict(t.get("met")))
            for t in checks], numeric=(3, 4, 5)))
    else:
        add('<p class="empty">The spec sets no thresholds.</p>')
    conditions = status.get("conditions") or []
    if conditions:
        add("<h3>Conditions</h3>")
        add(_table(("type", "status", "reason", "message", "last transition"), [
            (_e(c.get("type")), _condition_status(c.get("status")), _e(c.get("reason")),
             f'<span class="msg">{_e(c.get("message"))}</span>', _e(c.get("lastTransitionTime"))) for c in conditions]))

    add('<h2 id="waterfall">Every run</h2>')
    shown = min(len(runs), figures.MAX_WATERFALL_RUNS)
    more = f" The first {shown} of {len(runs)} runs are drawn." if len(runs) > shown else ""
    add(_figure(figures.waterfall(runs), "waterfall",
                "One bar per run, in run order, from its pod's creation to its first training step (or the last "
                "boundary it reached), split into the seven phases. Each label gives the cache state asked for "
                "(cold/warm) and the one observed (hit: already present; miss: downloaded; revalidated: a pull that "
                "transferred nothing; unknown). Hatched spans cover phases whose boundary was not seen; failed runs "
                f"are faded and name their reason.{more}"))

    add('<h2 id="phases">Where the time goes</h2>')
    add(_figure(figures.phases(stacks), "phases",
                "Per image and observed cache state: the median of each phase, stacked (a phase merged with its "
                "neighbour in a run is not counted), and the median and p90 of the whole start as a black tick "
                "and whisker. The stacked medians need not add up to the median of the whole."))
    if stacks:
        add(_table(("image", "cache", "runs", *(style.PHASE_LABELS[p] + " p50 / p90 (s)" for p in PHASES),
                    "whole start p50 / p90 (s)", "to"), [
            (_e(s.image), _e(s.cache), _e(s.runs),
             *(f"{_num(s.p50.get(p))} / {_num(s.p90.get(p))}" if p in s.p50 else "-" for p in PHASES),
             f"{_num(s.total_p50)} / {_num(s.total_p90)}", _e(s.endpoint)) for s in stacks],
            numeric=tuple(range(2, 3 + len(PHASES) + 1))))

    add('<h2 id="pulls">Pull throughput</h2>')
    add(_figure(figures.pulls(pulls, images), "pulls",
                "Only real downloads: runs that observed a cache miss and whose kubelet reported the pull's duration "
                "and the image size. Throughput is that size over that duration (MB = 10^6 bytes)."))

    add('<h2 id="images">Images</h2>')
    add(_figure(figures.sizes(infos, images), "sizes",
                "Compressed: the registry's manifest (the layers as stored and sent); unpacked: the Docker engine "
                "that built the image (build entries only); pulled: the median size the kubelet reported for the "
                "image's downloads."))
    add(_table(("image", "reference", "digest", "compressed (MB)", "unpacked (MB)", "pulled (MB)", "layers",
                "layer media types", "note"), [
        (_e(i.name), _e(i.reference), f'<span class="msg">{_e(i.digest)}</span>', _mb(i.compressed_bytes),
         _mb(i.uncompressed_bytes), _mb(i.pulled_bytes), _e(i.layers),
         "<br>".join(f"{_e(k)}: {v}" for k, v in sorted(i.media_types.items())) or "-", _e(i.message or ""))
        for i in infos], numeric=(3, 4, 5, 6)))

    add('<h2 id="failures">Failures</h2>')
    if fails:
        add(_figure(figures.failures(fails), "failures", "Failed runs per reason (docs/benchmark.md, Outcomes)."))
        add(_table(("reason", "runs", "first runs", "message of the first"), [
            (_e(f.reason), _e(f.count), _e(", ".join(f.runs)), f'<span class="msg">{_e(f.message)}</span>')
            for f in fails], numeric=(1,)))
    else:
        add(f'<p class="empty">No run failed{" (no run has ended yet)" if not runs else ""}.</p>')

    add('<h2 id="capacity">Capacity</h2>')
    add(_figure(figures.capacity(cap.curves, images, cap.title), "capacity",
                "From the capacity model (docs/capacity.md): pods of each image started over time, cold (solid) and "
                "warm (dashed). In each wave none start before the pull ends, half by the median start and all by "
                "the p90 start; pods beyond the slots start in waves as earlier pods end."))
    if cap.sentences:
        add("<ul>" + "".join(f"<li>{_e(s)}</li>" for s in cap.sentences) + "</ul>")
    if cap.notes:
        add("<p>Not estimated:</p><ul>" + "".join(f'<li class="empty">{_e(n)}</li>' for n in cap.notes) + "</ul>")

    add('<h2 id="nodes">Nodes</h2>')
    node_rows = data.nodes(benchmark, records)
    if node_rows:
        add(_table(("node", "runs", "failed", "devices (in-pod report)"), [
            (_e(n.name), _e(n.runs), _e(n.failed), _e(", ".join(n.devices) or "-")) for n in node_rows],
            numeric=(1, 2)))
    else:
        add('<p class="empty">No node chosen yet.</p>')
    excluded = status.get("excludedNodes") or []
    if excluded:
        add("<p>Matched the selector but could not run the pods:</p>")
        add(_table(("node", "why"), [(_e(x.get("name")), _e(x.get("reason"))) for x in excluded]))

    add('<h2 id="spec">Spec</h2>')
    add(f"<pre>{_e(yaml.safe_dump(dict(benchmark.get('spec') or {}), sort_keys=False))}</pre>")
    add(f'<p class="sub">startbench {_e(__version__)}</p>')

    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>startbench report: {_e(title)}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(parts) + "\n</body></html>\n")
