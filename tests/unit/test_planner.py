import re

import pytest
from hypothesis import given, settings, strategies as st

from startbench.core.contracts import is_simulated
from startbench.core.planner import PlanError, RunState, next_runs, plan, run_names, select_nodes
from startbench.core.spec import BenchmarkSpec

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def make_spec(**over):
    spec = {
        "images": [{"name": "torch-naive", "image": "127.0.0.1:5000/startbench/pytorch:naive", "framework": "pytorch"},
                   {"name": "torch-slim", "image": "127.0.0.1:5000/startbench/pytorch:slim", "framework": "pytorch"}],
        "nodes": {"selector": {"matchLabels": {"startbench.dev/pool": "gpu"}}, "maxNodes": 3},
    }
    spec.update(over)
    return BenchmarkSpec.from_dict(spec)


NODES = ["kwok-gpu-0", "kwok-gpu-1"]


def test_matrix_size_and_coordinates():
    runs = plan("b1", make_spec(repetitions=2), NODES)
    assert len(runs) == 2 * 2 * 2 * 2
    coords = {(r.image, r.node, r.cache, r.repetition) for r in runs}
    assert len(coords) == len(runs)
    assert [r.order for r in runs] == list(range(len(runs)))


def test_names_are_deterministic_unique_and_dns_labels():
    a = plan("b1", make_spec(), NODES)
    b = plan("b1", make_spec(), NODES)
    assert [r.name for r in a] == [r.name for r in b]
    assert len({r.name for r in a}) == len(a)
    assert all(DNS_LABEL.match(r.name) and len(r.name) <= 63 for r in a)
    assert a[0].name == "b1-torch-naive-n0-c1"


def test_warm_runs_follow_the_cold_run_on_the_same_node():
    runs = plan("b1", make_spec(), NODES)
    by_name = {r.name: r for r in runs}
    warm = [r for r in runs if r.cache == "warm"]
    assert warm
    for r in warm:
        cold = by_name[r.after]
        assert (cold.cache, cold.image, cold.node, cold.repetition) == ("cold", r.image, r.node, r.repetition)
        assert cold.order < r.order


def test_warm_only_adds_one_priming_run_per_image_and_node():
    runs = plan("b1", make_spec(cache="warm", repetitions=2), NODES)
    priming = [r for r in runs if r.priming]
    assert len(priming) == 2 * 2 and all(r.cache == "cold" for r in priming)
    assert all(r.order < min(w.order for w in runs if not w.priming) for r in priming)
    by_name = {r.name: r for r in runs}
    for r in runs:
        if not r.priming:
            assert r.cache == "warm" and by_name[r.after].priming and by_name[r.after].node == r.node


def test_cold_only_has_no_dependencies_and_purge_flag():
    runs = plan("b1", make_spec(cache="cold", purgeImageBeforeColdRun=True), NODES)
    assert all(r.after is None and r.purge_first for r in runs)
    assert not any(r.purge_first for r in plan("b1", make_spec(cache="cold"), NODES))


def test_long_names_fall_back_to_indexes_and_a_hash():
    long_bench = "a-very-long-benchmark-name-that-goes-on-and-on-and-on-for-ever-x"
    runs = plan(long_bench, make_spec(repetitions=100), [f"node-{i}" for i in range(3)])
    assert all(len(r.name) <= 63 and DNS_LABEL.match(r.name) for r in runs)
    assert len({r.name for r in runs}) == len(runs)
    other = plan(long_bench[:-1] + "y", make_spec(repetitions=100), [f"node-{i}" for i in range(3)])
    assert not {r.name for r in runs} & {r.name for r in other}


def test_sanitized_names_do_not_collide_across_benchmarks():
    a = {r.name for r in plan("a.b", make_spec(), NODES)}
    b = {r.name for r in plan("a-b", make_spec(), NODES)}
    assert not a & b


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-.", min_size=1, max_size=253),
       st.lists(st.from_regex(r"[a-z][a-z0-9-]{0,38}[a-z0-9]", fullmatch=True), min_size=1, max_size=16, unique=True),
       st.integers(1, 1000), st.integers(1, 100))
def test_run_names_always_valid_and_unique(bench, images, node_count, reps):
    coords = [(i, n, c, r) for i in range(len(images)) for n in {0, node_count - 1}
              for c in ("cold", "warm") for r in {0, 1, reps}]
    names = run_names(bench, images, node_count, coords)
    assert len(set(names)) == len(names)
    assert all(len(n) <= 63 and DNS_LABEL.match(n) for n in names)


def states_of(done=(), running=()):
    s = {n: RunState.DONE for n in done}
    s.update({n: RunState.RUNNING for n in running})
    return s


def test_sequential_respects_parallelism_dependencies_and_node_image_pairs():
    runs = plan("b1", make_spec(parallelism=3), NODES)
    first = next_runs(runs, {}, 3)
    # Only cold runs can start (the warm ones wait); one per (image, node) pair.
    assert [r.cache for r in first] == ["cold", "cold", "cold"]
    assert len({(r.image, r.node) for r in first}) == 3
    assert next_runs(runs, states_of(running=[r.name for r in first]), 3) == []
    # A finished cold run releases its warm run.
    done = first[0]
    after = next_runs(runs, states_of(done=[done.name], running=[r.name for r in first[1:]]), 3)
    assert len(after) == 1
    assert after[0].cache == "warm" and after[0].after == done.name


