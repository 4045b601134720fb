import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from startbench.localcluster.pullmodel import RESOLVE_SECONDS, PullModel, go_duration, pulled_message

MB = 1_000_000


def run_until_idle(model: PullModel, step: float = 0.01, limit: float = 10_000):
    finished = []
    t = model.now
    while model.next_finish() is not None:
        t = model.next_finish()
        finished += model.advance(t)
        assert t < limit
    return finished


def test_single_pull_takes_size_over_node_bandwidth_plus_resolve():
    model = PullModel(registry_bandwidth=1e12, default_node_bandwidth=100 * MB)
    model.enqueue("p", "n1", "img", 500 * MB, now=0.0)
    [done] = run_until_idle(model)
    assert done.finished_at == pytest.approx(5.0 + RESOLVE_SECONDS)
    assert done.started_at == 0.0


def test_pulls_on_one_node_are_serialized_and_the_second_waits():
    model = PullModel(registry_bandwidth=1e12, default_node_bandwidth=100 * MB)
    model.enqueue("a", "n1", "img-a", 100 * MB, now=0.0)
    model.enqueue("b", "n1", "img-b", 100 * MB, now=0.0)
    a, b = run_until_idle(model)
    assert a.key == "a" and b.key == "b"
    assert b.started_at == pytest.approx(a.finished_at)
    # The second pull's own duration equals the first's; its wait is reported separately.
    assert (b.finished_at - b.started_at) == pytest.approx(a.finished_at - a.started_at)
    assert (b.finished_at - b.queued_at) == pytest.approx(2 * (a.finished_at - a.started_at))


def test_registry_bandwidth_is_shared_by_a_pull_storm():
    nodes = [f"n{i}" for i in range(50)]
    model = PullModel(registry_bandwidth=1000 * MB, default_node_bandwidth=125 * MB)
    for node in nodes:
        model.enqueue(node, node, "img", 1000 * MB, now=0.0)
    finished = run_until_idle(model)
    alone = 1000 / 125 + RESOLVE_SECONDS
    # Fifty nodes share 1000 MB/s: each gets 20 MB/s instead of 125 MB/s.
    assert len(finished) == 50
    assert min(p.finished_at for p in finished) > 5 * alone
    assert max(p.finished_at for p in finished) == pytest.approx((1000 + RESOLVE_SECONDS * 125) * 50 / 1000, rel=1e-6)


def test_pull_speeds_up_when_others_finish():
    model = PullModel(registry_bandwidth=100 * MB, default_node_bandwidth=100 * MB)
    model.enqueue("small", "n1", "s", 10 * MB, now=0.0)
    model.enqueue("big", "n2", "b", 100 * MB, now=0.0)
    small, big = run_until_idle(model)
    assert small.key == "small"
    # Both run at 50 MB/s until the small one ends, then the big one gets all 100 MB/s.
    resolve = RESOLVE_SECONDS * 100 * MB
    t_small = (10 * MB + resolve) / (50 * MB)
    left = 100 * MB + resolve - 50 * MB * t_small
    assert big.finished_at == pytest.approx(t_small + left / (100 * MB))


def test_time_never_goes_backwards_and_sizes_are_not_negative():
    model = PullModel()
    model.advance(5.0)
    with pytest.raises(ValueError, match="backwards"):
        model.advance(4.0)
    with pytest.raises(ValueError, match="size"):
        model.enqueue("x", "n", "i", -1, now=5.0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2_000_000_000), st.floats(0, 30)), min_size=1, max_size=12))
def test_every_pull_finishes_once_and_no_earlier_than_alone(pulls):
    model = PullModel(registry_bandwidth=300 * MB, default_node_bandwidth=125 * MB)
    for i, (node, size, at) in enumerate(sorted(pulls, key=lambda p: p[2])):
        model.enqueue(str(i), f"n{node}", "img", size, now=max(at, model.now))
    finished = run_until_idle(model)
    assert sorted(p.key for p in finished) == sorted(str(i) for i in range(len(pulls)))
    for p in finished:
        assert p.finished_at - p.started_at >= (p.size_bytes / (125 * MB) + RESOLVE_SECONDS) * (1 - 1e-9)
        assert p.queued_at <= p.started_at <= p.finished_at


@pytest.mark.parametrize("seconds, text", [
    (0, "0s"), (0.85, "850ms"), (0.0015, "1.5ms"), (1.234, "1.234s"), (62.5, "1m2.5s"), (3600, "1h0m0s"),
    (3723.25, "1h2m3.25s"), (60, "1m0s"),
])
def test_go_duration_matches_go_time_duration_string(seconds, text):
    assert go_duration(seconds) == text


def test_pulled_message_is_the_kubelets_and_truncates_to_milliseconds():
    assert pulled_message("r/x:1", 1.2349, 1.5, 123) == (
        'Successfully pulled image "r/x:1" in 1.234s (1.5s including waiting). Image size: 123 bytes.')


@settings(max_examples=60, deadline=None)
@given(st.floats(1e3, 1e7), st.lists(st.integers(0, 100_000_000), min_size=1, max_size=6))
def test_advance_terminates_at_large_clock_values(start, sizes):
    # Regression: at t≈2000 s a pull's last bytes took less time than the clock could represent, and
    # advance() spun forever.
    model = PullModel(registry_bandwidth=1_250_000_000, default_node_bandwidth=125_000_000, now=start)
    for i, size in enumerate(sizes):
        model.enqueue(str(i), f"n{i % 2}", "img", size, now=start)
    finished = model.advance(start + 10_000)
    assert sorted(p.key for p in finished) == sorted(str(i) for i in range(len(sizes)))
