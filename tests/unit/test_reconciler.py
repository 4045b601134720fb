"""BenchmarkReconciler without a cluster: a FakeClusterIO, a FakeClock, a real Observer fed by a FakeKubelet,
real Metrics on their own registry and a Config from config.load. Each test drives step() as the Kopf daemon
would and asserts on what the cluster would hold: pods, records ConfigMaps, status, events."""

from __future__ import annotations

import json
import re

import pytest

from fakes import FakeClock, FakeClusterIO, FakeKubelet, Timing, make_node, workload_report
from startbench.core import status as st
from startbench.core.contracts import ANNOTATION_OBSERVATIONS, SIM_CACHED_IMAGES
from startbench.core.planner import plan
from startbench.core.spec import BenchmarkSpec
from startbench.runtime import config
from startbench.runtime.metrics import Metrics
from startbench.runtime.observer import Observer
from startbench.runtime.reconciler import BenchmarkReconciler

NS, NAME = "ns", "b"
POOL = "startbench.dev/pool"
IMAGE = "registry.example/startbench/pytorch:slim"
TIMING = Timing()
WRITES = {"create_pod", "delete_pod", "annotate_pod", "write_records", "patch_status", "event",
          "patch_node_annotations", "exec_in_pod"}


def spec(**fields) -> dict:
    """A Benchmark spec: one PyTorch image on nodes labelled pool=gpu, cold and warm, one repetition."""
    nodes = {"selector": {"matchLabels": {POOL: "gpu"}}, "maxNodes": 1, **fields.pop("nodes", {})}
    return {"images": [{"name": "pt", "image": IMAGE, "framework": "pytorch"}], "nodes": nodes,
            "cache": "both", "repetitions": 1, "parallelism": 4, **fields}


def gpu_nodes(count: int, simulated: bool = False, **kwargs) -> list[dict]:
    return [make_node(f"gpu-{i}", {POOL: "gpu", "nvidia.com/gpu.product": "NVIDIA-H100"}, simulated=simulated,
                      **kwargs) for i in range(count)]


class Bench:
    """One Benchmark, the fake cluster around it and the reconciler that drives it."""

    def __init__(self, spec_dict: dict, nodes: list[dict], env: dict | None = None, build_images=None,
                 describe_image=None):
        self.io = FakeClusterIO(nodes)
        self.io.add_benchmark({"apiVersion": "startbench.dev/v1alpha1", "kind": "Benchmark",
                               "metadata": {"name": NAME, "namespace": NS, "uid": "uid-b", "generation": 1},
                               "spec": spec_dict})
        self.clock = FakeClock()
        self.observer = Observer()
        self.kubelet = FakeKubelet(self.io, self.observer, self.clock)
        self.config = config.load(env or {})
        self.metrics = Metrics()
        self.build_images, self.describe_image = build_images, describe_image
        self.reconciler = self.new_reconciler()
        self.ran: set[str] = set()          # pods the kubelet has taken to their end
        self.created_at: dict[str, int] = {}  # run -> the step that created its pod
        self.recorded_at: dict[str, int] = {}  # run -> the step after which its record was in a ConfigMap
        self.in_flight: list[int] = []      # pods created and not recorded, after each step
        self.steps = 0

    def new_reconciler(self) -> BenchmarkReconciler:
        return BenchmarkReconciler(self.io, self.observer, self.metrics, self.config, build_images=self.build_images,
                                   describe_image=self.describe_image, clock_ms=self.clock)

    @property
    def status(self) -> dict:
        return self.io.benchmarks[(NS, NAME)]["status"]

    def records(self) -> dict[str, dict]:
        return {r["name"]: r for r in self.io.records(NS, NAME)}

    def plan(self):
        parsed = BenchmarkSpec.from_dict(self.io.benchmarks[(NS, NAME)]["spec"])
        images = {k: v["reference"] for k, v in (self.status.get("images") or {}).items()}
        return plan(NAME, parsed.with_built_images(images), self.status["nodes"])

    def step(self, sync: bool = True):
        """One reconcile step on the Benchmark as the API server holds it now; then the watches catch up."""
        result = self.reconciler.step(self.io.get_benchmark(NS, NAME))
        self.steps += 1
        records = self.records()
        for name in self.io.created_names(NS):
            self.created_at.setdefault(name, self.steps)
        for name in records:
            self.recorded_at.setdefault(name, self.steps)
        self.in_flight.append(len(set(self.io.created_names(NS)) - set(records)))
        if sync:
            self.kubelet.sync()
        return result

    def waiting(self) -> list[str]:
        """Pods created and not yet taken to their end by the kubelet, oldest first."""
        return [n for n in self.io.created_names(NS) if n not in self.ran and (NS, n) in self.io.pods]

    def drive(self, one_at_a_time: bool = False, how=lambda name: {}, max_steps: int = 100):
        """Step until the benchmark finishes; between steps the kubelet runs every waiting pod (or only the
        oldest), each with the keyword arguments how(name) gives FakeKubelet.run."""
        for _ in range(max_steps):
            result = self.step()
            if result.finished:
                return result
            names = self.waiting()[:1] if one_at_a_time else self.waiting()
            groups: dict[tuple, list[str]] = {}  # pods run alike run together
            for name in names:
                groups.setdefault(tuple(sorted(how(name).items())), []).append(name)
            for kwargs, group in groups.items():
                self.kubelet.run(group, **dict(kwargs))
                self.ran.update(group)
        raise AssertionError(f"not finished after {max_steps} steps: {self.status}")

    def writes(self) -> int:
        """Calls that change the cluster, so far."""
        return sum(1 for c in self.io.calls if c.method in WRITES)

    def events(self, reason: str | None = None) -> list[dict]:
        return [e for e in self.io.events if reason is None or e["reason"] == reason]

    def sample(self, metric: str, **labels) -> float:
        return self.metrics.registry.get_sample_value(metric, labels) or 0.0

    def total(self, sample: str) -> float:
        """A metric's samples of this name summed over every label set."""
        return sum(s.value for m in self.metrics.registry.collect() for s in m.samples if s.name == sample)