def test_sequential_runs_everything_eventually_and_never_exceeds_parallelism():
    runs = plan("b1", make_spec(parallelism=2, repetitions=2), NODES)
    states, started = {}, []
    while True:
        batch = next_runs(runs, states, 2)
        in_flight = [n for n, s in states.items() if s is RunState.RUNNING]
        assert len(in_flight) + len(batch) <= 2
        if not batch and not in_flight:
            break
        for r in batch:
            states[r.name] = RunState.RUNNING
            started.append(r)
        # finish the oldest in-flight run
        oldest = min((r for r in runs if states.get(r.name) is RunState.RUNNING), key=lambda r: r.order)
        states[oldest.name] = RunState.DONE
    assert sorted(r.name for r in started) == sorted(r.name for r in runs)
    position = {r.name: i for i, r in enumerate(started)}
    assert all(position[r.after] < position[r.name] for r in runs if r.after)


def test_fan_out_starts_whole_waves_only_when_idle():
    spec = make_spec(mode="fanOut", parallelism=3)
    nodes = ["n-a", "n-b", "n-c"]
    runs = plan("storm", spec, nodes)
    wave = next_runs(runs, {}, spec.parallelism, "fanOut")
    assert sorted(r.node for r in wave) == nodes
    assert len({(r.image, r.cache, r.repetition) for r in wave}) == 1
    assert next_runs(runs, states_of(running=[wave[0].name], done=[r.name for r in wave[1:]]), 3, "fanOut") == []
    second = next_runs(runs, states_of(done=[r.name for r in wave]), 3, "fanOut")
    assert [r.cache for r in second] == ["warm"] * 3
    assert {r.after for r in second} == {r.name for r in wave}


def test_fan_out_slices_a_wave_larger_than_parallelism():
    runs = plan("storm", make_spec(mode="fanOut", parallelism=3), ["a", "b", "c"])
    assert len(next_runs(runs, {}, 2, "fanOut")) == 2


def test_bad_scheduling_arguments():
    runs = plan("b1", make_spec(), NODES)
    with pytest.raises(ValueError, match="parallelism"):
        next_runs(runs, {}, 0)
    with pytest.raises(ValueError, match="mode"):
        next_runs(runs, {}, 1, "burst")
    with pytest.raises(PlanError):
        plan("b1", make_spec(), [])


def node(name, labels=None, gpus="8", taints=(), ready="True", unschedulable=False):
    n = {"metadata": {"name": name, "labels": {"startbench.dev/pool": "gpu", **(labels or {})}},
         "spec": {"taints": [dict(t) for t in taints], "unschedulable": unschedulable},
         "status": {"allocatable": {"nvidia.com/gpu": gpus, "cpu": "32"},
                    "conditions": [{"type": "Ready", "status": ready}]}}
    return n


GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
TOLERATE = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


def test_select_nodes_sorts_filters_and_truncates():
    spec = make_spec(nodes={"selector": {"matchLabels": {"startbench.dev/pool": "gpu"}}, "maxNodes": 2,
                            "tolerations": TOLERATE})
    nodes = [node("c", taints=[GPU_TAINT]), node("a"), node("b"), node("cpu-0", labels={"startbench.dev/pool": "cpu"}),
             node("d", ready="False"), node("e", unschedulable=True)]
    sel = select_nodes(spec, nodes)
    assert sel.nodes == ("a", "b")
    assert sel.matched == 5
    assert dict(sel.excluded) == {"d": "is not Ready", "e": "is cordoned (unschedulable)"}


def test_select_nodes_reads_snake_case_client_dicts():
    spec = make_spec(nodes={"selector": {"matchLabels": {"startbench.dev/pool": "gpu"}}})
    n = {"metadata": {"name": "a", "labels": {"startbench.dev/pool": "gpu"}},
         "spec": {"taints": None, "unschedulable": None},
         "status": {"allocatable": {"nvidia.com/gpu": "8"}, "conditions": [{"type": "Ready", "status": "True"}]}}
    assert select_nodes(spec, [n]).nodes == ("a",)


def test_no_matching_node_says_which_selector():
    spec = make_spec(nodes={"selector": {"matchLabels": {"startbench.dev/pool": "tpu"}}})
    with pytest.raises(PlanError, match=r"spec.nodes.selector: no node matches the selector 'startbench.dev/pool=tpu'"):
        select_nodes(spec, [node("a")])


def test_untolerated_taint_and_too_few_gpus_say_what_to_change():
    spec = make_spec(nodes={"selector": {"matchLabels": {"startbench.dev/pool": "gpu"}}, "gpusPerPod": 8})
    with pytest.raises(PlanError, match="add a toleration"):
        select_nodes(spec, [node("a", taints=[GPU_TAINT])])
    with pytest.raises(PlanError, match="lower gpusPerPod"):
        select_nodes(spec, [node("a", gpus="4")])


def test_match_expressions_select_like_the_api_server():
    spec = make_spec(nodes={"selector": {"matchExpressions": [
        {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["h100", "a100"]},
        {"key": "broken", "operator": "DoesNotExist"}]}})
    assert spec.nodes.label_selector == "node.kubernetes.io/instance-type in (h100,a100),!broken"
    nodes = [node("a", labels={"node.kubernetes.io/instance-type": "h100"}),
             node("b", labels={"node.kubernetes.io/instance-type": "t4"}),
             node("c", labels={"node.kubernetes.io/instance-type": "a100", "broken": "yes"})]
    assert select_nodes(spec, nodes).nodes == ("a",)


def test_is_simulated_reads_the_kwok_annotation():
    assert is_simulated({"kwok.x-k8s.io/node": "fake"})
    assert not is_simulated({})
    assert not is_simulated(None)
    assert not is_simulated(node("a")["metadata"].get("annotations"))
