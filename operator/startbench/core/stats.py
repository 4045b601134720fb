"""Summary statistics of run timings: count, min, max and quantiles. Pure, no numpy needed.

Quantiles use linear interpolation between closest ranks, the method numpy calls "linear" (its default)
and Hyndman & Fan call type 7: for n sorted values x[0..n-1] and q in [0, 1], h = (n - 1) * q and the
quantile is x[floor(h)] + (h - floor(h)) * (x[floor(h) + 1] - x[floor(h)]). With one value every quantile
is that value; with none there is no summary (None), never a zero.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence

# Quantile names used in the spec (thresholds) and the status (summaries), with their fraction.
QUANTILES: dict[str, float] = {"p50": 0.50, "p90": 0.90, "p99": 0.99}


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0 <= q <= 1) of `values` by linear interpolation (numpy's default method).

    Raises ValueError on an empty sequence, a NaN value or q outside [0, 1].
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile q={q!r} is outside [0, 1]")
    if not values:
        raise ValueError("quantile of no values is undefined")
    xs = sorted(float(v) for v in values)
    if any(math.isnan(x) for x in xs):
        raise ValueError("quantile of values containing NaN is undefined")
    h = (len(xs) - 1) * q
    lo = math.floor(h)
    hi = min(lo + 1, len(xs) - 1)
    frac = h - lo
    # Written as a convex combination so the result never leaves [xs[lo], xs[hi]] through rounding.
    value = xs[lo] * (1.0 - frac) + xs[hi] * frac if frac else xs[lo]
    return min(max(value, xs[lo]), xs[hi])


@dataclasses.dataclass(frozen=True)
class Summary:
    count: int
    min: float
    max: float
    p50: float
    p90: float
    p99: float

    def get(self, name: str) -> float:
        """A statistic by name: `p50`, `p90`, `p99`, `min` or `max`."""
        if name not in ("p50", "p90", "p99", "min", "max"):
            raise KeyError(f"unknown statistic {name!r}; expected p50, p90, p99, min or max")
        return float(getattr(self, name))


def summarize(values: Iterable[float | None]) -> Summary | None:
    """Count, min, max and p50/p90/p99 of the values that are not None; None when there are none."""
    xs = sorted(float(v) for v in values if v is not None)
    if not xs:
        return None
    return Summary(
        count=len(xs),
        min=xs[0],
        max=xs[-1],
        p50=quantile(xs, QUANTILES["p50"]),
        p90=quantile(xs, QUANTILES["p90"]),
        p99=quantile(xs, QUANTILES["p99"]),
    )
