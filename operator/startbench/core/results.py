"""A Benchmark's results for a person (table) or a script (json, csv). Pure: the Benchmark object and its run
records in, text out. `results_cli.py` reads both from the cluster.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from startbench.core.contracts import PHASES

FORMATS = ("table", "json", "csv")
CSV_COLUMNS = (
    "run", "image", "node", "cache", "cache_observed", "repetition", "result", "reason",
    "time_to_first_step_s", *(f"{p}_s" for p in PHASES), "pull_s", "pull_with_wait_s", "image_size_bytes",
    "samples_per_s", "tflops", "gpu_util_mean", "message",
)


def _seconds(ms: Any) -> float | None:
    return None if ms is None else round(float(ms) / 1000.0, 3)


def run_row(record: Mapping[str, Any]) -> dict[str, Any]:
    """One run as a flat row (CSV_COLUMNS); phases merged with a neighbour are left empty."""
    timeline = record.get("timeline") or {}
    phases = timeline.get("phases") or {}
    pull = record.get("pull") or {}
    metrics = (record.get("report") or {}).get("metrics") or {}
    row: dict[str, Any] = {
        "run": record.get("name"), "image": record.get("image"), "node": record.get("node"),
        "cache": record.get("cacheAsked", record.get("cache")), "cache_observed": timeline.get("cacheObserved", "unknown"),
        "repetition": record.get("repetition"), "result": record.get("result"), "reason": record.get("reason"),
        "time_to_first_step_s": _seconds(record.get("timeToFirstStepMs")),
    }
    for p in PHASES:
        entry = phases.get(p)
        row[f"{p}_s"] = _seconds(entry["ms"]) if entry and "covers" not in entry else None
    row.update({
        "pull_s": pull.get("seconds"), "pull_with_wait_s": pull.get("withWaitSeconds"),
        "image_size_bytes": pull.get("imageSizeBytes"), "samples_per_s": metrics.get("samples_per_s"),
        "tflops": metrics.get("tflops"), "gpu_util_mean": metrics.get("gpu_util_mean"),
        "message": record.get("message"),
    })
    return row


def to_json(benchmark: Mapping[str, Any], records: Sequence[Mapping[str, Any]]) -> str:
    meta = benchmark.get("metadata") or {}
    status = benchmark.get("status") or {}
    doc = {
        "name": meta.get("name"), "namespace": meta.get("namespace"),
        "phase": status.get("phase"), "progress": status.get("progress"),
        "p50TimeToFirstStepSeconds": status.get("p50TimeToFirstStepSeconds"),
        "conditions": status.get("conditions", []), "summaries": status.get("summaries", []),
        "thresholds": status.get("thresholds", []), "images": status.get("images", []),
        "nodeContext": status.get("nodeContext", []),
        "spec": benchmark.get("spec", {}), "runs": list(records),
    }
    return json.dumps(doc, indent=2, sort_keys=False) + "\n"


def to_csv(records: Sequence[Mapping[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in records:
        writer.writerow({k: "" if v is None else v for k, v in run_row(r).items()})
    return out.getvalue()


def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    return f"{x:.3f}" if isinstance(x, float) else str(x)


def _secs(x: Any) -> str:
    """Seconds with millisecond digits; the API server hands whole numbers back as integers."""
    return "-" if x is None else f"{float(x):.3f}"


def to_table(benchmark: Mapping[str, Any], records: Sequence[Mapping[str, Any]], width: int = 120) -> str:
    meta = benchmark.get("metadata") or {}
    status = benchmark.get("status") or {}
    console = Console(file=io.StringIO(), width=width, force_terminal=False, color_system=None, highlight=False)
    p50 = status.get("p50TimeToFirstStepSeconds")
    first_step = f"p50 time to first step {_secs(p50)} s" if p50 is not None else "no run has reached a first step"
    console.print(f"Benchmark {meta.get('namespace', '')}/{meta.get('name', '')}: phase {status.get('phase') or '-'}, "
                  f"progress {status.get('progress') or '-'}, {first_step}")
    if status.get("message"):
        console.print(status["message"])
    for c in status.get("conditions") or []:
        if c.get("type") == "ThresholdsMet" or (c.get("type") == "Failed" and c.get("status") == "True"):
            console.print(f"{c.get('type')}={c.get('status')} ({c.get('reason')}): {c.get('message')}")

    summary = Table(title="Seconds per image, observed cache state and metric", box=box.SIMPLE_HEAD)
    for col in ("image", "cache", "metric", "count", "p50", "p90", "p99", "min", "max"):
        summary.add_column(col, justify="right" if col not in ("image", "cache", "metric") else "left")
    for s in status.get("summaries") or []:
        summary.add_row(s.get("image"), s.get("cache"), s.get("metric"), _fmt(s.get("count")),
                        *(_secs(s.get(f"{k}Seconds")) for k in ("p50", "p90", "p99", "min", "max")))
    if summary.row_count:
        console.print(summary)
    else:
        console.print("No run has ended yet.")

    checks = status.get("thresholds") or []
    if checks:
        t = Table(title="Thresholds", box=box.SIMPLE_HEAD)
        for col in ("image", "check", "observed", "limit", "runs", "met"):
            t.add_column(col)
        for r in checks:
            cache = f" ({r['cache']})" if r.get("cache") else ""
            t.add_row(r.get("image"), f"{r.get('quantile')} {r.get('metric')}{cache}", _secs(r.get("observedSeconds")),
                      _secs(r.get("maxSeconds")), _fmt(r.get("count")),
                      {True: "yes", False: "NO", None: "no data"}[r.get("met")])
        console.print(t)

    contexts = status.get("nodeContext") or []
    if contexts:
        t = Table(title="Nodes", box=box.SIMPLE_HEAD)
        for col in ("node", "runtime", "kubelet", "serialize pulls", "parallel pulls", "from"):
            t.add_column(col, overflow="fold")
        for c in contexts:
            t.add_row(c.get("name"), c.get("containerRuntime") or "-", c.get("kubelet") or "-",
                      {True: "yes", False: "no", None: "?"}[c.get("serializeImagePulls")],
                      _fmt(c.get("maxParallelImagePulls")), c.get("pullSettingsFrom") or c.get("note") or "-")
        console.print(t)

    failed = [r for r in records if r.get("result") != "Succeeded"]
    if failed:
        t = Table(title=f"Failed runs ({len(failed)} of {len(records)})", box=box.SIMPLE_HEAD)
        for col in ("run", "node", "reason", "message"):
            t.add_column(col, overflow="fold")
        for r in failed[:50]:
            t.add_row(r.get("name"), r.get("node"), r.get("reason"), r.get("message"))
        console.print(t)
        if len(failed) > 50:
            console.print(f"... and {len(failed) - 50} more (use --format csv)")
    return console.file.getvalue()


def render(fmt: str, benchmark: Mapping[str, Any], records: Sequence[Mapping[str, Any]]) -> str:
    if fmt == "json":
        return to_json(benchmark, records)
    if fmt == "csv":
        return to_csv(records)
    if fmt == "table":
        return to_table(benchmark, records)
    raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
