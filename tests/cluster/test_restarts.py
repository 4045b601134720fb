"""Restart without double work: the operator SIGKILLed at random moments, and the API server killed once, during a
benchmark of 48 runs on simulated GPU nodes with purgeImageBeforeColdRun.

What the operator did is read from watches of our own (pods of the namespace, the simulated GPU nodes), merged in
the API server's order (resourceVersion: one etcd revision for every object), and from the pods' Kubernetes
events, never from the operator's own bookkeeping:

- each run's pod created once: one pod UID per run name (watch and events), every planned run has its pod;
- never more runs in flight than `parallelism`: a pod is in flight from its creation until its run ends as the
  pod shows it (a terminal phase: a simulated node's container exits, KWOK's exit stage; a failed pull; deletion);
- no purge while a pod of that image is pulling, pulled or running on the node: the node's cache annotation
  (sim.startbench.dev/images) loses the image, in a change the operator's field manager made, while such a pod is
  there (the pull simulator rewrites the annotation too, from a cache that can lag: what it drops is told);
- nothing left behind: no pod once the benchmark has finished;
- every run recorded exactly once in the records ConfigMaps, all succeeded, the status counts match the records.

The schedule is seeded and printed (STARTBENCH_KILL_SEED=<seed> replays it): each kill comes a random number of
seconds after the watch has seen a random number of run pods, so a replay lands near, not exactly on, the same
points of the benchmark. At least two of the
kills must find runs in flight, or the test has tested nothing. STARTBENCH_KILL_TRACE=<file> keeps every change the
watches saw (JSON lines) for a closer look. A control-plane process that dies by itself meanwhile (the pull
simulator does not survive every API server outage) is brought back and named in the output. About one to three
minutes on two cores, more on a loaded one: marked slow.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import threading
import time
import uuid
from collections import defaultdict

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from startbench.core.contracts import COMPONENT, GROUP, LABEL_BENCHMARK, SIM_CACHED_IMAGES, VERSION
from startbench.core.planner import plan
from startbench.core.purge import cached_images
from startbench.core.reference import normalize
from startbench.core.spec import BenchmarkSpec
from startbench.localcluster import components, paths, pki, stages
from startbench.localcluster.cluster import CONTROL_PLANE, UpOptions, control_plane_healthy
from startbench.localcluster.cluster import status as cluster_status
from startbench.localcluster.processes import Managed
from startbench.runtime.kube import ClusterIO
from startbench.runtime.purger import purge_image
from tests.cluster import benchmarks as bm
from tests.cluster.helpers import wait_for
from tests.cluster.test_operator import _operator_process

KILLS = 6                # operator SIGKILLs (at least 5)
NODES = 4                # simulated GPU nodes (the cluster's sim-gpu pool)
PARALLELISM = 6          # below the 8 (image, node) pairs, so the bound binds
REPETITIONS = 3          # 2 images x 4 nodes x cold and warm x 3 = 48 runs
FAILED_PULL = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
STARTED_LINE = "startbench operator started"


# --- what the watches saw ---------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class PodView:
    name: str
    uid: str
    node: str | None
    image: str
    phase: str | None
    running: bool        # a container has started
    waiting: str | None  # the container's waiting reason
    deleting: bool
    pull: str | None     # the pull simulator's decision (sim.startbench.dev/pull): set once the pull began
    pulled: bool

    @property
    def ended(self) -> bool:
        return self.deleting or self.phase in ("Succeeded", "Failed") or self.waiting in FAILED_PULL

    @property
    def holds_image(self) -> bool:
        """Pulling, pulled or running the image on its node."""
        return bool(self.node) and not self.deleting and self.phase not in ("Succeeded", "Failed") and (
            self.pull is not None or self.pulled or self.running)


def pod_view(pod: client.V1Pod) -> PodView:
    statuses = (pod.status.container_statuses if pod.status else None) or []
    annotations = pod.metadata.annotations or {}
    return PodView(
        name=pod.metadata.name, uid=pod.metadata.uid, node=pod.spec.node_name,
        image=normalize(pod.spec.containers[0].image), phase=pod.status.phase if pod.status else None,
        running=any(s.state and s.state.running for s in statuses),
        waiting=next((s.state.waiting.reason for s in statuses if s.state and s.state.waiting), None),
        deleting=pod.metadata.deletion_timestamp is not None, pull=annotations.get(stages.PULL),
        pulled=stages.PULLED in annotations)


@dataclasses.dataclass(frozen=True)
class NodeView:
    images: frozenset[str]  # the simulated node's image cache (sim.startbench.dev/images)
    writer: str | None      # the field manager that last changed it: the operator's purges are COMPONENT's


def node_view(node: client.V1Node) -> NodeView:
    images = frozenset(normalize(i) for i in cached_images((node.metadata.annotations or {}).get(SIM_CACHED_IMAGES)))
    writer = next((m.manager for m in node.metadata.managed_fields or []
                   if SIM_CACHED_IMAGES in json.dumps((m.fields_v1 or {}).get("f:metadata", {}).get("f:annotations",
                                                                                                      {}))), None)
    return NodeView(images, writer)


class Recorder:
    """Watches the namespace's pods and the simulated GPU nodes from its own API client, keeping every change as
    (resourceVersion, kind, type, view). A watch broken by the API server's restart resumes from the last version
    seen; where the server cannot resume (410 Gone: the restarted server's watch cache starts later), it lists
    again and records what changed meanwhile as changes at the list's version (`gaps` counts those)."""

    def __init__(self, kubeconfig: str, namespace: str):
        from kubernetes import config
        self.core = client.CoreV1Api(config.new_client_from_config(kubeconfig))
        self.namespace = namespace
        self.changes: list[tuple] = []  # (resourceVersion, kind, type, (key, view), time received)
        self.gaps: list[str] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.current: dict[str, dict[str, object]] = {"pod": {}, "node": {}}  # key -> last view
        self.pod_uids: set[str] = set()
        self.threads = [
            threading.Thread(target=self._watch, daemon=True, args=(
                "pod", lambda **kw: self.core.list_namespaced_pod(namespace, label_selector=LABEL_BENCHMARK, **kw),
                lambda p: p.metadata.uid, pod_view, "V1Pod")),
            threading.Thread(target=self._watch, daemon=True, args=(
                "node", lambda **kw: self.core.list_node(label_selector="startbench.dev/pool=gpu,type=kwok", **kw),
                lambda n: n.metadata.name, node_view, "V1Node")),
        ]
        for thread in self.threads:
            thread.start()

    def _record(self, rv: int, kind: str, type_: str, key: str, view) -> None:
        with self.lock:
            if type_ == "DELETED":
                self.current[kind].pop(key, None)
            else:
                if self.current[kind].get(key) == view:
                    return
                self.current[kind][key] = view
                if kind == "pod":
                    self.pod_uids.add(key)
            self.changes.append((rv, kind, type_, (key, view), time.time()))

    def _relist(self, kind: str, list_fn, key_of, view_of) -> str:
        listing = list_fn()
        rv = int(listing.metadata.resource_version)
        seen = {}
        for item in listing.items:
            seen[key_of(item)] = view_of(item)
        with self.lock:
            gone = [k for k in self.current[kind] if k not in seen]
            had = bool(self.current[kind]) or bool(self.changes)
        for key in gone:
            self._record(rv, kind, "DELETED", key, None)
        for key, view in seen.items():
            self._record(rv, kind, "LISTED", key, view)
        if had:
            self.gaps.append(f"{kind} watch re-listed at resourceVersion {rv}")
        return listing.metadata.resource_version

    def _watch(self, kind: str, list_fn, key_of, view_of, item_type: str) -> None:
        rv = None
        while not self.stopping.is_set():
            try:
                if rv is None:
                    rv = self._relist(kind, list_fn, key_of, view_of)
                stream = watch.Watch(return_type=item_type).stream(list_fn, resource_version=rv, timeout_seconds=5,
                                              allow_watch_bookmarks=True)
                for event in stream:
                    obj = event["object"]
                    if event["type"] == "ERROR":
                        rv = None
                        break
                    rv = obj.metadata.resource_version
                    if event["type"] != "BOOKMARK":
                        self._record(int(rv), kind, event["type"], key_of(obj), view_of(obj))
                    if self.stopping.is_set():
                        break
            except ApiException as err:
                if err.status == 410:
                    rv = None
                else:
                    time.sleep(0.2)
            except Exception:  # the API server is down: try again, from the last version seen
                time.sleep(0.2)

    def pods_seen(self) -> int:
        """Run pods created so far (distinct UIDs)."""
        with self.lock:
            return len(self.pod_uids)

    def in_flight(self) -> tuple[int, int]:
        """(runs in flight, of them pulling or queued for the pull) now."""
        with self.lock:
            flying = [v for v in self.current["pod"].values() if not v.ended]
        return len(flying), sum(1 for v in flying if v.pull is not None and not v.pulled)

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(10)

    def ordered(self) -> list[tuple]:
        with self.lock:
            return sorted(self.changes, key=lambda c: c[0])  # stable: one watch's order within a version


@dataclasses.dataclass
class Findings:
    uids: dict[str, set[str]]
    max_in_flight: int
    over_parallelism: list[str]
    purges: int                        # the operator's: images it removed from a node's cache
    purges_under_a_pod: list[str]
    purges_beside_a_finished_pod: int  # the image's previous pod there had ended, not yet deleted (told, not failed)
    removed_by_others: list[str]       # images another writer (the pull simulator) dropped from a cache (told)


def replay(changes, parallelism: int) -> Findings:
    """Go through the merged changes in the API server's order and check the invariants at every step."""
    pods: dict[str, PodView] = {}
    nodes: dict[str, frozenset[str]] = {}
    uids: dict[str, set[str]] = defaultdict(set)
    over, under, purges, peak, beside, others = [], [], 0, 0, 0, []
    for rv, kind, type_, (key, view), *_ in changes:
        if kind == "pod":
            if type_ == "DELETED":
                pods.pop(key, None)
                continue
            pods[key] = view
            uids[view.name].add(view.uid)
            flying = sorted(p.name for p in pods.values() if not p.ended)
            peak = max(peak, len(flying))
            if len(flying) > parallelism:
                over.append(f"rv {rv}: {len(flying)} in flight: {flying}")
            continue
        before = nodes.get(key)
        nodes[key] = view.images if type_ != "DELETED" else frozenset()
        if before is None:
            continue
        for image in sorted(before - nodes[key]):
            if type_ == "DELETED" or view.writer != COMPONENT:
                others.append(f"rv {rv}: {image} dropped from {key} by {view.writer if view else 'its deletion'}")
                continue
            purges += 1
            holders = [f"{p.name} ({p.phase}, pull={p.pull}, pulled={p.pulled}, running={p.running})"
                       for p in pods.values() if p.node == key and p.image == image and p.holds_image]
            if holders:
                under.append(f"rv {rv}: {image} removed from {key} while {', '.join(holders)}")
            beside += any(p.node == key and p.image == image and not p.deleting and p.phase in ("Succeeded", "Failed")
                          for p in pods.values())
    return Findings(dict(uids), peak, over, purges, under, beside, others)


# --- the cluster's control plane --------------------------------------------------------------------------------

def _control_plane() -> list[components.Component]:
    state = paths.cluster_dir()
    return components.control_plane(state, pki.ensure(state / "pki"), paths.kubeconfig_path(),
                                    state / "kwok-stages.yaml", UpOptions().registry_bandwidth)


_BRINGING_BACK = threading.Lock()  # one caller at a time starts processes (two would start one twice)


def bring_back_control_plane(timeout: float = 120.0) -> list[str]:
    """Start every control-plane process that is not running, in start order, as `startbench cluster up` does (its
    same argv, pid and log files), and wait until each answers. Returns the names of those started."""
    with _BRINGING_BACK:
        return _bring_back(timeout)


def _bring_back(timeout: float) -> list[str]:
    state = paths.cluster_dir()
    started = []
    for component in _control_plane():
        managed = Managed(component.name, state)
        if not managed.running():
            managed.start(component.argv, env={"PYTHONPATH": str(paths.REPO_ROOT / "operator")})
            started.append(component.name)
        wait_for(lambda: managed.running() and component.health() is None, timeout=timeout, interval=0.2,
                 what=f"{component.name} healthy again (log: {managed.log_file})")
    assert control_plane_healthy(), "the control plane is not healthy after bringing it back"
    return started


class Supervisor:
    """Brings back a control-plane process that died on its own while the test runs (the pull simulator does not
    survive every API server outage), saying so: the test is about the operator, not about the dev cluster.
    Paused while the test itself holds the API server down."""

    def __init__(self, started: float):
        self.started = started
        self.revived: list[str] = []
        self.paused = threading.Event()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        state = paths.cluster_dir()
        while not self.stopping.wait(1.0):
            with _BRINGING_BACK:
                if self.paused.is_set():
                    continue
                dead = [name for name in CONTROL_PLANE if not Managed(name, state).running()]
                if not dead:
                    continue
                try:
                    names = _bring_back(120.0)
                except Exception as err:  # said at the end; the finally block tries again
                    names = [f"{dead} (failed: {err})"]
            self.revived += [f"{n} at {time.monotonic() - self.started:.1f}s" for n in names]
            print(f"[supervisor] brought back {names}", flush=True)

    def pause(self) -> None:
        """From now until resume(), the test holds the API server down itself."""
        self.paused.set()
        with _BRINGING_BACK:
            pass  # a round that began before is over

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(150)


def kill_api_server() -> int:
    pid = Managed("kube-apiserver", paths.cluster_dir()).pid()
    assert pid is not None, "the kube-apiserver is not running"
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not Managed("kube-apiserver", paths.cluster_dir()).running(), timeout=10,
             what="kube-apiserver gone")
    return pid


