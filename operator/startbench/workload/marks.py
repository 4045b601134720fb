"""Phase marks of one workload run: wall-clock epoch milliseconds anchored once, advanced by the
monotonic clock, so that differences between marks are exact monotonic durations (immune to clock
steps) while each mark can still be lined up with Kubernetes timestamps. Pure apart from reading clocks.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping

# The contract's order (docs/contracts.md). A mark not reached is absent from the report.
MARKS: tuple[str, ...] = (
    "process_start",      # the process's own start time, from /proc/self/stat
    "interpreter_ready",  # first statement of startbench.workload.__main__
    "framework_imported",
    "device_ready",       # first tiny operation on the device, synchronised
    "model_built",
    "data_ready",
    "first_step",         # end of the first training step (includes compilation), synchronised
    "steady_end",         # end of the steady-state window (steps 2..N)
)

# Phase name -> (start mark, end mark): what the durations in docs/workload.md are made of.
PHASES: tuple[tuple[str, str, str], ...] = (
    ("interpreter", "process_start", "interpreter_ready"),
    ("imports", "interpreter_ready", "framework_imported"),
    ("device_init", "framework_imported", "device_ready"),
    ("model_build", "device_ready", "model_built"),
    ("data", "model_built", "data_ready"),
    ("first_step", "data_ready", "first_step"),
    ("steady", "first_step", "steady_end"),
)


def process_start_epoch_ms() -> float | None:
    """Epoch milliseconds at which this process was created, or None where /proc cannot tell.

    /proc/self/stat field 22 is the start time in clock ticks since boot; CLOCK_BOOTTIME is now since
    boot, so `now - (boottime_now - starttime)` is the start in wall-clock time with the kernel's tick
    resolution (10 ms at HZ=100). Both clocks belong to the same boot, so this also holds in a container.
    """
    try:
        with open("/proc/self/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
        # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
        fields = stat[stat.rindex(")") + 2:].split()
        start_ticks = int(fields[19])  # field 22 overall; fields[0] here is field 3
        hz = os.sysconf("SC_CLK_TCK")
        boot_now = time.clock_gettime(time.CLOCK_BOOTTIME)
        wall_now = time.time()
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    age_s = boot_now - start_ticks / hz
    return (wall_now - age_s) * 1000.0


class Marks:
    """Records marks in MARKS order. `anchor` is (wall ns, monotonic ns) taken at the same moment."""

    def __init__(self, anchor: tuple[int, int] | None = None, process_start_ms: float | None = None):
        if anchor is None:
            anchor = (time.time_ns(), time.monotonic_ns())
        self._wall0_ns, self._mono0_ns = anchor
        self.wall_ms: dict[str, float] = {}
        self.mono_ns: dict[str, int] = {}
        start = process_start_ms if process_start_ms is not None else process_start_epoch_ms()
        if start is not None:
            # Tick resolution may put the start a few ms after the anchor; a start cannot follow it.
            self.wall_ms["process_start"] = min(start, self._wall0_ns / 1e6)

    def skew(self, ms: float) -> None:
        """Put this pod's wall clock `ms` ahead (negative: behind), for the marks so far and those to come: the
        test hook behind `--clock-skew-ms`, so the operator's clock check meets a skewed pod for real. Durations
        between marks do not change."""
        self._wall0_ns += int(ms * 1e6)
        self.wall_ms = {name: value + ms for name, value in self.wall_ms.items()}

    def _wall_at(self, mono_ns: int) -> float:
        return (self._wall0_ns + (mono_ns - self._mono0_ns)) / 1e6

    def mark(self, name: str, mono_ns: int | None = None) -> float:
        """Record `name` now (or at `mono_ns`); marks must come in MARKS order, each at most once."""
        if name not in MARKS:
            raise ValueError(f"unknown mark {name!r}: use one of {', '.join(MARKS)}")
        expected = next_mark(self.wall_ms)
        if name != expected:
            raise ValueError(f"mark {name!r} out of order: the next mark to record is {expected!r}")
        if mono_ns is None:
            mono_ns = time.monotonic_ns() if name != "interpreter_ready" else self._mono0_ns
        self.mono_ns[name] = mono_ns
        self.wall_ms[name] = self._wall_at(mono_ns)
        return self.wall_ms[name]

    def elapsed_ms(self, name: str) -> float:
        """Milliseconds from process start (or the anchor, where the start is unknown) to mark `name`."""
        base = self.wall_ms.get("process_start", self._wall0_ns / 1e6)
        return self.wall_ms[name] - base


def next_mark(marks: Mapping[str, float]) -> str | None:
    """The first mark in MARKS order that is absent from `marks` (None when all are present).

    A run without a readable process start still counts from interpreter_ready, so a missing
    process_start alone does not make a later mark "next".
    """
    for name in MARKS:
        if name == "process_start":
            continue
        if name not in marks:
            return name
    return None


def check_marks(marks: Mapping[str, float]) -> list[str]:
    """Problems with a marks mapping: unknown names, gaps (a later mark present after an absent one),
    negative values or marks out of order. Empty list when the marks are well formed."""
    problems = []
    for name in marks:
        if name not in MARKS:
            problems.append(f"unknown mark {name!r}")
    present = [m for m in MARKS if m in marks]
    seen_gap = None
    for name in MARKS[1:]:
        if name not in marks:
            seen_gap = seen_gap or name
        elif seen_gap:
            problems.append(f"mark {name!r} is present but the earlier mark {seen_gap!r} is absent")
    for name in present:
        value = marks[name]
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            problems.append(f"mark {name!r} must be a non-negative number of epoch milliseconds, got {value!r}")
    numeric = [(m, marks[m]) for m in present if isinstance(marks[m], (int, float)) and not isinstance(marks[m], bool)]
    for (a, va), (b, vb) in zip(numeric, numeric[1:]):
        if vb < va:
            problems.append(f"mark {b!r} ({vb}) is earlier than mark {a!r} ({va})")
    return problems


def phase_durations_ms(marks: Mapping[str, float]) -> dict[str, float]:
    """Durations of PHASES whose start and end marks are both present, in milliseconds."""
    out = {}
    for phase, start, end in PHASES:
        if start in marks and end in marks:
            out[phase] = marks[end] - marks[start]
    return out
