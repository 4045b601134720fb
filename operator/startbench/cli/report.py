"""`startbench report NAME [-n NS] [-o report.html]`: a Benchmark's results as one self-contained HTML page (every
run's phases, the phases per image and cache state, pull throughput, image sizes, failures, the capacity curve,
the spec, conditions and thresholds), or one figure as PNG or SVG (`--plot waterfall -o waterfall.png`).

Reads the Benchmark and its run records as `startbench results` does; the page needs no network to open. The
capacity curve asks the capacity model (docs/capacity.md) about --pods pods on the benchmark's nodes, as
`startbench capacity` does, with the same options.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

from startbench.cli.kubeaccess import add_arguments, load
from startbench.core import capacity

PLOTS = ("waterfall", "phases", "pulls", "sizes", "failures", "capacity")  # report/render.py's PLOTS
FORMATS = ("html", "png", "svg")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("report", help="write a Benchmark's results as an HTML report, or one plot as PNG/SVG",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.add_argument("-o", "--output", help="the file to write (default: NAME-report.html, or NAME-PLOT.png/.svg)")
    p.add_argument("--format", choices=FORMATS,
                   help="html (the whole report), png or svg (one plot); default: from the output's suffix, else html")
    p.add_argument("--plot", choices=PLOTS,
                   help="write only this plot (as png unless --format or -o says svg)")
    p.add_argument("--pods", type=int, default=200, help="the capacity curve's pods (default: 200)")
    p.add_argument("--nodes", type=int, help="the capacity curve's nodes (default: the nodes the benchmark ran on)")
    p.add_argument("--pods-per-node", type=int,
                   help="pods one node runs at once (default: from the benchmark's nodes and gpusPerPod)")
    p.add_argument("--registry-bandwidth", type=capacity.parse_bandwidth, metavar="BW",
                   help="the registry's total egress for the capacity curve, e.g. 10Gbit/s (default: not a limit)")
    p.add_argument("--run-seconds", type=float, metavar="S",
                   help="how long each pod runs, creation to end, for pods beyond the slots (default: measured)")
    p.set_defaults(func=run)


def choose_output(name: str, output: str | None, fmt: str | None, plot: str | None) -> tuple[Path, str]:
    """(path, format) from -o, --format and --plot: the format from the output's suffix unless given, png for a
    single plot, html otherwise. Raises ValueError with what to change when they disagree."""
    suffix = Path(output).suffix.lower().lstrip(".") if output else ""
    fmt = fmt or (suffix if suffix in FORMATS else None) or ("png" if plot else "html")
    if fmt == "html" and plot:
        raise ValueError(f"--plot {plot} writes one figure as png or svg; leave out --plot for the HTML report, or "
                         "write to a .png or .svg file")
    if fmt != "html" and not plot:
        plot = "waterfall"
    path = Path(output) if output else Path(f"{name}-report.html" if fmt == "html" else f"{name}-{plot}.{fmt}")
    return path, fmt


def run(args: argparse.Namespace) -> int:
    try:
        path, fmt = choose_output(args.name, args.output, args.format, args.plot)
    except ValueError as err:
        print(f"startbench report: {err}", file=sys.stderr)
        return 2
    try:
        from startbench.report import html, render
    except ImportError as err:  # matplotlib is a dependency of the package; an image built without it has none
        print(f"startbench report: the report needs matplotlib ({err}); pip install matplotlib", file=sys.stderr)
        return 1
    loaded = load(args, "report")
    if loaded is None:
        return 1
    io, namespace, benchmark, records = loaded
    spec, status = benchmark.get("spec") or {}, benchmark.get("status") or {}
    per_node = args.pods_per_node
    if per_node is None:
        gpus_per_pod = int((spec.get("nodes") or {}).get("gpusPerPod", 1))
        per_node = capacity.pods_per_node(io.allocatable_gpus(list(status.get("nodes") or [])), gpus_per_pod)
    options = render.Options(pods=args.pods, nodes=args.nodes, pods_per_node=per_node,
                             registry_bandwidth=args.registry_bandwidth, run_seconds=args.run_seconds)
    try:
        if fmt == "html":
            now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            path.write_text(html.render_html(benchmark, records, options, generated_at=now), encoding="utf-8")
        else:
            path.write_bytes(render.render_plot(args.plot or "waterfall", fmt, benchmark, records, options))
    except render.ReportError as err:
        print(f"startbench report: {err}", file=sys.stderr)
        return 1
    what = "report" if fmt == "html" else f"{args.plot or 'waterfall'} plot"
    print(f"wrote the {what} of {namespace}/{args.name} ({len(records)} runs) to {path}")
    return 0
