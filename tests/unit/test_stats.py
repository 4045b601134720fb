import math
import statistics

import pytest
from hypothesis import given, strategies as st

from startbench.core.stats import QUANTILES, quantile, summarize

finite = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False)


def test_known_values_by_linear_interpolation():
    xs = [10.0, 20.0, 30.0, 40.0]
    # h = 3 * 0.5 = 1.5: halfway between 20 and 30.
    assert quantile(xs, 0.5) == 25.0
    # h = 3 * 0.9 = 2.7: 30 + 0.7 * 10.
    assert quantile(xs, 0.9) == pytest.approx(37.0)
    assert quantile(xs, 0.0) == 10.0
    assert quantile(xs, 1.0) == 40.0


def test_single_value_is_every_quantile():
    s = summarize([7.5])
    assert (s.count, s.min, s.p50, s.p90, s.p99, s.max) == (1, 7.5, 7.5, 7.5, 7.5, 7.5)


def test_no_values_is_no_summary_not_zero():
    assert summarize([]) is None
    assert summarize([None, None]) is None
    with pytest.raises(ValueError, match="no values"):
        quantile([], 0.5)


def test_none_values_are_skipped():
    s = summarize([None, 3.0, None, 1.0])
    assert (s.count, s.min, s.max) == (2, 1.0, 3.0)


@pytest.mark.parametrize("bad", [-0.1, 1.5, math.nan])
def test_q_out_of_range_is_refused(bad):
    with pytest.raises(ValueError):
        quantile([1.0], bad)


def test_nan_values_are_refused():
    with pytest.raises(ValueError, match="NaN"):
        quantile([1.0, math.nan], 0.5)


def test_unknown_statistic_name():
    with pytest.raises(KeyError, match="p50, p90, p99"):
        summarize([1.0]).get("p95")


@given(st.lists(finite, min_size=2, max_size=200))
def test_matches_the_standard_librarys_inclusive_method(xs):
    # statistics.quantiles(method="inclusive") is the same type-7 estimator (numpy's default), computed
    # independently: its cut points are the 1st..99th percentiles.
    cuts = statistics.quantiles(xs, n=100, method="inclusive")
    for i, cut in enumerate(cuts, start=1):
        assert quantile(xs, i / 100) == pytest.approx(cut, rel=1e-9, abs=1e-6)


@given(st.lists(finite, min_size=1, max_size=200))
def test_summary_is_ordered_and_within_range(xs):
    s = summarize(xs)
    assert s.count == len(xs)
    assert s.min == min(xs) and s.max == max(xs)
    assert s.min <= s.p50 <= s.p90 <= s.p99 <= s.max


@given(st.lists(finite, min_size=1, max_size=50), st.randoms())
def test_order_of_input_does_not_matter(xs, rnd):
    shuffled = list(xs)
    rnd.shuffle(shuffled)
    for q in QUANTILES.values():
        assert quantile(shuffled, q) == quantile(xs, q)
