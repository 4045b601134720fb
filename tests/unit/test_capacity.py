"""The capacity model (pure): profiles learnt from run records, estimates, savings, and the CLI's arithmetic."""

from __future__ import annotations

import json
import math
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from startbench.core import capacity
from startbench.core.capacity import CapacityError, pods_per_node, ImageProfile, Question, estimate, parse_bandwidth, profile, savings


def record(image: str, cache: str, *, pull_s: float = 0.0, size: int = 0, rest_ms: float = 3000.0,
           first_step: bool = True, result: str = "Succeeded", merged_pull: bool = False,
           after_ms: float | None = None) -> dict:
    """A run record as the operator writes it: scheduling, the pull, create/start, then the in-pod phases;
    with `after_ms`, creation and end times (the run ends that long after its last phase)."""
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
    if after_ms is not None:
        rec["createdMs"] = T0
        rec["finishedMs"] = T0 + rec["timeline"]["totalMs"] + after_ms
    return rec


T0 = 1_764_000_000_000.0


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
    # More pods than slots: the rest wait for a free slot (the total is test_more_pods_than_slots_...).
    full = estimate(p, Question(pods=100, nodes=4, pods_per_node=8, run_seconds=30.0))
    assert (full.pods_started, full.pods_waiting, full.nodes_pulling, full.waves) == (32, 68, 4, 4)
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
    lambda size, bw, rest, extra, run: ImageProfile("img", "first step", 1, 1, pull_bytes=size, node_bandwidth=bw,
                                                    rest_p50_s=rest, rest_p90_s=rest + extra,
                                                    run_p50_s=rest + extra + run),
    st.floats(1e6, 1e11), st.floats(1e6, 1e10), st.floats(0.0, 600.0), st.floats(0.0, 600.0),
    st.floats(0.0, 3600.0))


@settings(max_examples=200, deadline=None)
@given(profiles, st.integers(1, 5000), st.integers(1, 1000), st.integers(1, 16), st.floats(1e6, 1e11))
def test_more_pods_or_less_registry_never_start_sooner(p, pods, nodes, per_node, registry):
    q = Question(pods, nodes, per_node, registry)
    e = estimate(p, q)
    assert e.pods_started + e.pods_waiting == pods and e.pods_started <= nodes * per_node
    assert e.nodes_pulling == math.ceil(e.pods_started / per_node) <= nodes
    assert e.waves == math.ceil(pods / (nodes * per_node)) and sum(capacity.wave_pods(e)) == pods
    assert e.last_s >= e.first_last_s >= e.typical_s >= e.pull_s > 0
    points = capacity.curve(e)
    assert points[-1] == (pytest.approx(e.last_s), pods)
    assert all(a[0] <= b[0] + 1e-9 and a[1] <= b[1] for a, b in zip(points, points[1:]))
    assert estimate(p, Question(pods + 1, nodes, per_node, registry)).last_s >= e.last_s - 1e-9
    assert estimate(p, Question(pods, nodes, per_node, registry / 2)).last_s >= e.last_s - 1e-9
    assert estimate(p, Question(pods, nodes, per_node)).last_s <= e.last_s + 1e-9  # no registry limit


def test_more_pods_than_slots_start_in_waves_and_the_answer_has_a_total():
    """By hand: 100 pods on 4 nodes x 8 = 32 slots start in ceil(100 / 32) = 4 waves of 32, 32, 32 and 4 pods.
    Cold: the 4 nodes pull 2 GB at 100 MB/s each: 20 s. The first wave's last pods start at 20 + 6 (p90 rest) =
    26 s; its pods hold their slots 30 s (the run) plus their 20 s pull, so wave 1 is created at 50 s, wave 2 at
    80 s, wave 3 at 110 s; the image is on every node by then, so wave 3's last pods start 6 s (p90 rest) after
    their creation: 116 s in all. Warm: waves at 0, 30, 60, 90 s; the last start 5 s (warm p90) later: 95 s.
    With --run-seconds 600 instead of the measured 30 s: cold 20 + 3 x 600 + 6 = 1826 s."""
    p = ImageProfile("img", "first step", 3, 3, pull_bytes=2e9, node_bandwidth=1e8, rest_p50_s=4.0, rest_p90_s=6.0,
                     warm_p50_s=4.5, warm_p90_s=5.0, run_p50_s=30.0)
    q = Question(pods=100, nodes=4, pods_per_node=8)
    cold = estimate(p, q)
    assert (cold.waves, capacity.wave_pods(cold), cold.pull_s) == (4, [32, 32, 32, 4], pytest.approx(20.0))
    assert (cold.first_last_s, cold.last_s) == (pytest.approx(26.0), pytest.approx(116.0))
    assert (cold.run_s, cold.run_from) == (30.0, "measured")
    warm = estimate(p, q, "warm")
    assert warm.last_s == pytest.approx(95.0)
    given = estimate(p, Question(pods=100, nodes=4, pods_per_node=8, run_seconds=600.0))
    assert (given.last_s, given.run_from) == (pytest.approx(1826.0), "given")
    # The curve: nothing before the pull ends, all 100 by the total, wave 1 beginning when it is created.
    points = capacity.curve(cold)
    assert points[:2] == [(0.0, 0.0), (pytest.approx(20.0), 0.0)]
    assert (pytest.approx(50.0), 32) in points and points[-1] == (pytest.approx(116.0), 100)
    text = capacity.answer(q, [cold, given])
    assert text[0].startswith("100 pods of img, cold: 32 start at once (4 node(s) x 8)")
    assert "the other 68 start in 3 more wave(s)" in text[0] and "measured: the median of its runs" in text[0]
    assert "the last reach their first step in about 1.9 min" in text[0]  # 116 s
    assert "given: --run-seconds" in text[1] and "about 30.4 min" in text[1]


