"""The capacity model (pure): profiles learnt from run records, estimates, savings, and the CLI's arithmetic."""

from __future__ import annotations

import math
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from startbench.core import capacity
from startbench.core.capacity import CapacityError, pods_per_node, ImageProfile, Question, estimate, parse_bandwidth, profile, savings


def record(image: str, cache: str, *, pull_s: float = 0.0, size: int = 0, rest_ms: float = 3000.0,
           first_step: bool = True, result: str = "Succeeded", merged_pull: bool = False) -> dict:
    """A run record as the operator writes it: scheduling, the pull, create/start, then the in-pod phases."""
    phases = {"scheduling": {"ms": 100.0, "source": "watch"}}
    if pull_s:
        if merged_pull:
            phases["waiting_to_pull"] = {"ms": pull_s * 1000 + 50, "source": "event",
                                         "covers": ["waiting_to_pull", "pulling"]}
        else:
            phases["waiting_to_pull"] = {"ms": 50.0, "source": "event"}
            phases["pulling"] = {"ms": pull_s * 1000, "source": "event"}
    phases["create_start"] = {"ms": 400.0, "source": "event"}
    start_ms = sum(p["ms"] for p in phases.values())
    rec = {"image": image, "cache": cache, "result": result,
           "timeline": {"cacheObserved": "miss" if pull_s else "hit", "phases": phases, "totalMs": start_ms}}
    if first_step:
        phases["imports"] = {"ms": rest_ms - 500.0, "source": "report"}
        rec["timeToFirstStepMs"] = start_ms + rest_ms - 500.0
        rec["timeline"]["totalMs"] = rec["timeToFirstStepMs"]
    if pull_s:
        rec["pull"] = {"seconds": pull_s, "withWaitSeconds": pull_s + 0.05, "imageSizeBytes": size}
    return rec


NAIVE = [record("naive", "cold", pull_s=s, size=3_000_000_000) for s in (20.0, 30.0, 25.0)] + \
        [record("naive", "warm") for _ in range(3)]
SLIM = [record("slim", "cold", pull_s=s, size=1_000_000_000) for s in (8.0, 10.0, 12.0)] + \
       [record("slim", "warm", rest_ms=2500.0) for _ in range(3)]


def test_profile_learns_bandwidth_size_and_the_start_without_its_pull():
    p = profile("naive", NAIVE + SLIM)
    assert (p.cold_runs, p.warm_runs, p.endpoint) == (3, 3, "first step")
    assert p.pull_bytes == 3e9
    assert p.node_bandwidth == pytest.approx(3e9 / 25.0)  # the median of 3e9/20, 3e9/30, 3e9/25
    # The start without the pull: scheduling 0.1 + create/start 0.4 + in-pod 2.5 s, whatever the pull took.
    assert p.rest_p50_s == pytest.approx(3.0) and p.rest_p90_s == pytest.approx(3.0)
    assert p.warm_p50_s == pytest.approx(3.0)


def test_profile_counts_observed_cache_state_and_only_succeeded_runs():
    runs = [record("img", "warm", pull_s=10.0, size=10**9),  # asked warm, but the node had to pull: cold
            record("img", "cold", pull_s=1.0, size=10**9, result="Failed"),
            record("img", "cold", pull_s=5.0, size=10**9, merged_pull=True)]
    p = profile("img", runs)
    assert (p.cold_runs, p.warm_runs) == (2, 0)
    assert p.node_bandwidth == pytest.approx(statistics.median([1e8, 2e8]))
    assert p.rest_p50_s == pytest.approx(3.0)  # a pull merged with its wait is still taken out whole


def test_runs_without_a_first_step_are_measured_to_container_start():
    runs = [record("sim", "cold", pull_s=2.0, size=10**8, first_step=False),
            record("sim", "cold", pull_s=2.0, size=10**8)]  # one reached a first step: both go to container start
    p = profile("sim", runs)
    assert p.endpoint == "container start"
    assert p.rest_p50_s == pytest.approx(0.5)  # scheduling 0.1 + create/start 0.4


def test_no_successful_run_is_an_error_that_says_so():
    with pytest.raises(CapacityError, match="no run of image 'x' succeeded"):
        profile("x", [record("x", "cold", pull_s=1.0, size=1, result="Failed")])


def test_cold_estimate_is_node_bound_until_the_registry_is_shared_too_thin():
    p = ImageProfile("img", "first step", 3, 3, pull_bytes=2e9, node_bandwidth=1e8, rest_p50_s=4.0, rest_p90_s=6.0,
                     warm_p50_s=4.5, warm_p90_s=5.0)
    alone = estimate(p, Question(pods=16, nodes=10, pods_per_node=8))
    assert (alone.nodes_pulling, alone.pods_started, alone.pods_waiting) == (2, 16, 0)
    assert alone.pull_s == pytest.approx(20.0) and alone.limited_by == "node bandwidth"
    assert (alone.typical_s, alone.last_s) == (pytest.approx(24.0), pytest.approx(26.0))
    # 200 pods, 8 per node: 25 nodes pull at once from a 1 GB/s registry, 40 MB/s each.
    storm = estimate(p, Question(pods=200, nodes=50, pods_per_node=8, registry_bandwidth=1e9))
    assert storm.nodes_pulling == 25 and storm.limited_by == "registry bandwidth"
    assert storm.pull_rate == pytest.approx(4e7) and storm.pull_s == pytest.approx(50.0)
    # More pods than slots: the rest wait for a free slot and are not estimated.
    full = estimate(p, Question(pods=100, nodes=4, pods_per_node=8))
    assert (full.pods_started, full.pods_waiting, full.nodes_pulling) == (32, 68, 4)
    warm = estimate(p, Question(pods=16, nodes=10, pods_per_node=8), "warm")
    assert (warm.pull_s, warm.typical_s, warm.last_s) == (None, 4.5, 5.0)