def warm_hits(name: str) -> dict:
    """Warm runs find the image on the node (their names end in -w<repetition>)."""
    return {"hit": True} if re.search(r"-w\d+$", name) else {}


def condition(status: dict, type_: str) -> dict:
    found = st.get_condition(status.get("conditions"), type_)
    assert found is not None, f"no condition {type_} in {status.get('conditions')}"
    return found


# --- ordering, parallelism, fan-out -----------------------------------------------------------------------------

def test_one_node_at_parallelism_one_starts_runs_in_plan_order_cold_before_warm():
    b = Bench(spec(images=[{"name": "pt", "image": IMAGE, "framework": "pytorch"},
                           {"name": "jx", "image": "registry.example/startbench/jax:slim", "framework": "jax"}],
                   repetitions=2, parallelism=1), gpu_nodes(1))
    b.drive(how=warm_hits)
    planned = [r.name for r in b.plan()]
    assert len(planned) == 8
    assert b.io.created_names() == planned
    assert max(b.in_flight) == 1


def test_warm_runs_start_only_after_their_cold_run_is_recorded_and_each_node_follows_plan_order():
    b = Bench(spec(nodes={"maxNodes": 2}, repetitions=2, parallelism=4), gpu_nodes(3))
    b.drive(how=warm_hits)
    runs = b.plan()
    assert b.status["nodes"] == ["gpu-0", "gpu-1"]
    assert sorted(b.io.created_names()) == sorted(r.name for r in runs)
    assert len(b.io.created) == len(set(b.io.created))
    for run in runs:
        if run.after is not None:
            assert b.recorded_at[run.after] <= b.created_at[run.name], f"{run.name} started before {run.after} ended"
            assert b.created_at[run.after] < b.created_at[run.name]
    for node in ("gpu-0", "gpu-1"):
        on_node = [r.name for r in runs if r.node == node]
        assert [n for n in b.io.created_names() if n in on_node] == on_node
    # Both nodes worked at once: the first step started the cold run on each.
    assert [n for n, s in b.created_at.items() if s == 1] == [runs[0].name, runs[1].name]


@pytest.mark.parametrize("spec_parallelism, env, limit", [
    (2, {}, 2),
    (4, {"STARTBENCH_MAX_PARALLEL_PODS": "1"}, 1),
])
def test_never_more_pods_in_flight_than_parallelism_or_the_operators_cap(spec_parallelism, env, limit):
    b = Bench(spec(nodes={"maxNodes": 4}, cache="cold", repetitions=2, parallelism=spec_parallelism),
              gpu_nodes(4), env=env)
    final = b.drive(one_at_a_time=True)
    assert max(b.in_flight) == limit  # the limit was reached, and never passed
    assert final.status["succeeded"] == 8
    running = [p["status"]["running"] for p in b.io.calls_to("patch_status") if "running" in p["status"]]
    assert running and max(running) == limit


def test_fan_out_starts_a_wave_on_every_node_at_once_and_the_next_waits_for_all_of_it():
    b = Bench(spec(nodes={"maxNodes": 3}, mode="fanOut", parallelism=3), gpu_nodes(3))
    b.step()
    cold = b.io.created_names()
    assert len(cold) == 3 and all(n.endswith("-c1") for n in cold)
    b.kubelet.run(cold[:2])
    b.step()
    assert b.io.created_names() == cold, "the warm wave started before the cold wave ended"
    assert set(b.records()) == set(cold[:2])
    b.kubelet.run(cold[2:])
    b.step()
    warm = b.io.created_names()[3:]
    assert len(warm) == 3 and all(n.endswith("-w1") for n in warm)
    assert {b.created_at[n] for n in warm} == {3}
    b.kubelet.run(warm, hit=True)
    assert b.step().finished and b.status["phase"] == st.SUCCEEDED


def test_a_step_before_the_watch_has_seen_new_pods_does_not_start_them_again_or_more_runs():
    b = Bench(spec(nodes={"maxNodes": 2}, cache="cold", repetitions=2, parallelism=2), gpu_nodes(2))
    b.step(sync=False)
    b.step(sync=False)  # the pod watch lags: the runs created a step ago are still in flight
    assert b.io.count("create_pod") == 2 and b.status["running"] == 2
    b.kubelet.sync()
    assert b.drive().status["succeeded"] == 4
    assert len(b.io.created) == b.io.count("create_pod") == 4


def test_nodes_are_chosen_once_and_a_node_that_joins_later_changes_nothing():
    b = Bench(spec(nodes={"maxNodes": 2}, cache="cold", repetitions=2), gpu_nodes(2))
    b.step()
    b.io.add_node(make_node("gpu-00", {POOL: "gpu"}))  # sorts first: a fresh choice would take it
    b.reconciler = b.new_reconciler()
    assert b.drive().status["succeeded"] == 4
    assert b.status["nodes"] == ["gpu-0", "gpu-1"]
    assert b.io.count("list_nodes") == 1 and len(b.events("Planned")) == 1
    assert {b.kubelet.last[(NS, n)]["spec"]["nodeName"] for n in b.io.created_names()} == {"gpu-0", "gpu-1"}


def test_the_planned_event_counts_the_runs_of_the_plan():
    b = Bench(spec(nodes={"maxNodes": 3}, cache="warm"), gpu_nodes(2))  # 2 priming and 2 warm runs
    b.step()
    (planned,) = b.events("Planned")
    assert planned["message"].startswith(f"{len(b.plan())} runs over 2 node(s)")