def test_the_run_duration_is_measured_from_creation_to_end_less_the_pull():
    """By hand: each cold run is 0.1 s scheduling + 0.05 s wait + the pull + 0.4 s create/start + 2.5 s imports,
    and ends `after_ms` later; less its pull phases (0.05 s + the pull) that is 3.0 s + after. Cold runs end 7, 9
    and 11 s after their first step (10, 12, 14 s without the pull); warm runs (no pull taken out) 3.0 + 5 s = 8 s
    each: the median of 8, 8, 8, 10, 12, 14 is 9 s."""
    runs = [record("img", "cold", pull_s=s, size=10**9, after_ms=a) for s, a in ((5.0, 7000.0), (6.0, 9000.0),
                                                                               (7.0, 11000.0))]
    runs += [record("img", "warm", after_ms=5000.0) for _ in range(3)]
    assert capacity.run_seconds(runs[0]) == pytest.approx(10.0)
    assert capacity.run_seconds(runs[3]) == pytest.approx(8.0)
    assert profile("img", runs).run_p50_s == pytest.approx(9.0)
    assert capacity.run_seconds(record("img", "warm")) is None  # no creation and end times


def test_more_pods_than_slots_without_a_run_duration_ask_for_one():
    p = profile("naive", NAIVE)  # these records carry no creation and end times
    with pytest.raises(CapacityError, match=r"200 pods outnumber the 16 slots .*--run-seconds"):
        estimate(p, Question(pods=200, nodes=2, pods_per_node=8))
    assert estimate(p, Question(pods=200, nodes=2, pods_per_node=8, run_seconds=60.0)).waves == 13
    with pytest.raises(CapacityError, match="ends before its pod starts"):
        estimate(p, Question(pods=200, nodes=2, pods_per_node=8, run_seconds=1.0))
    with pytest.raises(CapacityError, match="run duration must be above 0"):
        Question(pods=1, nodes=1, run_seconds=0)


class _IO:
    def allocatable_gpus(self, nodes):
        return [8 for _ in nodes]


def _bench(records):
    return {"metadata": {"name": "compare", "namespace": "team"},
            "spec": {"images": [{"name": "naive"}, {"name": "slim"}], "nodes": {"gpusPerPod": 1}},
            "status": {"nodes": ["n0", "n1"]}}


def test_the_command_answers_with_a_total_and_says_where_the_run_duration_came_from(monkeypatch, capsys):
    from startbench.cli import capacity as capacity_cli
    from startbench.cli import main as cli
    runs = [record("naive", "cold", pull_s=25.0, size=3_000_000_000, after_ms=27_000.0) for _ in range(3)]
    runs += [record("naive", "warm", after_ms=27_000.0) for _ in range(3)]
    monkeypatch.setattr(capacity_cli, "load", lambda args, command: (_IO(), "team", _bench(runs), runs))
    # 40 pods on the benchmark's 2 nodes x 8 GPUs: 16 slots, 3 waves; each run holds its slot 3 + 27 = 30 s.
    assert cli.main(["capacity", "compare", "--pods", "40", "--image", "naive"]) == 0
    out = capsys.readouterr().out
    assert "40 pods on 2 node(s), 8 per node; learnt from team/compare" in out
    assert "the other 24 start in 2 more wave(s) as earlier pods end, each pod holding its slot 30.0 s " \
           "(measured: the median of its runs, creation to end, less the pull)" in out
    assert cli.main(["capacity", "compare", "--pods", "40", "--image", "naive", "--run-seconds", "600",
                     "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    cold = next(e for e in doc["estimates"] if e["cache"] == "cold")
    # By hand: pull 25 s (the measured 120 MB/s), then 2 later waves of 600 s, then the p90 rest of 3 s.
    assert (cold["waves"], cold["run_from"], cold["last_s"]) == (3, "given", pytest.approx(25 + 2 * 600 + 3))
    # Records without creation and end times, and no --run-seconds: one line that says what to give.
    bare = [record("naive", "cold", pull_s=25.0, size=3_000_000_000)]
    monkeypatch.setattr(capacity_cli, "load", lambda args, command: (_IO(), "team", _bench(bare), bare))
    assert cli.main(["capacity", "compare", "--pods", "40", "--image", "naive", "--cache", "cold"]) == 1
    assert "give the run duration (--run-seconds)" in capsys.readouterr().err
