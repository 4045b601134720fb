"""Keep a benchmark's result: one JSON file under bench/results/ that says what was measured, when, on what.

Every bench script that keeps its result calls `keep(name, result)`; the file holds

    {"bench": name, "date": ISO 8601 UTC, "commit": git HEAD (with "+dirty" when the tree has changes),
     "command": the command line, "machine": {cores, memoryBytes, kernel, python, hostname},
     "loadAverage": [1, 5, 15 minutes] before and after, "result": result}

Numbers depend on the machine and its load at that moment: the load average is kept beside them so that a
reader can tell a quiet run from a busy one.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def commit() -> str:
    """git HEAD, "+dirty" when tracked files differ from it; "unknown" outside a checkout."""
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "diff", "--quiet", "HEAD", "--"], capture_output=True).returncode
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict[str, Any]:
    memory = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) * 1024
    except OSError:
        pass
    return {"cores": os.cpu_count(), "memoryBytes": memory, "kernel": platform.release(),
            "python": platform.python_version(), "hostname": platform.node()}


class Keeper:
    """Started at the beginning of a measurement (takes the load average then), kept at the end."""

    def __init__(self, name: str, argv: list[str] | None = None):
        self.name = name
        self.argv = list(sys.argv if argv is None else argv)
        self.started = datetime.datetime.now(datetime.timezone.utc)
        self.load_before = load_average()

    def keep(self, result: Any, path: Path | None = None) -> Path:
        now = datetime.datetime.now(datetime.timezone.utc)
        doc = {"bench": self.name, "date": now.isoformat(timespec="seconds").replace("+00:00", "Z"),
               "startedAt": self.started.isoformat(timespec="seconds").replace("+00:00", "Z"),
               "commit": commit(), "command": shlex.join(["python3", *self.argv]), "machine": machine(),
               "loadAverage": {"before": self.load_before, "after": load_average()}, "result": result}
        if path is None:
            RESULTS.mkdir(parents=True, exist_ok=True)
            path = RESULTS / f"{self.name}-{now.strftime('%Y%m%dT%H%M%SZ')}.json"
        path.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
        print(f"kept {path}", file=sys.stderr, flush=True)
        return path


def keep(name: str, result: Any, path: Path | None = None) -> Path:
    """Keep `result` now (the load average before is taken now too: use Keeper to take it at the start)."""
    return Keeper(name).keep(result, path)