# --- a restart ---------------------------------------------------------------------------------------------------

def test_a_new_reconciler_on_the_same_cluster_creates_no_pod_twice_and_records_each_run_once():
    b = Bench(spec(nodes={"maxNodes": 2}, repetitions=2, parallelism=4), gpu_nodes(2))
    b.step()
    b.kubelet.run(b.waiting()[:1])          # gpu-0's cold run ends, gpu-1's is still running
    b.ran.update(b.io.created_names()[:1])
    b.step()
    before = b.records()
    in_flight = set(b.io.created_names()) - set(before)
    assert before and in_flight, "the restart should come with runs recorded and runs in flight"
    b.reconciler = b.new_reconciler()        # the daemon restarts: nothing carried over but the cluster
    final = b.drive(how=warm_hits)
    assert final.status["succeeded"] == 8
    assert sorted(b.io.created_names()) == sorted(r.name for r in b.plan())
    assert len(b.io.created) == len(set(b.io.created))
    for call in b.io.calls_to("create_pod"):
        assert (NS, call["name"]) in b.io.created
    assert [c["name"] for c in b.io.calls_to("create_pod")].count(next(iter(in_flight))) == 1
    after = b.records()
    assert {k: after[k] for k in before} == before  # recorded before the restart: not recorded again
    assert b.sample("startbench_runs_total", benchmark=NAME, result="Succeeded", reason="") == 8


def test_a_restarted_operator_resumes_from_the_observations_kept_on_the_pod():
    b = Bench(spec(cache="cold"), gpu_nodes(1))
    b.step()
    (name,) = b.io.created_names()
    created = b.clock()
    b.clock.advance(500)
    b.kubelet.schedule(name)
    b.step()  # keeps what it saw on the pod
    assert json.loads(b.io.pods[(NS, name)]["metadata"]["annotations"][ANNOTATION_OBSERVATIONS])[
        "scheduled_ms"] == created + 500
    b.clock.advance(s=60)  # the operator is down for a minute
    b.observer = Observer()
    b.kubelet.relist(b.observer)
    b.metrics = Metrics()
    b.reconciler = b.new_reconciler()
    b.step()
    assert b.io.count("create_pod") == 1
    b.kubelet.pulling(name)
    b.clock.advance(2000)
    b.kubelet.pulled(name, seconds=2.0)
    b.kubelet.running(name)
    b.clock.advance(5000)
    b.kubelet.terminated(name, message=workload_report(b.clock() - 5000 - TIMING.running))
    assert b.step().finished
    record = b.records()[name]
    assert record["result"] == st.SUCCEEDED
    assert record["createdMs"] == created
    assert record["timeline"]["phases"]["scheduling"]["ms"] == 500.0  # not the minute the operator was away


def test_a_restart_before_the_pod_watch_has_listed_the_pods_does_not_purge_a_started_run_again():
    nodes = gpu_nodes(1, simulated=True, annotations={SIM_CACHED_IMAGES: json.dumps([IMAGE])})
    b = Bench(spec(purgeImageBeforeColdRun=True), nodes)
    b.step()
    assert b.io.count("patch_node_annotations") == 1 and len(b.io.created) == 1
    b.kubelet.schedule(b.io.created_names()[0])
    b.io.nodes["gpu-0"]["metadata"]["annotations"][SIM_CACHED_IMAGES] = json.dumps([IMAGE])  # pulled again
    b.observer = Observer()  # the operator restarts; its pod watch has not listed anything yet
    b.kubelet.observer = b.observer
    b.reconciler = b.new_reconciler()
    b.step(sync=False)
    assert json.loads(b.io.nodes["gpu-0"]["metadata"]["annotations"][SIM_CACHED_IMAGES]) == [IMAGE]


def test_a_step_cut_short_after_creating_a_pod_lists_the_pods_again_before_it_purges_or_creates():
    """The API server goes away while a pod is created: the pod exists, its answer never came, and the pod watch
    (cut off too) never told. The next step must not take the run for pending: purge the image from under the
    pod's pull and create it again."""
    nodes = gpu_nodes(1, simulated=True, annotations={SIM_CACHED_IMAGES: json.dumps([IMAGE])})
    b = Bench(spec(purgeImageBeforeColdRun=True, cache="cold"), nodes)
    create = b.io.create_pod

    def answer_lost(namespace, manifest):
        create(namespace, manifest)
        raise ConnectionResetError("the API server went away before it answered")
    b.io.create_pod = answer_lost
    with pytest.raises(ConnectionResetError):
        b.step(sync=False)
    b.io.create_pod = create
    (name,) = b.io.created_names()
    b.io.pods[(NS, name)]["spec"]["nodeName"] = "gpu-0"  # the pod goes on; its pull put the image back
    b.io.nodes["gpu-0"]["metadata"]["annotations"][SIM_CACHED_IMAGES] = json.dumps([IMAGE])
    b.step(sync=False)
    assert json.loads(b.io.nodes["gpu-0"]["metadata"]["annotations"][SIM_CACHED_IMAGES]) == [IMAGE]
    assert b.io.count("patch_node_annotations") == 1 and b.io.count("create_pod") == 1
    assert b.status["running"] == 1


def test_a_pod_deleted_while_the_watch_was_down_is_known_gone_once_the_pods_are_listed_again():
    b = Bench(spec(cache="cold", repetitions=2, nodes={"maxNodes": 2}), gpu_nodes(2))
    b.step()
    first, second = b.io.created_names()
    b.kubelet.schedule(first)
    b.kubelet.schedule(second)
    annotate = b.io.annotate_pod

    def api_gone(namespace, name, annotations):
        raise ConnectionResetError("the API server went away")
    b.io.annotate_pod = api_gone  # the step keeps what it saw of the pods: and fails there
    with pytest.raises(ConnectionResetError):
        b.step(sync=False)
    b.io.annotate_pod = annotate
    b.io.pods.pop((NS, second))  # kubectl delete pod, while the watch was down: no DELETED ever comes
    b.step(sync=False)
    assert b.records()[second]["reason"] == "PodDeleted"
    assert first not in b.records()


