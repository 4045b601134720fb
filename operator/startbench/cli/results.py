"""`startbench results NAME [--format table|json|csv] [--watch]`: a Benchmark's results, read from the cluster.

Reads the Benchmark and the ConfigMaps named in its status.recordsConfigMaps (or, before the status names them,
those labelled startbench.dev/records=true for the benchmark) and prints them with core/results.py.

--watch polls them (every --interval seconds) and shows the runs ended of those planned, the failures so far and
the median time to first step until the benchmark ends, then prints the results. Its exit status is 1 when the
benchmark Failed or a threshold failed (condition ThresholdsMet False), so a CI job can gate on it.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

from startbench.cli.kubeaccess import add_arguments, connect, load, not_found, read_benchmark
from startbench.core.results import FORMATS, render
from startbench.core.watch import WatchView, watch_view

Fetched = tuple[dict, list[dict]]


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("results", help="print a Benchmark's results (table, json or csv), or watch it run",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.add_argument("--format", choices=FORMATS, default="table", help="table for a person, json or csv for a script")
    p.add_argument("--watch", action="store_true",
                   help="show progress until the benchmark ends; exit 1 if it failed or a threshold failed")
    p.add_argument("--interval", type=float, default=1.5, metavar="SECONDS", help="--watch polls this often (1.5)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.watch:
        return run_watch(args)
    loaded = load(args, "results")
    if loaded is None:
        return 1
    _, _, benchmark, records = loaded
    sys.stdout.write(render(args.format, benchmark, records))
    return 0


def watch(fetch: Callable[[], Fetched | None], sleep: Callable[[float], None], show: Callable[[WatchView], None],
          interval: float = 1.5, max_errors: int = 10,
          on_error: Callable[[Exception, int], None] = lambda err, n: None) -> tuple[int, Fetched | None]:
    """Poll `fetch` every `interval` seconds (through `sleep`), showing each view, until the benchmark ends.

    Returns (exit status, the last fetch): the view's exit code when it ended, 1 when the Benchmark is gone. A
    fetch that raises (an API server restarting) is retried; `max_errors` in a row end the watch with the error.
    """
    errors = 0
    while True:
        try:
            got = fetch()
        except Exception as err:  # noqa: BLE001 - any transient failure of the API call; re-raised when it lasts
            errors += 1
            on_error(err, errors)
            if errors >= max_errors:
                raise
            sleep(interval)
            continue
        errors = 0
        if got is None:
            return 1, None
        view = watch_view(*got)
        show(view)
        if view.finished:
            return view.exit_code, got
        sleep(interval)


def renderable(view: WatchView) -> Any:
    """The live view: the benchmark and its phase, a bar of the runs ended, failures and median first step."""
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text
    grid = Table.grid(padding=(0, 2))
    grid.add_row(Text(view.benchmark, style="bold"), Text(view.phase))
    planned = "?" if view.planned is None else str(view.planned)
    grid.add_row(ProgressBar(total=view.planned or None, completed=view.ended, width=40),
                 Text(f"{view.ended}/{planned} runs ended"))
    first = "-" if view.median_first_step_s is None else f"{view.median_first_step_s:.3f} s"
    grid.add_row(Text(f"failed so far: {view.failed}", style="red" if view.failed else ""),
                 Text(f"median time to first step: {first}"))
    grid.add_row(Text("ThresholdsMet"), Text(view.thresholds, style={"True": "green", "False": "bold red"}.get(
        view.thresholds, "")))
    return grid


def run_watch(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.live import Live
    io, default_namespace = connect(args.kubeconfig)
    namespace = args.namespace or default_namespace
    console = Console(stderr=True)

    def fetch() -> Fetched | None:
        return read_benchmark(io, namespace, args.name)

    def warn(err: Exception, n: int) -> None:
        console.print(f"startbench results: reading {namespace}/{args.name} failed ({n} in a row): {err}")

    if console.is_terminal:
        with Live(console=console, refresh_per_second=4) as live:
            code, last = watch(fetch, time.sleep, lambda v: live.update(renderable(v)), args.interval, on_error=warn)
    else:  # a log (CI): one line each time the numbers change
        shown: list[str] = []

        def show(view: WatchView) -> None:
            if not shown or shown[-1] != view.line():
                shown.append(view.line())
                print(view.line(), file=sys.stderr, flush=True)
        code, last = watch(fetch, time.sleep, show, args.interval, on_error=warn)
    if last is None:
        print(not_found("results", namespace, args.name), file=sys.stderr)
        return 1
    benchmark, records = last
    sys.stdout.write(render(args.format, benchmark, records))
    view = watch_view(benchmark, records)
    print(f"{view.line()}; exit status {code}" + (f": {view.message}" if code and view.message else ""),
          file=sys.stderr)
    return code