# --- the test ----------------------------------------------------------------------------------------------------

def _try(fn, default=None):
    try:
        return fn()
    except Exception:  # the API server may be down right now
        return default


def _wait_started(proc, log_path, timeout: float = 90.0) -> None:
    def started():
        assert proc.poll() is None, f"the operator exited by itself (rc {proc.returncode}):\n" \
                                    f"{log_path.read_text()[-3000:]}"
        return log_path.exists() and STARTED_LINE in log_path.read_text(errors="replace")
    wait_for(started, timeout=timeout, interval=0.1, what=f"the operator to start ({log_path})")


def _telling_lines(path, limit: int = 40) -> str:
    """An operator log without Kopf's per-event success lines and its request retries."""
    if not path.exists():
        return "(no log)"
    lines = [line for line in path.read_text(errors="replace").splitlines()
             if "succeeded." not in line and "Request attempt" not in line]
    return "\n".join(lines[-limit:])


def _where_things_stand(recorder: Recorder, custom, namespace: str) -> str:
    with recorder.lock:
        pods = sorted(recorder.current["pod"].values(), key=lambda v: v.name)
        nodes = dict(recorder.current["node"])
    body = _try(lambda: bm.get(custom, namespace, "chaos"), {}) or {}
    status = body.get("status") or {}
    return "\n".join([
        f"status: {status.get('phase')} {status.get('progress')} running={status.get('running')}",
        "pods: " + "; ".join(f"{v.name} node={v.node} phase={v.phase} pull={v.pull} pulled={v.pulled} "
                             f"running={v.running} waiting={v.waiting} deleting={v.deleting}" for v in pods),
        "node caches: " + "; ".join(f"{k}: {sorted(v)}" for k, v in sorted(nodes.items())),
        "control plane: " + ", ".join(f"{r['name']}={'ok' if r['healthy'] else r['problem'][:80]}"
                                      for r in cluster_status() if r["name"] in CONTROL_PLANE),
    ])