# --- failures that end the benchmark ---------------------------------------------------------------------------

def _assert_failed(b: Bench, reason: str, words: str) -> None:
    assert b.status["phase"] == st.FAILED
    failed = condition(b.status, st.COND_FAILED)
    assert (failed["status"], failed["reason"]) == ("True", reason)
    assert words in failed["message"] and words in b.status["message"]
    assert [(e["type"], e["reason"]) for e in b.events() if e["type"] == "Warning"] == [("Warning", reason)]
    assert b.io.created == []
    assert b.status.get("finishedAt")


def test_an_invalid_spec_fails_the_benchmark_and_says_which_field():
    b = Bench(spec(images=[]), gpu_nodes(1))
    assert b.step().finished
    _assert_failed(b, "InvalidSpec", "spec.images")
    assert b.io.count("list_nodes") == 0
    writes = b.writes()
    assert b.step().finished and b.writes() == writes  # a finished benchmark is only read, not changed


@pytest.mark.parametrize("nodes, words", [
    (gpu_nodes(2, ready=False), "is not Ready"),
    ([make_node("cpu-0", {POOL: "cpu"})], "no node matches"),
    (gpu_nodes(1, gpus=0), "allocatable nvidia.com/gpu"),
])
def test_no_usable_node_fails_the_benchmark_and_says_why(nodes, words):
    b = Bench(spec(), nodes)
    assert b.step().finished
    _assert_failed(b, "NoUsableNodes", words)


def test_build_entries_without_a_builder_fail_as_image_build_unavailable():
    b = Bench(spec(images=[{"name": "pt", "build": {"framework": "pytorch", "variant": "slim"}}]), gpu_nodes(1))
    assert b.step().finished
    _assert_failed(b, "ImageBuildUnavailable", "STARTBENCH_DOCKER_HOST")


def test_a_builder_that_raises_fails_the_benchmark_in_its_own_words():
    def build(ref, spec_, progress):
        raise RuntimeError("docker build of pytorch/slim failed: pip could not reach the index")

    b = Bench(spec(images=[{"name": "pt", "build": {"framework": "pytorch", "variant": "slim"}}]), gpu_nodes(1),
              build_images=build)
    assert b.step().finished
    _assert_failed(b, "ImageBuildFailed", "pip could not reach the index")
    assert any(p["status"].get("phase") == st.BUILDING for p in b.io.calls_to("patch_status"))


def test_built_images_are_built_once_and_their_reference_is_what_the_pods_run():
    built = []
    reference = "registry.local:5000/startbench/pytorch:slim-cpu-1a2b3c"

    def build(ref, spec_, progress):
        built.append([e.name for e in spec_.unbuilt_images])
        return {"pt": {"reference": reference, "framework": "pytorch", "variant": "slim", "compressedBytes": 700,
                       "uncompressedBytes": 2100, "layers": 9}}

    b = Bench(spec(images=[{"name": "pt", "build": {"framework": "pytorch", "variant": "slim"}}]), gpu_nodes(1),
              build_images=build)
    b.step()
    b.reconciler = b.new_reconciler()  # a restart after the build: status.images keeps it
    b.drive(how=warm_hits)
    assert built == [["pt"]]
    assert b.status["images"]["pt"]["reference"] == reference
    images = {c["manifest"]["spec"]["containers"][0]["image"] for c in b.io.calls_to("create_pod")}
    assert images == {reference}
    assert b.sample("startbench_image_size_bytes", benchmark=NAME, image="pt", framework="pytorch",
                    variant="slim", kind="compressed") == 700
    assert b.status["phase"] == st.SUCCEEDED


# --- failures of single runs -----------------------------------------------------------------------------------

def test_a_refused_pod_is_recorded_as_pod_rejected_and_the_other_runs_go_on():
    b = Bench(spec(nodes={"maxNodes": 2}, cache="cold"), gpu_nodes(2))
    refused = plan(NAME, BenchmarkSpec.from_dict(spec(nodes={"maxNodes": 2}, cache="cold")), ["gpu-0", "gpu-1"])[1].name
    b.io.refusals[refused] = "the API server refused the pod (403 Forbidden): exceeded quota: gpu-quota"
    b.step()
    record = b.records()[refused]
    assert b.recorded_at[refused] == 1  # recorded in the step that tried to create it
    assert (record["result"], record["reason"]) == (st.FAILED, "PodRejected")
    assert "exceeded quota" in record["message"] and "raise the quota" in record["message"]
    assert (NS, refused) not in b.io.created
    final = b.drive()
    assert final.status["phase"] == st.PARTIALLY_FAILED
    assert (final.status["succeeded"], final.status["failed"]) == (1, 1)
    assert [e["type"] for e in b.events("RunPodRejected")] == ["Warning"]
    assert b.sample("startbench_runs_total", benchmark=NAME, result="Failed", reason="PodRejected") == 1


def test_a_cold_run_whose_purge_fails_is_recorded_and_its_warm_run_still_runs():
    b = Bench(spec(purgeImageBeforeColdRun=True), gpu_nodes(1))  # a real node, and no purge agent configured
    b.step()
    cold, warm = (r.name for r in b.plan())
    record = b.records()[cold]
    assert (record["result"], record["reason"]) == (st.FAILED, "PurgeFailed")
    assert "cachePurge.enabled=true" in record["message"] and "gpu-0" in record["message"]
    assert b.io.created == []
    final = b.drive(how=warm_hits)
    assert b.io.created_names() == [warm]
    assert final.status["phase"] == st.PARTIALLY_FAILED
    assert b.io.count("exec_in_pod") == 0


