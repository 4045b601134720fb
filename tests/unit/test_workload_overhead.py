"""Container overhead statistics: Student t quantiles, the paired log-ratio interval, its coverage, the
overhead sign convention, and the comparison of real-shaped reports."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from startbench.workload import overhead as ov
from startbench.workload.marks import MARKS
from startbench.workload.report import build_report


@pytest.mark.parametrize("p, df, expected", [
    # Printed t tables (two-sided 95 % and one-sided 95 %), and the normal limit.
    (0.975, 1, 12.706), (0.975, 2, 4.303), (0.975, 4, 2.776), (0.975, 9, 2.262), (0.975, 30, 2.042),
    (0.95, 10, 1.812), (0.995, 5, 4.032), (0.975, 1e7, 1.960),
])
def test_t_quantiles_match_tables(p, df, expected):
    assert ov.t_ppf(p, df) == pytest.approx(expected, abs=1.5e-3)


@given(st.floats(0.001, 0.999), st.integers(1, 200))
def test_t_ppf_inverts_t_cdf_and_is_symmetric(p, df):
    t = ov.t_ppf(p, df)
    assert ov.t_cdf(t, df) == pytest.approx(p, abs=1e-9)
    assert ov.t_ppf(1 - p, df) == pytest.approx(-t, abs=1e-6 * max(1, abs(t)))


def test_t_ppf_refuses_bad_arguments():
    with pytest.raises(ValueError):
        ov.t_ppf(1.0, 3)
    with pytest.raises(ValueError):
        ov.t_cdf(0.0, 0)


def test_identical_sides_give_ratio_one_and_a_zero_width_interval():
    ci = ov.paired_ratio_ci([10.0, 12.0, 11.0], [10.0, 12.0, 11.0])
    assert (ci.ratio, ci.low, ci.high, ci.n) == (1.0, 1.0, 1.0, 3)


def test_a_constant_ratio_is_recovered_exactly_whatever_the_drift():
    host = [100.0, 150.0, 90.0, 300.0]
    ci = ov.paired_ratio_ci(host, [h * 1.05 for h in host])
    assert ci.ratio == pytest.approx(1.05) and ci.low == pytest.approx(1.05) and ci.high == pytest.approx(1.05)


def test_interval_by_hand():
    host, cont = [1.0, 1.0, 1.0], [1.0, math.e**0.1, math.e**0.2]   # log ratios 0, 0.1, 0.2
    ci = ov.paired_ratio_ci(host, cont)
    half = 4.302652729911275 * 0.1 / math.sqrt(3)  # t(0.975, 2) x sd / sqrt(n)
    assert ci.ratio == pytest.approx(math.e**0.1)
    assert ci.low == pytest.approx(math.exp(0.1 - half)) and ci.high == pytest.approx(math.exp(0.1 + half))


def test_missing_and_non_positive_pairs_are_left_out():
    ci = ov.paired_ratio_ci([1.0, None, 2.0, 0.0], [1.1, 5.0, None, 1.0])
    assert ci.n == 1 and ci.ratio == pytest.approx(1.1) and ci.low is None and ci.high is None
    assert ov.paired_ratio_ci([None, None], [None, 1.0]) is None
    with pytest.raises(ValueError, match="equal length"):
        ov.paired_ratio_ci([1.0], [1.0, 2.0])


def test_interval_covers_the_true_ratio_about_as_often_as_promised():
    """Simulated interleaved runs: machine drift shared by a pair, log-normal noise, true ratio 1.03."""
    rng = random.Random(20)
    true, trials, covered = 1.03, 2000, 0
    for _ in range(trials):
        host, cont = [], []
        for _ in range(6):
            drift = rng.uniform(0.7, 1.3)
            host.append(100 * drift * math.exp(rng.gauss(0, 0.05)))
            cont.append(100 * true * drift * math.exp(rng.gauss(0, 0.05)))
        ci = ov.paired_ratio_ci(host, cont, 0.95)
        covered += ci.low <= true <= ci.high
    assert 0.93 <= covered / trials <= 0.97


def test_overhead_is_positive_when_the_container_is_worse():
    slower = ov.RatioCI(ratio=1.10, low=1.05, high=1.15, n=5, confidence=0.95)  # container times 10 % longer
    pct, lo, hi = ov.overhead_percent(slower, higher_is_better=False)
    assert pct == pytest.approx(10.0) and lo == pytest.approx(5.0) and hi == pytest.approx(15.0)
    fewer = ov.RatioCI(ratio=0.8, low=0.75, high=0.9, n=5, confidence=0.95)  # container 20 % less throughput
    pct, lo, hi = ov.overhead_percent(fewer, higher_is_better=True)
    assert pct == pytest.approx(25.0)            # the host does 1/0.8 = 1.25 x the work
    assert lo == pytest.approx(100 / 0.9 - 100) and hi == pytest.approx(100 / 0.75 - 100)
    pct, lo, hi = ov.overhead_percent(ov.RatioCI(1.0, None, None, 1, 0.95), True)
    assert pct == 0.0 and lo is None and hi is None


def _report(samples_per_s, p50, imports_ms, gpu=None):
    marks, t = {}, 1.7e12
    for name, gap in zip(MARKS, [0, 50, imports_ms, 100, 200, 10, 900, 500]):
        t += gap
        marks[name] = t
    metrics = {"samples_per_s": samples_per_s, "step_time_p50_ms": p50, "step_time_p90_ms": p50 * 1.1,
               "tflops": samples_per_s * 1e-3}
    if gpu is not None:
        metrics.update(gpu_util_mean=gpu, gpu_util_max=gpu)
    return build_report(framework="pytorch", model="resnet18", marks_ms=marks, metrics=metrics,
                        config={"steps": 15, "batch_size": 32, "precision": "fp32", "image_size": 64, "data": "synthetic"})


def test_compare_pairs_reports_and_skips_metrics_nobody_measured():
    host = [_report(100.0, 320.0, 4000.0), _report(102.0, 313.0, 4100.0), _report(98.0, 326.0, 3900.0)]
    cont = [_report(95.0, 336.0, 4420.0), _report(97.0, 330.0, 4490.0), _report(93.0, 344.0, 4300.0)]
    rows = {r.metric: r for r in ov.compare(host, cont)}
    assert "gpu_util_mean" not in rows and "mem_util_max" not in rows  # null on a CPU: not compared
    assert rows["samples_per_s"].overhead_pct > 0 and rows["step_time_p50_ms"].overhead_pct > 0
    assert rows["imports_ms"].overhead_pct == pytest.approx(10.0, abs=0.2)
    assert rows["imports_ms"].low_pct < 10.0 < rows["imports_ms"].high_pct
    assert rows["process_to_first_step_ms"].n == 3
    assert rows["samples_per_s"].host_mean == pytest.approx(100.0)
    table = ov.format_table(list(rows.values()))
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["metric", "host", "container"]
    assert any(line.startswith("imports_ms (ms)") and "+10." in line for line in lines)


def test_single_pair_table_says_no_interval():
    rows = ov.compare([_report(100.0, 320.0, 4000.0, gpu=90.0)], [_report(100.0, 320.0, 4000.0, gpu=90.0)])
    assert {r.metric for r in rows} >= {"gpu_util_mean", "gpu_util_max"}
    assert "n/a (n < 2)" in ov.format_table(rows)