def test_estimates_need_runs_of_the_cache_state_asked_for():
    cold_only = profile("naive", NAIVE[:3])
    with pytest.raises(CapacityError, match="no warm run"):
        estimate(cold_only, Question(1, 1), "warm")
    warm_only = profile("naive", NAIVE[3:])
    with pytest.raises(CapacityError, match="no cold run"):
        estimate(warm_only, Question(1, 1), "cold")
    with pytest.raises(CapacityError, match="cold or warm"):
        estimate(cold_only, Question(1, 1), "lukewarm")


@pytest.mark.parametrize("kwargs,match", [
    ({"pods": 0, "nodes": 1}, "pods must be"), ({"pods": 1, "nodes": -2}, "nodes must be"),
    ({"pods": 1, "nodes": 1, "pods_per_node": 1.5}, "pods per node must be"),
    ({"pods": 1, "nodes": 1, "registry_bandwidth": 0}, "registry bandwidth must be above 0"),
])
def test_questions_the_model_cannot_answer_say_what_is_wrong(kwargs, match):
    with pytest.raises(CapacityError, match=match):
        Question(**kwargs)


def test_the_slim_image_saves_its_smaller_pull():
    q = Question(pods=200, nodes=25, pods_per_node=8, registry_bandwidth=parse_bandwidth("10Gbit/s"))
    profiles = [profile("naive", NAIVE), profile("slim", SLIM)]
    estimates = [estimate(p, q, cache) for cache in ("cold", "warm") for p in profiles]
    by = {(e.image, e.cache): e for e in estimates}
    saved = {(s.cache, s.image, s.against): s for s in savings(estimates)}
    cold = saved[("cold", "slim", "naive")]
    assert cold.seconds == pytest.approx(by[("naive", "cold")].last_s - by[("slim", "cold")].last_s)
    assert 0 < cold.fraction < 1
    assert saved[("warm", "slim", "naive")].seconds == pytest.approx(0.5)
    text = capacity.answer(q, estimates)
    assert any(line.startswith("slim instead of naive, cold: saves about") for line in text)
    assert any("200 pods of naive, cold: each of 25 node(s) pulls it once" in line for line in text)
    doc = capacity.to_dict(q, profiles, estimates)
    assert doc["question"]["pods"] == 200 and len(doc["estimates"]) == 4 and doc["answer"] == text


@pytest.mark.parametrize("text,bytes_per_s", [
    ("10Gbit/s", 1.25e9), ("1.25GB/s", 1.25e9), ("800MiB/s", 800 * 2**20), ("125000000", 1.25e8),
    ("1Gbps", 1.25e8), ("100 MB/s", 1e8), ("2.5gbit", 3.125e8),
])
def test_bandwidths_are_read_in_bits_or_bytes(text, bytes_per_s):
    assert parse_bandwidth(text) == pytest.approx(bytes_per_s)


@pytest.mark.parametrize("text", ["fast", "10G", "-1", "0", ""])
def test_a_bandwidth_that_is_not_one_is_refused(text):
    with pytest.raises(CapacityError):
        parse_bandwidth(text)


def test_pods_per_node_from_the_benchmarks_nodes():
    assert pods_per_node([8, 8, 4], 1) == 4  # the smallest node decides
    assert pods_per_node([8], 3) == 2
    assert pods_per_node([8], 0) == 1 and pods_per_node([], 1) == 1
    assert pods_per_node([1], 8) == 1


profiles = st.builds(
    lambda size, bw, rest, extra: ImageProfile("img", "first step", 1, 1, pull_bytes=size, node_bandwidth=bw,
                                               rest_p50_s=rest, rest_p90_s=rest + extra),
    st.floats(1e6, 1e11), st.floats(1e6, 1e10), st.floats(0.0, 600.0), st.floats(0.0, 600.0))


@settings(max_examples=200, deadline=None)
@given(profiles, st.integers(1, 5000), st.integers(1, 1000), st.integers(1, 16), st.floats(1e6, 1e11))
def test_more_pods_or_less_registry_never_start_sooner(p, pods, nodes, per_node, registry):
    q = Question(pods, nodes, per_node, registry)
    e = estimate(p, q)
    assert e.pods_started + e.pods_waiting == pods and e.pods_started <= nodes * per_node
    assert e.nodes_pulling == math.ceil(e.pods_started / per_node) <= nodes
    assert e.last_s >= e.typical_s >= e.pull_s > 0
    assert estimate(p, Question(pods + 1, nodes, per_node, registry)).last_s >= e.last_s - 1e-9
    assert estimate(p, Question(pods, nodes, per_node, registry / 2)).last_s >= e.last_s - 1e-9
    assert estimate(p, Question(pods, nodes, per_node)).last_s <= e.last_s + 1e-9  # no registry limit