def test_a_cold_run_on_a_simulated_node_first_removes_the_image_from_the_nodes_cache():
    nodes = gpu_nodes(1, simulated=True, annotations={SIM_CACHED_IMAGES: json.dumps([IMAGE, "other.example/x:1"])})
    b = Bench(spec(purgeImageBeforeColdRun=True, cache="cold"), nodes)
    b.io.patch_conflicts = 1  # the pull simulator changes the node meanwhile: read again, patch again
    b.step()
    assert json.loads(b.io.nodes["gpu-0"]["metadata"]["annotations"][SIM_CACHED_IMAGES]) == ["other.example/x:1"]
    methods = [c.method for c in b.io.calls if c.method in ("patch_node_annotations", "create_pod")]
    assert methods == ["patch_node_annotations", "patch_node_annotations", "create_pod"]
    final = b.drive(how=lambda name: {"report": False})
    assert final.status["phase"] == st.SUCCEEDED


def test_a_cold_run_on_a_real_node_removes_the_image_through_the_purge_agent():
    b = Bench(spec(purgeImageBeforeColdRun=True, cache="cold"), gpu_nodes(1),
              env={"STARTBENCH_PURGE_NAMESPACE": "startbench"})
    b.io.purge_agents[("startbench", "gpu-0")] = ["startbench-cache-purge-x1"]
    digest = "sha256:" + "c" * 64
    b.io.exec_results = [(0, f"REF TYPE DIGEST\n{IMAGE} application/vnd.oci.image.manifest.v1+json {digest}\n", ""),
                         (0, "", "")]
    b.step()
    ls, rm = b.io.calls_to("exec_in_pod")
    assert ls["pod"] == rm["pod"] == "startbench-cache-purge-x1"
    assert ls["command"][-2:] == ["images", "ls"] and rm["command"][-3:] == ["rm", "--sync", IMAGE]
    assert b.io.created_names() == [b.plan()[0].name]


def test_a_run_that_never_schedules_times_out_its_pod_goes_and_the_next_run_starts():
    b = Bench(spec(nodes={"maxNodes": 1}, cache="cold", repetitions=2, runTimeoutSeconds=30,
                   finishedPods={"keep": "all"}), gpu_nodes(1))
    b.step()
    (first,) = b.io.created_names()
    b.kubelet.unschedulable(first)
    b.clock.advance(s=29)
    b.step()
    assert not b.records()
    b.clock.advance(s=2)
    b.step()
    record = b.records()[first]
    assert (record["result"], record["reason"]) == (st.FAILED, "Unschedulable")
    assert "Insufficient nvidia.com/gpu" in record["message"]
    assert (NS, first) in b.io.deleted  # a pending pod holds a node's queue: it goes whatever finishedPods says
    assert len(b.io.created) == 2 and b.created_at[b.io.created_names()[1]] == 3


def test_a_pod_deleted_by_someone_else_is_recorded_as_pod_deleted():
    b = Bench(spec(cache="cold"), gpu_nodes(1))
    b.step()
    (name,) = b.io.created_names()
    b.kubelet.schedule(name)
    b.io.delete_pod(NS, name)  # kubectl delete pod
    b.kubelet.sync()
    assert b.step().finished
    assert b.records()[name]["reason"] == "PodDeleted"
    assert b.status["phase"] == st.FAILED


def test_every_run_failing_fails_the_benchmark_with_the_first_runs_reason():
    b = Bench(spec(cache="cold", nodes={"maxNodes": 2}), gpu_nodes(2))
    b.step()
    for name in b.io.created_names():
        b.kubelet.pull_fails(name)
    assert b.step().finished
    assert b.status["phase"] == st.FAILED
    failed = condition(b.status, st.COND_FAILED)
    assert (failed["status"], failed["reason"]) == ("True", "AllRunsFailed")
    assert "ErrImagePull" in failed["message"]
    assert [e["type"] for e in b.events("RunErrImagePull")] == ["Warning", "Warning"]
    finish = b.events("BenchmarkFailed")
    assert len(finish) == 1 and finish[0]["type"] == "Warning" and "0 of 2 runs succeeded" in finish[0]["message"]


# --- records, pods, status ---------------------------------------------------------------------------------------

def test_runs_ending_in_the_same_step_are_written_in_one_records_write():
    b = Bench(spec(nodes={"maxNodes": 3}, cache="cold", parallelism=3), gpu_nodes(3))
    b.step()
    assert b.io.count("write_records") == 0  # nothing ended yet
    names = b.io.created_names()
    assert len(names) == 3
    b.kubelet.run(names)
    b.step()
    (write,) = b.io.calls_to("write_records")
    written = {r["name"] for chunk in write["chunks"] for r in json.loads(chunk)}
    assert written == set(names)
    assert b.status["recordsConfigMaps"] == ["b-records-0"]
    b.step()
    assert b.io.count("write_records") == 1  # nothing new: nothing written


def test_records_are_written_before_the_pods_they_describe_are_deleted():
    b = Bench(spec(nodes={"maxNodes": 2}, cache="cold", finishedPods={"keep": "none"}), gpu_nodes(2))
    b.drive()
    written: set[str] = set()
    deleted = []
    for call in b.io.calls:
        if call.method == "write_records":
            written |= {r["name"] for chunk in call.args["chunks"] for r in json.loads(chunk)}
        elif call.method == "delete_pod":
            assert call.args["name"] in written, f"pod {call.args['name']} deleted before its record was written"
            deleted.append(call.args["name"])
    assert sorted(deleted) == sorted(b.io.created_names())


