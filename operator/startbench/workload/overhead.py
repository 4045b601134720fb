"""Container overhead from paired host and container runs (pure): the published studies' question,
"does the container cost anything once training runs?", with a confidence interval.

Method. Runs are interleaved (host, container, container, host, ...) so that slow drift of the machine
(thermal state, other load, caches) hits both sides alike, and each repeat i gives a pair (h_i, c_i).
For each metric we take d_i = ln(c_i / h_i), a Student t interval for the mean of d_i with n - 1
degrees of freedom, and exponentiate: the ratio is the container-to-host ratio of geometric means and
its interval is exact under log-normal noise, asymmetric as ratios should be. The overhead is the
container's cost in percent, positive when the container is worse:
    lower is better (times):        overhead = (ratio - 1) x 100
    higher is better (throughput):  overhead = (1 / ratio - 1) x 100
A pair where either value is missing (null) or not positive is left out; n < 2 has no interval.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from startbench.workload.marks import phase_durations_ms


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularised incomplete beta function (Lentz's method)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-14:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    ln_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(ln_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(ln_front) * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """CDF of Student's t distribution with `df` degrees of freedom."""
    if df <= 0:
        raise ValueError(f"degrees of freedom must be positive, got {df}")
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_ppf(p: float, df: float) -> float:
    """Quantile of Student's t: the t with t_cdf(t, df) = p, by bisection (to about 1e-10)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"probability must be within (0, 1), got {p}")
    if p == 0.5:
        return 0.0
    lo, hi = -1.0, 1.0
    while t_cdf(lo, df) > p:
        lo *= 2.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, abs(mid)):
            break
    return (lo + hi) / 2.0


@dataclass(frozen=True)
class RatioCI:
    ratio: float            # container / host, geometric mean over pairs
    low: float | None       # interval bounds for the ratio; None with fewer than 2 pairs
    high: float | None
    n: int                  # pairs used
    confidence: float


def paired_ratio_ci(host: Sequence[float | None], container: Sequence[float | None],
                    confidence: float = 0.95) -> RatioCI | None:
    """Ratio container/host with a t interval on paired log ratios; None when no pair is usable."""
    if len(host) != len(container):
        raise ValueError(f"paired samples must have equal length, got {len(host)} host and {len(container)} container")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be within (0, 1), got {confidence}")
    d = [math.log(c / h) for h, c in zip(host, container)
         if h is not None and c is not None and h > 0 and c > 0]
    n = len(d)
    if n == 0:
        return None
    mean = sum(d) / n
    if n < 2:
        return RatioCI(math.exp(mean), None, None, n, confidence)
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1))
    half = t_ppf((1.0 + confidence) / 2.0, n - 1) * sd / math.sqrt(n)
    return RatioCI(math.exp(mean), math.exp(mean - half), math.exp(mean + half), n, confidence)


def overhead_percent(ci: RatioCI, higher_is_better: bool) -> tuple[float, float | None, float | None]:
    """(overhead, low, high) in percent, positive when the container is worse (module docstring)."""
    def cost(r: float) -> float:
        return (1.0 / r - 1.0) * 100.0 if higher_is_better else (r - 1.0) * 100.0

    if ci.low is None or ci.high is None:
        return cost(ci.ratio), None, None
    a, b = cost(ci.low), cost(ci.high)
    return cost(ci.ratio), min(a, b), max(a, b)


# (name, how to read it from a parsed report, higher is better, unit)
Metric = tuple[str, Callable[[Mapping[str, Any]], float | None], bool, str]


def _metric(key: str) -> Callable[[Mapping[str, Any]], float | None]:
    return lambda report: report["metrics"].get(key)


def _phase(name: str) -> Callable[[Mapping[str, Any]], float | None]:
    return lambda report: phase_durations_ms(report["marks_ms"]).get(name)


def _to_first_step(report: Mapping[str, Any]) -> float | None:
    marks = report["marks_ms"]
    if "process_start" in marks and "first_step" in marks:
        return marks["first_step"] - marks["process_start"]
    return None


COMPARED: tuple[Metric, ...] = (
    ("samples_per_s", _metric("samples_per_s"), True, "1/s"),
    ("step_time_p50_ms", _metric("step_time_p50_ms"), False, "ms"),
    ("step_time_p90_ms", _metric("step_time_p90_ms"), False, "ms"),
    ("tflops", _metric("tflops"), True, "TFLOP/s"),
    ("gpu_util_mean", _metric("gpu_util_mean"), True, "%"),
    ("gpu_util_max", _metric("gpu_util_max"), True, "%"),
    ("mem_util_mean", _metric("mem_util_mean"), True, "%"),
    ("mem_util_max", _metric("mem_util_max"), True, "%"),
    ("imports_ms", _phase("imports"), False, "ms"),
    ("device_init_ms", _phase("device_init"), False, "ms"),
    ("first_step_ms", _phase("first_step"), False, "ms"),
    ("process_to_first_step_ms", _to_first_step, False, "ms"),
)


@dataclass(frozen=True)
class Row:
    metric: str
    unit: str
    host_mean: float
    container_mean: float
    overhead_pct: float
    low_pct: float | None
    high_pct: float | None
    n: int


def compare(host_reports: Sequence[Mapping[str, Any]], container_reports: Sequence[Mapping[str, Any]],
            confidence: float = 0.95) -> list[Row]:
    """One Row per metric of COMPARED that both sides measured, pairing reports by index."""
    rows = []
    for name, read, higher, unit in COMPARED:
        h = [read(r) for r in host_reports]
        c = [read(r) for r in container_reports]
        ci = paired_ratio_ci(h, c, confidence)
        if ci is None:
            continue
        pairs = [(x, y) for x, y in zip(h, c) if x is not None and y is not None and x > 0 and y > 0]
        pct, lo, hi = overhead_percent(ci, higher)
        rows.append(Row(name, unit, sum(p[0] for p in pairs) / len(pairs), sum(p[1] for p in pairs) / len(pairs),
                        pct, lo, hi, ci.n))
    return rows


def format_table(rows: Sequence[Row], confidence: float = 0.95) -> str:
    """A plain-text table; overhead > 0 means the container is worse."""
    head = ("metric", "host", "container", "overhead %", f"{confidence:.0%} CI", "n")
    body = []
    for r in rows:
        ci = f"[{r.low_pct:+.2f}, {r.high_pct:+.2f}]" if r.low_pct is not None else "n/a (n < 2)"
        body.append((f"{r.metric} ({r.unit})", f"{r.host_mean:.4g}", f"{r.container_mean:.4g}",
                     f"{r.overhead_pct:+.2f}", ci, str(r.n)))
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in [head, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
