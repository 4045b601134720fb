"""What `startbench results NAME --watch` shows while a Benchmark runs, and how it ends. Pure: the Benchmark object
and its run records in, the view's numbers out; cli/results.py polls the cluster and draws them.

The watch ends when the benchmark does (phase Succeeded, PartiallyFailed or Failed). Its exit status, for CI: 1
when the benchmark Failed or its ThresholdsMet condition is False, else 0.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from startbench.core.stats import quantile
from startbench.core.status import COND_THRESHOLDS, FAILED, PARTIALLY_FAILED, SUCCEEDED, get_condition

FINAL_PHASES = (SUCCEEDED, PARTIALLY_FAILED, FAILED)


@dataclasses.dataclass(frozen=True)
class WatchView:
    benchmark: str                      # namespace/name
    phase: str                          # status.phase, or "Pending" before the operator wrote one
    ended: int                          # runs with a record
    planned: int | None                 # status.total (None before the plan is written)
    failed: int                         # ended runs that failed
    median_first_step_s: float | None   # over the ended runs that reached their first step
    thresholds: str                     # the ThresholdsMet condition's status: True, False or Unknown
    message: str                        # ThresholdsMet's message when False, else status.message

    @property
    def finished(self) -> bool:
        return self.phase in FINAL_PHASES

    @property
    def exit_code(self) -> int:
        """1 when the benchmark Failed or a threshold failed (ThresholdsMet False), else 0."""
        return 1 if self.phase == FAILED or self.thresholds == "False" else 0

    def line(self) -> str:
        """The view in one line (logs, CI)."""
        planned = "?" if self.planned is None else str(self.planned)
        first = ("no first step yet" if self.median_first_step_s is None
                 else f"median time to first step {self.median_first_step_s:.3f} s")
        return (f"{self.benchmark} {self.phase}: {self.ended}/{planned} runs ended, {self.failed} failed, {first}, "
                f"ThresholdsMet {self.thresholds}")


def watch_view(benchmark: Mapping[str, Any], records: Sequence[Mapping[str, Any]]) -> WatchView:
    meta = benchmark.get("metadata") or {}
    status = benchmark.get("status") or {}
    latest = {r.get("name"): r for r in records}  # a run recorded twice counts once (its latest record)
    firsts = [float(r["timeToFirstStepMs"]) / 1000.0 for r in latest.values()
              if isinstance(r.get("timeToFirstStepMs"), (int, float))]
    gate = get_condition(status.get("conditions"), COND_THRESHOLDS) or {}
    thresholds = str(gate.get("status") or "Unknown")
    total = status.get("total")
    return WatchView(
        benchmark=f"{meta.get('namespace') or '-'}/{meta.get('name') or '-'}",
        phase=str(status.get("phase") or "Pending"), ended=len(latest),
        planned=int(total) if isinstance(total, (int, float)) else None,
        failed=sum(1 for r in latest.values() if r.get("result") != SUCCEEDED),
        median_first_step_s=quantile(firsts, 0.5) if firsts else None, thresholds=thresholds,
        message=str(gate.get("message") or "") if thresholds == "False" else str(status.get("message") or ""))