@pytest.mark.parametrize("keep, deleted", [("none", {"ok", "bad"}), ("failed", {"ok"}), ("all", set())])
def test_pods_of_recorded_runs_are_deleted_as_finished_pods_keep_says(keep, deleted):
    b = Bench(spec(nodes={"maxNodes": 2}, cache="cold", finishedPods={"keep": keep}), gpu_nodes(2))
    b.step()
    ok, bad = b.io.created_names()
    b.kubelet.run([ok])
    b.kubelet.run([bad], exit_code=1, ok=False)
    final = b.step()
    assert final.finished and final.status["phase"] == st.PARTIALLY_FAILED
    assert b.records()[bad]["reason"] == "WorkloadFailed"
    names = {"ok": ok, "bad": bad}
    assert {n for n, pod in names.items() if (NS, pod) in b.io.deleted} == deleted
    assert {n for n, pod in names.items() if (NS, pod) in b.io.pods} == {"ok", "bad"} - deleted


def test_pods_kept_with_a_ttl_are_deleted_once_the_ttl_has_passed_after_the_benchmark_finished():
    b = Bench(spec(cache="cold", finishedPods={"keep": "all", "ttlSeconds": 60}), gpu_nodes(1))
    b.drive()
    (name,) = b.io.created_names()
    assert (NS, name) in b.io.pods  # kept for now
    b.clock.advance(s=120)
    b.reconciler = b.new_reconciler()  # an operator restart starts the daemon again
    b.step()
    assert (NS, name) not in b.io.pods


@pytest.mark.parametrize("max_seconds, met, reason, event_type", [
    (60, "True", "AllMet", "Normal"),
    (5, "False", "ThresholdExceeded", "Warning"),
])
def test_final_status_conditions_and_finish_event(max_seconds, met, reason, event_type):
    b = Bench(spec(nodes={"maxNodes": 2}, thresholds=[
        {"metric": "timeToFirstStep", "quantile": "p50", "maxSeconds": max_seconds}]), gpu_nodes(2))
    final = b.drive(how=warm_hits)
    s = b.status
    assert final.finished and final.status["phase"] == s["phase"] == st.SUCCEEDED
    counts = (s["progress"], s["total"], s["succeeded"], s["failed"], s["running"], s["pending"])
    assert counts == ("4/4", 4, 4, 0, 0, 0)
    assert s["p50TimeToFirstStepSeconds"] == TIMING.first_step / 1000.0
    assert s["finishedAt"] and s["startedAt"] and s["nodes"] == ["gpu-0", "gpu-1"]
    assert s["recordsConfigMaps"] == ["b-records-0"]
    assert condition(s, st.COND_COMPLETE)["status"] == "True"
    assert condition(s, st.COND_COMPLETE)["reason"] == st.SUCCEEDED
    running, thresholds = condition(s, st.COND_RUNNING), condition(s, st.COND_THRESHOLDS)
    assert (running["status"], running["reason"]) == ("False", "AllRunsEnded")
    assert (thresholds["status"], thresholds["reason"]) == (met, reason)
    caches = {(x["cache"], x["count"]) for x in s["summaries"] if x["metric"] == "timeToFirstStep"}
    assert caches == {("miss", 2), ("hit", 2)}
    records = b.records()
    assert all(r["timeToFirstStepMs"] == TIMING.first_step for r in records.values())
    observed = {run.cache: set() for run in b.plan()}
    for run in b.plan():
        observed[run.cache].add(records[run.name]["timeline"]["cacheObserved"])
    assert observed == {"cold": {"miss"}, "warm": {"hit"}}
    finish = b.events("BenchmarkSucceeded")
    assert len(finish) == 1 and finish[0]["type"] == "Normal"
    assert finish[0]["message"] == "4 of 4 runs succeeded, p50 time to first step 6.00s"
    assert [e["type"] for e in b.events(reason)] == [event_type]
    assert b.sample("startbench_time_to_first_step_seconds_count", benchmark=NAME, image="pt", framework="pytorch",
                    variant="custom", node="gpu-0", gpu_product="NVIDIA-H100", cache="hit") == 1
    assert b.sample("startbench_training_samples_per_second", benchmark=NAME, image="pt", framework="pytorch",
                    model="resnet18", node="gpu-1") == 250.0
    writes = b.writes()
    assert b.step().finished and b.writes() == writes


def test_simulated_nodes_end_runs_at_container_start_without_a_first_step():
    b = Bench(spec(nodes={"maxNodes": 2}), gpu_nodes(2, simulated=True))
    final = b.drive(how=lambda name: {"report": False, **warm_hits(name)})
    assert final.status["phase"] == st.SUCCEEDED and final.status["succeeded"] == 4
    for record in b.records().values():
        assert record["timeline"]["end"] == "container_started"
        assert "timeToFirstStepMs" not in record
        assert "simulated node (KWOK)" in record["message"]
        assert record["timeline"]["totalMs"] == TIMING.running
    assert final.status["p50TimeToFirstStepSeconds"] is None
    assert b.events("BenchmarkSucceeded")[0]["message"] == "4 of 4 runs succeeded"
    assert b.sample("startbench_runs_total", benchmark=NAME, result="Succeeded", reason="") == 4
    assert b.total("startbench_time_to_first_step_seconds_count") == 0
    assert b.total("startbench_phase_seconds_count") > 0


# --- cache evidence ---------------------------------------------------------------------------------------------