@pytest.mark.slow  # one to two minutes here, over three on a loaded machine
def test_operator_killed_at_random_moments_and_the_api_server_once_does_no_double_work(
        crd, local_cluster, custom, core, fresh_image, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONUNBUFFERED", "1")  # the operators' logs keep their last lines through a SIGKILL
    seed = int(os.environ.get("STARTBENCH_KILL_SEED") or random.SystemRandom().randrange(1, 2**31))
    rng = random.Random(seed)
    # Kill i comes once the watch has seen marks[i] run pods, then lag[i] seconds later (mid-pull, mid-run, mid-step
    # or mid-start: wherever that lands); the operator stays down down[i] seconds. Counting pods, not seconds, puts
    # every kill inside the benchmark on a fast machine and a slow one alike. The API server goes down once, api_up
    # seconds into the operator that follows kill number `api_after`, for api_down seconds.
    marks = sorted(rng.sample(range(2, 41), KILLS))
    lag = [round(rng.uniform(0.0, 1.5), 2) for _ in range(KILLS)]
    down = [round(rng.uniform(0.0, 2.0), 2) for _ in range(KILLS)]
    api_after = rng.randrange(1, KILLS)
    api_up, api_down = round(rng.uniform(0.3, 2.0), 2), round(rng.uniform(0.5, 3.0), 2)
    print(f"STARTBENCH_KILL_SEED={seed}: operator killed at pods {marks}, each that many seconds later {lag}, "
          f"down {down}; the API server killed {api_up}s into the operator after kill {api_after}, down "
          f"{api_down}s", flush=True)
    why = f"(STARTBENCH_KILL_SEED={seed})"

    images = [{"name": n, "image": fresh_image(2 * 1024 * 1024), "framework": "pytorch", "variant": "naive"}
              for n in ("a", "b")]
    # Its own namespace and operator processes (the in-process operator of the other tests serves t-* only).
    namespace = f"k-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": namespace}})
    wait_for(lambda: core.list_namespaced_service_account(namespace, field_selector="metadata.name=default").items,
             what="default service account")
    body = bm.benchmark("chaos", images, max_nodes=NODES, cache="both", repetitions=REPETITIONS,
                        parallelism=PARALLELISM, purgeImageBeforeColdRun=True, runTimeoutSeconds=600)
    recorder = Recorder(local_cluster["kubeconfig"], namespace)
    started = time.monotonic()
    supervisor = Supervisor(started)
    logs = [tmp_path / f"operator-{i}.log" for i in range(KILLS + 1)]
    proc = None
    kills: list[str] = []
    busy_kills = 0  # operator kills that found runs in flight
    try:
        proc = _operator_process(local_cluster["kubeconfig"], namespace, logs[0])
        bm.create(custom, namespace, body)

        def phase():
            return _try(lambda: bm.get(custom, namespace, "chaos").get("status", {}).get("phase"))

        def created(at_least: int, log_path):
            assert proc.poll() is None, f"the operator exited by itself:\n{_telling_lines(log_path)}"
            return recorder.pods_seen() >= at_least

        for i in range(KILLS):
            _wait_started(proc, logs[i])
            if i == api_after:
                time.sleep(api_up)
                supervisor.pause()
                pid = kill_api_server()
                kills.append(f"kube-apiserver (pid {pid}) at {time.monotonic() - started:.1f}s: "
                             "{} run(s) in flight, {} waiting on a pull".format(*recorder.in_flight()))
                time.sleep(api_down)
                bring_back_control_plane()
                supervisor.paused.clear()
            wait_for(lambda: created(marks[i], logs[i]), timeout=180, interval=0.05,
                     what=f"{marks[i]} run pods before kill {i + 1} {why}")
            time.sleep(lag[i])
            assert proc.poll() is None, f"the operator exited by itself:\n{_telling_lines(logs[i])}"
            assert phase() not in bm.TERMINAL, f"the benchmark finished before kill {i + 1}: {kills} {why}"
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
            flying, pulling = recorder.in_flight()
            busy_kills += flying > 0
            kills.append(f"operator at {time.monotonic() - started:.1f}s: {flying} run(s) in flight, {pulling} "
                         f"waiting on a pull, progress "
                         f"{_try(lambda: bm.get(custom, namespace, 'chaos')['status'].get('progress'))}")
            time.sleep(down[i])
            proc = _operator_process(local_cluster["kubeconfig"], namespace, logs[i + 1])
        print("kills:\n  " + "\n  ".join(kills), flush=True)
        assert busy_kills >= 2, f"only {busy_kills} operator kill(s) came with runs in flight: {kills} {why}"

        try:
            final = bm.wait_finished(custom, namespace, "chaos", timeout=180)
        except AssertionError as err:
            raise AssertionError(f"{err} {why}\n{_where_things_stand(recorder, custom, namespace)}\n"
                                 f"kills: {kills}\nrevived: {supervisor.revived}\n"
                                 f"last operator:\n{_telling_lines(logs[-1])}") from None
        wait_for(lambda: not core.list_namespaced_pod(namespace).items, timeout=60, what="no pod left behind")
        finished_s = time.monotonic() - started
        time.sleep(1.0)  # the watches catch up
        recorder.stop()

        status = final["status"]
        planned = sorted(r.name for r in plan("chaos", BenchmarkSpec.from_dict(final["spec"]), status["nodes"]))
        assert len(planned) == 48
        findings = replay(recorder.ordered(), PARALLELISM)
        if os.environ.get("STARTBENCH_KILL_TRACE"):  # every change the watches saw, for a closer look
            with open(os.environ["STARTBENCH_KILL_TRACE"], "w") as out:
                for rv, kind, type_, (key, view), at in recorder.ordered():
                    fields = dataclasses.asdict(view) if view is not None else None
                    line = {"rv": rv, "at": round(at - time.time() + time.monotonic() - started, 3), "kind": kind,
                            "type": type_, "key": key, "view": fields}
                    out.write(json.dumps(line, default=sorted) + "\n")
        print(f"finished after {finished_s:.0f}s; {findings.purges} purges seen "
              f"({findings.purges_beside_a_finished_pod} beside an ended pod of the image not yet deleted), peak "
              f"{findings.max_in_flight} in flight; watch gaps: {recorder.gaps or 'none'}; "
              f"revived: {supervisor.revived or 'nothing'}; dropped by other writers: "
              f"{findings.removed_by_others or 'none'}", flush=True)

        # Each run's pod created once: one UID per run name, in the watch and in the pods' events.
        event_uids = defaultdict(set)
        for e in core.list_namespaced_event(namespace).items:
            if e.involved_object.kind == "Pod" and e.involved_object.uid:
                event_uids[e.involved_object.name].add(e.involved_object.uid)
        assert sorted(findings.uids) == planned, f"pods seen are not the plan's runs {why}"
        twice = {n: sorted(findings.uids[n] | event_uids.get(n, set())) for n in planned
                 if len(findings.uids[n] | event_uids.get(n, set())) != 1}
        assert not twice, f"runs whose pod was created more than once: {twice} {why}\n{kills}"
        assert not findings.over_parallelism, \
            f"more than {PARALLELISM} runs in flight: {findings.over_parallelism[:5]} {why}\n{kills}"
        # Every cold run after the first on a node found its image there to purge (the first ones: a fresh image).
        assert findings.purges >= 2 * NODES * (REPETITIONS - 1), f"too few purges seen: {findings.purges} {why}"
        assert not findings.purges_under_a_pod, \
            f"purges from under a pod of the image: {findings.purges_under_a_pod[:5]} {why}\n{kills}"

        # Every run recorded exactly once, all succeeded; the status counts are the records'.
        records = bm.records(core, namespace, "chaos")
        names = [r["name"] for r in records]
        assert sorted(names) == planned, f"records, as names: {sorted(names)} {why}"
        assert {r["result"] for r in records} == {"Succeeded"}, [r for r in records if r["result"] != "Succeeded"]
        assert status["phase"] == "Succeeded", status
        assert (status["total"], status["succeeded"], status["failed"], status["running"], status["progress"]) == \
            (48, sum(r["result"] == "Succeeded" for r in records), sum(r["result"] == "Failed" for r in records),
             0, "48/48")
    finally:
        recorder.stop()
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        supervisor.stop()
        bring_back_control_plane()  # whatever happened above, the shared cluster is left running
        io = ClusterIO(core.api_client)
        for node in _try(lambda: bm.get(custom, namespace, "chaos")["status"]["nodes"], []) or []:
            for image in images:  # leave the shared nodes' caches as they were
                purge_image(io, node, image["image"], None, simulated=True)
        # No operator serves this namespace any more: its finalizer would hold the namespace in Terminating.
        _try(lambda: custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, "benchmarks", "chaos",
                                                           {"metadata": {"finalizers": None}}))
        core.delete_namespace(namespace)