def test_each_pod_carries_the_nodes_cache_evidence_so_a_repeated_cold_pull_is_not_taken_for_a_download():
    """Three cold runs on one node without a purge: the kubelet's list (status.images) is stale right after a pull,
    so the second and third pods name the run that got the image there; their pulls are revalidations, and only
    the first one's throughput is measured."""
    b = Bench(spec(cache="cold", repetitions=3, parallelism=1), gpu_nodes(1))
    b.drive(one_at_a_time=True)
    records = sorted(b.records().values(), key=lambda r: r["order"])
    assert [r["cache"] for r in records] == ["miss", "revalidated", "revalidated"]
    assert [r["timeline"]["cacheEvidence"].get("pulledBy") for r in records] == [
        None, records[0]["name"], records[1]["name"]]
    created = [c["manifest"] for c in b.io.calls_to("create_pod")]
    assert [m["metadata"]["annotations"]["startbench.dev/image-on-node"] for m in created] == ["false", "true", "true"]
    assert b.sample("startbench_pull_throughput_bytes_per_second", node="gpu-0", image="pt") == pytest.approx(
        records[0]["pull"]["imageSizeBytes"] / records[0]["pull"]["seconds"])


def test_a_node_that_lists_the_image_before_the_first_run_makes_even_that_pull_a_revalidation():
    b = Bench(spec(cache="cold"), gpu_nodes(1, images=[{"names": [IMAGE], "sizeBytes": 123}]))
    b.drive()
    [record] = b.records().values()
    assert record["cache"] == "revalidated" and record["timeline"]["cacheEvidence"]["imageOnNode"] is True
    assert b.metrics.registry.get_sample_value("startbench_pull_throughput_bytes_per_second",
                                               {"node": "gpu-0", "image": "pt"}) is None  # never set


def test_the_status_records_each_chosen_nodes_context_once():
    b = Bench(spec(nodes={"maxNodes": 2}), gpu_nodes(2))
    b.io.configz["gpu-0"] = {"kubeletconfig": {"serializeImagePulls": False, "maxParallelImagePulls": 3}}
    b.drive()
    contexts = {c["name"]: c for c in b.status["nodeContext"]}
    assert list(contexts) == b.status["nodes"] == ["gpu-0", "gpu-1"]
    assert (contexts["gpu-0"]["serializeImagePulls"], contexts["gpu-0"]["maxParallelImagePulls"]) == (False, 3)
    assert contexts["gpu-1"]["serializeImagePulls"] is None and "nodes/proxy" in contexts["gpu-1"]["note"]
    assert b.io.count("kubelet_configz") == 2  # read once, with the node choice


def test_a_fan_out_wave_reads_the_nodes_image_lists_with_one_list_not_one_read_per_node():
    nodes = gpu_nodes(12, images=[{"names": [IMAGE], "sizeBytes": 1}])
    b = Bench(spec(mode="fanOut", cache="cold", parallelism=12, nodes={"maxNodes": 12}), nodes)
    b.step()
    assert len(b.io.created) == 12 and b.io.count("node_images") == 0
    created = [c["manifest"]["metadata"]["annotations"] for c in b.io.calls_to("create_pod")]
    assert {a["startbench.dev/image-on-node"] for a in created} == {"true"}


# --- outcomes the kubelet and other actors cause (issue #12) ---------------------------------------------------

def test_missing_pull_secrets_are_named_in_one_warning_event():
    b = Bench(spec(nodes={"maxNodes": 2}, cache="cold", imagePullSecrets=[{"name": "regcred"}, {"name": "ok"}]),
              gpu_nodes(2))
    b.step()
    first, second = b.io.created_names()
    for name in (first, second):  # the kubelet says so for every pod it syncs
        b.kubelet.schedule(name)
        b.kubelet.pull_secrets_missing(name, ["regcred"])
    b.step()
    b.kubelet.pull_secrets_missing(first, ["regcred"])  # and again on its next sync
    b.drive()
    (event,) = b.events("MissingPullSecrets")
    assert event["type"] == "Warning"
    assert "names Secret(s) regcred that" in event["message"]  # only the one the kubelet could not read
    assert "gpu-0" in event["message"] and "gpu-1" in event["message"]
    assert "create the Secret" in event["message"] and "spec.imagePullSecrets" in event["message"]
    assert b.status["phase"] == st.SUCCEEDED  # a public image pulls without the Secret: only the event says so


def test_a_later_missing_secret_gets_its_own_event_and_the_pull_failure_names_it():
    b = Bench(spec(cache="cold", imagePullSecrets=[{"name": "a"}, {"name": "b"}]), gpu_nodes(1))
    b.step()
    (name,) = b.io.created_names()
    b.kubelet.schedule(name)
    b.kubelet.pull_secrets_missing(name, ["a"])
    b.step()
    b.kubelet.pull_secrets_missing(name, ["a", "b"])
    b.kubelet.pull_fails(name)
    b.step()
    assert [e["message"].split(" that ")[0] for e in b.events("MissingPullSecrets")] == [
        "spec.imagePullSecrets names Secret(s) a", "spec.imagePullSecrets names Secret(s) b"]
    record = b.records()[name]
    assert record["reason"] == "ErrImagePull"
    assert "could not read Secret(s) a, b named in spec.imagePullSecrets" in record["message"]


def test_a_run_past_its_timeout_while_running_is_a_timeout_and_its_pod_goes():
    b = Bench(spec(cache="cold", runTimeoutSeconds=30, finishedPods={"keep": "all"}), gpu_nodes(1))
    b.step()
    (name,) = b.io.created_names()
    b.kubelet.schedule(name)
    b.kubelet.pulled(name)
    b.kubelet.running(name)
    b.clock.advance(s=29)
    b.step()
    assert not b.records()
    b.clock.advance(s=2)
    b.step()
    record = b.records()[name]
    assert (record["result"], record["reason"]) == (st.FAILED, "Timeout")
    assert "workload still running" in record["message"] and "Raise spec.runTimeoutSeconds" in record["message"]
    assert (NS, name) in b.io.deleted  # the operator ends the run: the kubelet's deadline never comes


def test_a_pod_the_kubelet_stopped_at_its_deadline_is_deadline_exceeded_not_workload_failed():
    """The kubelet's activeDeadlineSeconds is a backstop (runTimeoutSeconds + a margin, from the pod's start): a
    restarted operator finds the pod stopped by it, and the workload's SIGTERM report must not make it a
    WorkloadFailed."""
    b = Bench(spec(cache="cold", runTimeoutSeconds=30), gpu_nodes(1))
    b.step()
    (name,) = b.io.created_names()
    assert b.kubelet.pod(name)["spec"]["activeDeadlineSeconds"] == 90
    b.kubelet.schedule(name)
    b.kubelet.pulled(name)
    b.kubelet.running(name)
    start = b.clock()
    b.kubelet.deadline_exceeded(name, message=workload_report(start, TIMING, ok=False,
                                                             error="terminated by SIGTERM before mark 'device_ready'"))
    b.reconciler = b.new_reconciler()  # the operator was away; it comes back and records what it finds
    b.step()
    record = b.records()[name]
    assert (record["result"], record["reason"]) == (st.FAILED, "DeadlineExceeded")
    assert "activeDeadlineSeconds" in record["message"] and "stopped before mark device_ready" in record["message"]
    assert "Raise spec.runTimeoutSeconds" in record["message"]


def test_a_pod_deleted_while_its_workload_runs_is_pod_deleted_not_a_crash():
    b = Bench(spec(cache="cold"), gpu_nodes(1))
    b.step()
    (name,) = b.io.created_names()
    b.kubelet.schedule(name)
    b.kubelet.pulled(name)
    b.kubelet.running(name)
    b.kubelet.deleting(name)
    b.kubelet.terminated(name, exit_code=143, message=workload_report(b.clock(), TIMING, ok=False,
                                                                      error="terminated by SIGTERM before mark "
                                                                            "'device_ready'"))
    assert b.step().finished
    record = b.records()[name]
    assert record["reason"] == "PodDeleted", record["message"]
    assert "workload still running" in record["message"] and "new name" in record["message"]


def test_oom_killed_names_the_memory_limit_to_raise():
    b = Bench(spec(cache="cold", workload={"resources": {"limits": {"memory": "64Mi"}}}), gpu_nodes(1))
    b.step()
    (name,) = b.io.created_names()
    assert b.kubelet.pod(name)["spec"]["containers"][0]["resources"]["limits"] == {"memory": "64Mi",
                                                                                    "nvidia.com/gpu": "1"}
    b.kubelet.schedule(name)
    b.kubelet.pulled(name)
    b.kubelet.running(name)
    b.kubelet.terminated(name, exit_code=137, reason="OOMKilled")
    b.step()
    record = b.records()[name]
    assert record["reason"] == "OOMKilled"
    assert "spec.workload.resources.limits.memory (64Mi)" in record["message"]


@pytest.mark.parametrize("refusal, words", [
    ('pods "x" is forbidden: exceeded quota: mem, requested: limits.memory=2Gi, used: limits.memory=0, '
     'limited: limits.memory=1Gi', "lower spec.workload.resources"),
    ('pods "x" is forbidden: failed quota: mem: must specify limits.memory for: workload',
     "set them in spec.workload.resources"),
])
def test_a_quota_refusal_says_what_to_change(refusal, words):
    b = Bench(spec(cache="cold"), gpu_nodes(1))
    (run,) = plan(NAME, BenchmarkSpec.from_dict(spec(cache="cold")), ["gpu-0"])
    b.io.refusals[run.name] = f"the API server refused the pod (403 Forbidden): {refusal}"
    b.step()
    (record,) = b.records().values()
    assert record["reason"] == "PodRejected" and refusal in record["message"] and words in record["message"]


def test_recorded_runs_whose_pods_are_gone_are_forgotten_by_the_observer():
    # A large benchmark would otherwise hold, and copy on every step, an entry (with the pod's body) per run.
    b = Bench(spec(nodes={"maxNodes": 3}, mode="fanOut", parallelism=3, cache="cold", repetitions=2), gpu_nodes(3))
    b.step()
    first = b.waiting()
    b.kubelet.run(first)
    b.ran.update(first)
    b.step()  # records the first wave, deletes its pods, starts the second
    assert set(first) <= set(b.records())
    b.step()  # the watch has delivered the deletions: forgotten
    assert not set(first) & set(b.observer.pods_of(NS, NAME))
    assert b.drive().finished and len(b.records()) == 6


def test_a_finished_pod_of_the_image_is_deleted_before_the_next_cold_run_purges_its_image():
    """A purge while a finished pod of the image still exists on the node would leave its layers held by the
    exited container (a 'cold' pull that is only partly cold): the clean-up comes before new runs start."""
    nodes = gpu_nodes(1, simulated=True, annotations={SIM_CACHED_IMAGES: json.dumps([IMAGE])})
    b = Bench(spec(purgeImageBeforeColdRun=True, cache="cold", repetitions=2, parallelism=1,
                   finishedPods={"keep": "none"}), nodes)
    b.step()
    (first,) = b.io.created_names(NS)
    b.kubelet.run([first])
    b.io.nodes["gpu-0"]["metadata"]["annotations"][SIM_CACHED_IMAGES] = json.dumps([IMAGE])  # its pull cached it
    mark = len(b.io.calls)
    b.step()  # the first run ends: recorded, its pod deleted, then the second run's purge and pod
    calls = [(c.method, c.args.get("name") or (c.args.get("manifest") or {}).get("metadata", {}).get("name"))
             for c in b.io.calls[mark:] if c.method in ("delete_pod", "patch_node_annotations", "create_pod")]
    assert [m for m, _ in calls] == ["delete_pod", "patch_node_annotations", "create_pod"], calls
    assert calls[0][1] == first and calls[2][1] != first
