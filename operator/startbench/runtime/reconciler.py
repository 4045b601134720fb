"""One Benchmark's reconcile step: re-derive where the benchmark stands from the cluster (its pods, its
records) and move it forward: record the runs that ended, start the runs that may start, write the status.

The step is idempotent: it keeps nothing a restart would need. Runs are recorded (records ConfigMaps)
before their pods are deleted, pods have deterministic names, and a record is keyed by its run's name, so a
step repeated after a crash records each run once and creates no second pod for a run.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Mapping
from typing import Any

from startbench.core import status as st
from startbench.runtime.config import Config
from startbench.core.manifests import BenchmarkRef, pod_manifest
from startbench.core.nodecontext import node_context
from startbench.runtime.metrics import Metrics
from startbench.core.contracts import ANNOTATION_OBSERVATIONS, is_simulated
from startbench.runtime.observer import Observer, PodEntry, now_ms, serialize
from startbench.core.planner import PlanError, Run, RunState, next_runs, plan, select_nodes
from startbench.core.cache import arrived, downloaded, node_evidence
from startbench.core.records import RecordBook
from startbench.runtime.purger import purge_image
from startbench.core.spec import BenchmarkSpec, ImageEntry, SpecError
from startbench.core.timeline import Observations, read_report

log = logging.getLogger("startbench.runtime.reconciler")
TERMINAL = (st.SUCCEEDED, st.PARTIALLY_FAILED, st.FAILED)
CREATE_WORKERS = 16  # concurrent pod creations (the API client's connection pool holds 32)
NODE_READS_BEFORE_LIST = 8  # a wave over more nodes reads their image lists with one LIST of the nodes
STATUS_EVERY_SECONDS = 2.0  # the status' summaries are computed at most this often while runs are in flight
PERSIST_EVERY_SECONDS = 2.0  # a pod's observations go onto it at most this often (see _persist_observations)


@dataclasses.dataclass
class Step:
    finished: bool
    status: dict[str, Any]


@dataclasses.dataclass
class _StepContext:
    """What one step knows, filled in as its named steps go."""
    ref: BenchmarkRef
    body: Mapping[str, Any]
    status: dict[str, Any]
    spec: BenchmarkSpec
    nodes: list[str] = dataclasses.field(default_factory=list)
    runs: list[Run] = dataclasses.field(default_factory=list)
    book: RecordBook = dataclasses.field(default_factory=RecordBook)
    pods: dict[str, PodEntry] = dataclasses.field(default_factory=dict)
    now: float = 0.0
    states: dict[str, RunState] = dataclasses.field(default_factory=dict)
    recorded: list[tuple[Run, dict]] = dataclasses.field(default_factory=list)  # this step's new records
    patch: dict[str, Any] = dataclasses.field(default_factory=dict)             # status fields beside progress

    def __post_init__(self):
        self.images: dict[str, Any] = dict(self.status.get("images") or {})

    @property
    def generation(self) -> int:
        return self.body["metadata"].get("generation", 1)


class BenchmarkReconciler:
    """Drives one Benchmark; `step(body)` is called in a loop by the Kopf daemon until it returns finished."""

    def __init__(self, io, observer: Observer, metrics: Metrics, config: Config,
                 build_images: Callable[[BenchmarkRef, BenchmarkSpec, Callable[[str], None]], dict] | None = None,
                 describe_image: Callable[[ImageEntry], dict] | None = None,
                 clock_ms: Callable[[], float] = now_ms):
        self.io, self.observer, self.metrics, self.config = io, observer, metrics, config
        self.build_images = build_images
        self.describe_image = describe_image
        self.images_published = False
        self.clock_ms = clock_ms
        self.book: RecordBook | None = None  # the run records, read once, then kept up to date here
        self.listed = False  # whether this reconciler's view of the benchmark's pods is complete (see _begin_runs)
        self.created: dict[str, float] = {}  # runs this process created and has not seen on the watch yet
        self.announced: set[str] = set()
        self.missing_secrets: set[str] = set()  # imagePullSecrets already named in a MissingPullSecrets event
        self.node_meta: dict[str, tuple[dict[str, str], dict[str, str]]] = {}
        self._status_memo: tuple[tuple, dict[str, Any], float] | None = None  # (inputs, status, when), see _write_status
        self._plan_memo: tuple[tuple, list[Run]] | None = None

    # --- helpers
    def _load_records(self, ref: BenchmarkRef) -> RecordBook:
        if self.book is None:
            self.book = RecordBook(self.io.read_records(ref.namespace, ref.name))
        return self.book

    def _fail(self, ref, body, reason: str, message: str) -> Step:
        status = body.get("status") or {}
        out = st.failed_status(status.get("conditions"), reason, message, body["metadata"].get("generation", 1),
                               _now())
        out["finishedAt"] = _now()
        self.io.patch_status(ref, out)
        self.io.event(ref, "Warning", reason, message)
        return Step(True, out)

    def _node(self, name: str) -> tuple[dict[str, str], dict[str, str]]:
        if name not in self.node_meta:
            self.node_meta[name] = self.io.node_metadata(name)
        return self.node_meta[name]

    def _simulated(self, node: str) -> bool:
        """KWOK nodes run no container: their runs end at container start, with no in-pod report."""
        return is_simulated(self._node(node)[1])

    def _labels(self, spec: BenchmarkSpec, ref: BenchmarkRef, run: Run, record: Mapping[str, Any]) -> dict[str, str]:
        node = record.get("node") or run.node
        entry = spec.image(run.image)
        return {"benchmark": ref.name, "image": run.image, "framework": entry.framework, "variant": entry.variant,
                "node": node, "gpu_product": self._node(node)[0].get("nvidia.com/gpu.product", ""),
                "cache": record.get("timeline", {}).get("cacheObserved", run.cache), "model": spec.workload.model}

    def _publish_images(self, ref: BenchmarkRef, images: Mapping[str, Mapping[str, Any]]) -> None:
        for name, image in images.items():
            if image and image.get("reference"):
                self.metrics.set_image(ref.name, name, image.get("framework") or "", image.get("variant") or "",
                                       image.get("compressedBytes"), image.get("uncompressedBytes"),
                                       image.get("layers"))
        self.images_published = True

    # --- the step: a list of named steps, each reading the cluster as the step before left it
    def step(self, body: Mapping[str, Any]) -> Step:
        try:
            return self._step(body)
        except BaseException:
            # Cut short (the API server went away, say), this step may have created pods whose answer never came,
            # and the pod watch, cut off too, may never tell: the next step lists the pods again before it acts.
            self.listed = False
            raise

    def _step(self, body: Mapping[str, Any]) -> Step:
        ref = BenchmarkRef.from_body(body)
        status = dict(body.get("status") or {})
        try:
            spec = BenchmarkSpec.from_dict(body.get("spec") or {})
        except SpecError as err:
            if status.get("phase") in TERMINAL:
                return Step(True, status)
            return self._fail(ref, body, "InvalidSpec", str(err))
        if status.get("phase") in TERMINAL:
            return self._after_finish(ref, spec, status)
        ctx = _StepContext(ref, body, status, spec)
        for prepare in (self._choose_nodes, self._build_images, self._describe_images):
            failed = prepare(ctx)
            if failed is not None:
                return failed
        self._begin_runs(ctx)
        self._warn_missing_pull_secrets(ctx)
        self._record_ended_runs(ctx)
        self._persist_observations(ctx)
        self._write_records(ctx)   # the ended runs' records, before any of their pods is deleted
        self._clean_up_pods(ctx)   # before new runs start: a purge must not race a finished pod of its image
        self._start_new_runs(ctx)
        self._write_records(ctx)   # runs that could not start (purge failed, pod refused), if any
        return self._write_status(ctx)

    def _choose_nodes(self, ctx: "_StepContext") -> Step | None:
        """The nodes, chosen once and kept in the status: later steps (and a restarted operator) plan from that
        list, never from a new look at the cluster."""
        ctx.nodes = ctx.status.get("nodes")
        if ctx.nodes:
            return None
        try:
            listed = self.io.list_nodes()
            selection = select_nodes(ctx.spec, listed)
        except PlanError as err:
            return self._fail(ctx.ref, ctx.body, "NoUsableNodes", str(err))
        ctx.nodes = list(selection.nodes)
        by_name = {(n.get("metadata") or {}).get("name"): n for n in listed}
        for name in ctx.nodes:  # what _node would read node by node (a thousand GETs before the first run)
            meta = by_name[name].get("metadata") or {}
            self.node_meta.setdefault(name, (dict(meta.get("labels") or {}), dict(meta.get("annotations") or {})))
        contexts = [node_context(by_name[name], *(self.io.kubelet_configz(name)
                                                 if not self._simulated(name) else (None, None)))
                    for name in ctx.nodes]
        self.io.patch_status(ctx.ref, {"nodes": ctx.nodes, "nodeContext": contexts,
                                       "startedAt": ctx.status.get("startedAt") or _now(),
                                       "phase": st.RUNNING, "observedGeneration": ctx.generation})
        skipped = f"; {len(selection.excluded)} matching node(s) excluded" if selection.excluded else ""
        runs = len(plan(ctx.ref.name, ctx.spec, ctx.nodes))
        self.io.event(ctx.ref, "Normal", "Planned", f"{runs} runs over {len(ctx.nodes)} node(s){skipped}")
        gpus = ctx.spec.nodes.gpus_per_pod
        if gpus > 1:  # python -m startbench.workload trains on one device (its report says so too)
            self.io.event(ctx.ref, "Warning", "GpusLeftIdle",
                          f"spec.nodes.gpusPerPod is {gpus}: the workload trains on one GPU of each pod and leaves "
                          f"{gpus - 1} idle; set gpusPerPod: 1 unless the image trains on several GPUs")
        return None

    def _build_images(self, ctx: "_StepContext") -> Step | None:
        """Images the spec asks the operator to build: built once, their references kept in status.images."""
        ref, spec = ctx.ref, ctx.spec.with_built_images(_references(ctx.images))
        ctx.spec = spec
        if not spec.unbuilt_images:
            return None
        if self.build_images is None:
            return self._fail(ref, ctx.body, "ImageBuildUnavailable",
                              "spec.images asks the operator to build images, but this operator has no Docker "
                              "engine (set STARTBENCH_DOCKER_HOST, or enable the chart's dind builder)")
        names = ", ".join(e.name for e in spec.unbuilt_images)
        self.io.patch_status(ref, {"phase": st.BUILDING, "message": f"building images {names}"})
        self.io.event(ref, "Normal", "Building", f"building images {names}")
        try:
            ctx.images.update(self.build_images(ref, spec, lambda m: log.info("%s: %s", ref.name, m)))
        except Exception as err:  # ends the benchmark in the build's own words (with its log's last lines)
            return self._fail(ref, ctx.body, "ImageBuildFailed", str(err))
        # Kept at once, so a restarted operator does not build them again.
        self.io.patch_status(ref, {"images": ctx.images, "message": f"built images {names}"})
        self.io.event(ref, "Normal", "Built", f"built images {names}")
        ctx.spec = spec.with_built_images(_references(ctx.images))
        self.images_published = False
        return None

    def _describe_images(self, ctx: "_StepContext") -> None:
        """Images named by reference: their manifests read once (digest, size, layers) into status.images; the
        image metrics set from status.images (again after a restart: the metrics start empty)."""
        unread = [e for e in ctx.spec.images if e.build is None and e.name not in ctx.images]
        if unread and self.describe_image is not None:
            described = {e.name: self.describe_image(e) for e in unread}
            ctx.images.update(described)
            self.io.patch_status(ctx.ref, {"images": ctx.images})  # once: a restarted operator does not read again
            for name, image in described.items():
                if image.get("message"):
                    self.io.event(ctx.ref, "Warning", "ImageUnreadable", f"images[{name}]: {image['message']}")
            self.images_published = False
        if not self.images_published:
            self._publish_images(ctx.ref, ctx.images)
        return None

    def _list_pods_once(self, ref: BenchmarkRef) -> None:
        """Before this reconciler creates, purges or deletes anything, its view of the benchmark's pods must be
        complete: the pod watch of a restarted operator may not have listed them yet, and a run whose pod exists
        would look pending (purged again, created again). One LIST, folded into the observer, settles it; again
        after a step that failed. A pod the observer knows and the LIST lacks is gone (its deletion came while the
        watch was down)."""
        if self.listed:
            return
        arrival = self.clock_ms()
        listed = set()
        for body in self.io.list_run_pods(ref.namespace, ref.name):
            self.observer.on_pod(None, body, arrival)
            listed.add(body["metadata"]["name"])
        for name, entry in self.observer.pods_of(ref.namespace, ref.name).items():
            if name not in listed and not entry.deleted:
                self.observer.on_pod("DELETED", entry.body, arrival)
        self.listed = True

    def _begin_runs(self, ctx: "_StepContext") -> None:
        """The plan, the records so far and the pods the watch has seen, as of now."""
        ctx.runs = self._plan(ctx)
        ctx.book = self._load_records(ctx.ref)
        self._list_pods_once(ctx.ref)
        ctx.pods = self.observer.pods_of(ctx.ref.namespace, ctx.ref.name)
        ctx.now = self.clock_ms()
        for name in [n for n in self.created if n in ctx.pods or n in ctx.book]:
            del self.created[name]  # the watch has caught up with this creation

    def _plan(self, ctx: "_StepContext") -> list[Run]:
        """The plan, made again only when what it follows from changed (the spec's generation, the nodes, the
        built images): planning 5,000 runs on every step cost more than the rest of an idle step."""
        key = (ctx.generation, tuple(ctx.nodes), tuple(sorted(_references(ctx.images).items())))
        if self._plan_memo is None or self._plan_memo[0] != key:
            self._plan_memo = (key, plan(ctx.ref.name, ctx.spec, ctx.nodes))
        return self._plan_memo[1]

    def _warn_missing_pull_secrets(self, ctx: "_StepContext") -> None:
        """One Warning event naming the spec.imagePullSecrets that a kubelet could not read (its own event on the
        pod, FailedToRetrieveImagePullSecret): the operator may not read Secrets itself, and the pulls go ahead
        without them, so a private image fails to pull and a public one passes with no other word."""
        found: dict[str, set[str]] = {}
        for entry in ctx.pods.values():
            for secret in entry.obs.missing_pull_secrets or ():
                if secret not in self.missing_secrets:
                    found.setdefault(secret, set()).add(entry.obs.node or "its node")
        if not found:
            return
        self.missing_secrets.update(found)
        names = ", ".join(sorted(found))
        nodes = ", ".join(sorted(set().union(*found.values())))
        self.io.event(ctx.ref, "Warning", "MissingPullSecrets",
                      f"spec.imagePullSecrets names Secret(s) {names} that the kubelet on {nodes} could not read in "
                      f"namespace {ctx.ref.namespace}; pulls go ahead without them (a private registry refuses "
                      f"them): create the Secret(s) in namespace {ctx.ref.namespace} (kubectl create secret "
                      "docker-registry ...) or remove them from spec.imagePullSecrets")

    def _record_ended_runs(self, ctx: "_StepContext") -> None:
        """Runs whose pods ended (or timed out, or were deleted): their records, in memory until _write_records."""
        by_name = {r.name: r for r in ctx.runs}
        for name, entry in ctx.pods.items():
            run = by_name.get(name)
            if run is None or name in ctx.book:
                continue
            simulated = self._simulated(entry.obs.node or run.node)
            expects_report = ctx.spec.image(run.image).framework != "none" and not simulated
            report = read_report(entry.obs.termination_message) if expects_report else None
            outcome = st.run_outcome(entry.obs, report, ctx.now, ctx.spec.run_timeout_seconds,
                                     expects_report=expects_report, deleted=entry.deleted,
                                     memory_limit=ctx.spec.workload.resources.limit("memory"))
            if outcome is None:
                continue
            if simulated and outcome.reason == "Completed":
                outcome = dataclasses.replace(outcome, message="simulated node (KWOK): no workload runs there, so "
                                              "the timeline ends at container start")
            self._record(ctx, run, st.run_record(run, entry.obs, report, outcome, ctx.now))

    def _persist_observations(self, ctx: "_StepContext") -> None:
        """Observations that changed, on their pods, so a restarted operator resumes from them: at most once per
        PERSIST_EVERY_SECONDS a pod, so that the stamps of a pod's quick succession of updates and events (bound,
        pulling, pulled, running: often within a second or two) go in one patch, not one each. A restart loses
        at most that much of a pod's stamps; a run that ends is recorded in the step that sees it end."""
        every_ms = PERSIST_EVERY_SECONDS * 1000.0
        for entry in self.observer.dirty(ctx.ref.namespace, ctx.ref.name, ctx.now, every_ms):
            if entry.name in ctx.book:
                continue
            self.io.annotate_pod(ctx.ref.namespace, entry.name, {ANNOTATION_OBSERVATIONS: serialize(entry.obs)})
            self.observer.mark_persisted(ctx.ref.namespace, entry.name, entry.obs, ctx.now)

    def _start_new_runs(self, ctx: "_StepContext") -> None:
        """Runs that may start now (parallelism, mode, cold before warm): purge first when asked, then create."""
        states = ctx.states = {name: RunState.DONE for name in ctx.book.records}
        for name, entry in ctx.pods.items():
            if name not in ctx.book and not entry.deleted:
                states[name] = RunState.RUNNING
        for name in self.created:
            states.setdefault(name, RunState.RUNNING)
        parallelism = min(ctx.spec.parallelism, self.config.max_parallel_pods)
        candidates = list(next_runs(ctx.runs, states, parallelism, ctx.spec.mode))
        if not candidates:
            return
        node_images = self._node_images({run.node for run in candidates})
        arrivals: dict[tuple[str, str], dict] = {}  # (node, image) -> the last run that got the image there
        for record in sorted(ctx.book.values(), key=lambda r: r.get("finishedMs") or 0):
            if arrived(record):
                arrivals[(record.get("node"), record["image"])] = record
        to_start, evidence = [], {}
        for run in candidates:
            image = ctx.spec.image(run.image).reference
            purged = False
            if run.purge_first:  # spec.purgeImageBeforeColdRun: make the cold run truly cold
                result = purge_image(self.io, run.node, image, self.config.purge_namespace or None,
                                     self._simulated(run.node))
                if not result.ok:
                    self._record_unstarted(ctx, run, "PurgeFailed", result.message)
                    continue
                purged = result.how != "absent"
                log.info("%s: %s", ctx.ref.name, result.message)
            # The cache evidence: what the node held right before the pod exists (a purge overrides the list).
            earlier = arrivals.get((run.node, run.image))
            if node_images.get(run.node) is not None or earlier is not None:
                evidence[run.name] = node_evidence(image, node_images.get(run.node), purged, earlier).annotations()
            to_start.append(run)
        for run, created_ms, refusal in self._create_pods(ctx.ref, ctx.spec, to_start, evidence):
            if refusal is None:
                self.created[run.name] = created_ms
                states[run.name] = RunState.RUNNING
            else:
                self._record_unstarted(ctx, run, "PodRejected", st.rejection_message(refusal), created_ms)

    def _node_images(self, nodes: set[str]) -> dict[str, list | None]:
        """Each node's status.images now: one read per node, or one list of every node when a wave needs many."""
        if len(nodes) <= NODE_READS_BEFORE_LIST:
            return {node: self.io.node_images(node) for node in nodes}
        listed = {(n.get("metadata") or {}).get("name"): n for n in self.io.list_nodes()}
        return {node: ((listed[node].get("status") or {}).get("images") or []) if node in listed else None
                for node in nodes}

    def _write_records(self, ctx: "_StepContext") -> None:
        """The records ConfigMaps that changed this step, written once, before any pod of theirs is deleted."""
        if not ctx.book.unwritten():
            return
        chunks = ctx.book.chunks()
        ctx.patch["recordsConfigMaps"] = self.io.write_records(ctx.ref, chunks, ctx.book.written_chunks)
        ctx.book.written(chunks)
        for run, record in ctx.recorded:
            self._announce(ctx.ref, ctx.spec, run, record)

    def _clean_up_pods(self, ctx: "_StepContext") -> None:
        """Pods of recorded runs, as spec.finishedPods says (pods still holding a node always go). A recorded run
        whose pod is gone is forgotten by the observer: nothing more can come of it, and thousands of such entries
        (each with its pod's body) were copied on every step and held all the benchmark long."""
        for name, entry in ctx.pods.items():
            record = ctx.book.get(name)
            if record is None:
                continue
            if entry.deleted:
                self.observer.forget(ctx.ref.namespace, name)
            elif self._should_delete(ctx.spec, entry, record, ctx.now):
                self.io.delete_pod(ctx.ref.namespace, name)

    def _after_finish(self, ref: BenchmarkRef, spec: BenchmarkSpec, status: dict[str, Any]) -> Step:
        """A finished benchmark whose kept pods have a TTL (spec.finishedPods.ttlSeconds): delete each once its
        TTL has passed; finished when none is left to wait for (at once without a TTL)."""
        if spec.finished_pods_ttl_seconds is None or spec.keep_finished_pods == "none":
            return Step(True, status)
        book = self._load_records(ref)
        self._list_pods_once(ref)
        now = self.clock_ms()
        waiting = False
        for name, entry in self.observer.pods_of(ref.namespace, ref.name).items():
            record = book.get(name)
            if record is None or entry.deleted:
                continue
            if self._should_delete(spec, entry, record, now):
                self.io.delete_pod(ref.namespace, name)
            else:
                waiting = True
        return Step(not waiting, status)

    def _write_status(self, ctx: "_StepContext") -> Step:
        """Progress, summaries, thresholds and conditions, written when they changed. They are computed over every
        record (a tenth of a second at 5,000), so again only when the records, the runs in flight or the spec
        changed, and at most once per STATUS_EVERY_SECONDS until every run has ended."""
        running = sum(1 for s in ctx.states.values() if s is RunState.RUNNING)
        key, now = (ctx.book.version, running, ctx.generation), self.clock_ms()
        memo = self._status_memo
        ended = sum(1 for run in ctx.runs if run.name in ctx.book) == len(ctx.runs)
        if memo is not None and memo[0][2] == ctx.generation and (
                memo[0] == key or (not ended and now - memo[2] < STATUS_EVERY_SECONDS * 1000.0)):
            out = dict(memo[1])
        else:
            out = st.progress_status(ctx.spec, ctx.runs, ctx.book.values(), running, ctx.status.get("conditions"),
                                     ctx.generation, _now())
            self._status_memo = (key, dict(out), now)
        out.update(ctx.patch)
        complete = out["phase"] in TERMINAL
        if complete:
            out["finishedAt"] = ctx.status.get("finishedAt") or _now()
        if _changed(ctx.status, out):
            self.io.patch_status(ctx.ref, out)
        if complete:
            self._finish(ctx.ref, out)
        return Step(complete, out)

    def _record(self, ctx: "_StepContext", run: Run, record: dict) -> None:
        ctx.book.add(record)
        ctx.recorded.append((run, record))

    def _record_unstarted(self, ctx: "_StepContext", run: Run, reason: str, message: str,
                          created_ms: float | None = None) -> None:
        """Record a run that ended before its pod existed (the purge failed, the API refused the pod)."""
        at = self.clock_ms() if created_ms is None else created_ms
        self._record(ctx, run, st.run_record(run, Observations(created_ms=at), None,
                                             st.Outcome(st.FAILED, reason, message), at))
        ctx.states[run.name] = RunState.DONE

    def _create_pods(self, ref: BenchmarkRef, spec: BenchmarkSpec, to_start: list[Run],
                     evidence: Mapping[str, Mapping[str, str]]):
        """Create the pods of `to_start` (in parallel when there are many: a fan-out wave should start together,
        not one API round trip after another). Returns (run, created_ms, refusal or None) in plan order."""
        def create(run: Run) -> tuple[Run, float, str | None]:
            created_ms = self.clock_ms()
            manifest = pod_manifest(ref, spec, run, int(created_ms), evidence.get(run.name))
            return run, created_ms, self.io.create_pod(ref.namespace, manifest)

        if len(to_start) <= 2:
            return [create(run) for run in to_start]
        with ThreadPoolExecutor(max_workers=min(CREATE_WORKERS, len(to_start))) as pool:
            return list(pool.map(create, to_start))

    def _should_delete(self, spec: BenchmarkSpec, entry: PodEntry, record: Mapping[str, Any], now: float) -> bool:
        phase = (entry.body.get("status") or {}).get("phase")
        if phase not in ("Succeeded", "Failed"):
            return True  # still holding a node (pending, backing off, timed out): never keep it
        keep = spec.keep_finished_pods
        if keep == "none" or (keep == "failed" and record["result"] == st.SUCCEEDED):
            return True
        ttl = spec.finished_pods_ttl_seconds
        return ttl is not None and now - record.get("finishedMs", now) > ttl * 1000.0

    def _announce(self, ref: BenchmarkRef, spec: BenchmarkSpec, run: Run, record: Mapping[str, Any]) -> None:
        if run.name in self.announced:
            return
        self.announced.add(run.name)
        labels = self._labels(spec, ref, run, record)
        phases = {name: p["ms"] / 1000.0 for name, p in record["timeline"]["phases"].items()
                  if "covers" not in p}
        total = record.get("timeToFirstStepMs")
        self.metrics.observe_run(labels, phases, None if total is None else total / 1000.0, record["result"],
                                 record["reason"] if record["result"] != st.SUCCEEDED else "")
        metrics = (record.get("report") or {}).get("metrics") or {}
        if metrics:
            self.metrics.set_training(labels, metrics)
        pull = record.get("pull") or {}
        if downloaded(record) and pull.get("seconds") and pull.get("imageSizeBytes"):  # real downloads only
            self.metrics.set_pull_throughput(labels["node"], run.image, pull["imageSizeBytes"] / pull["seconds"])
        if record["result"] != st.SUCCEEDED:
            self.io.event(ref, "Warning", f"Run{record['reason']}"[:128], f"run {run.name} on {labels['node']}: "
                          f"{record['message']}")

    def _finish(self, ref: BenchmarkRef, status: Mapping[str, Any]) -> None:
        if "__finished__" in self.announced:
            return
        self.announced.add("__finished__")
        p50 = status.get("p50TimeToFirstStepSeconds")
        p50_text = f", p50 time to first step {p50:.2f}s" if p50 is not None else ""
        self.io.event(ref, "Normal" if status["phase"] == st.SUCCEEDED else "Warning", f"Benchmark{status['phase']}",
                      f"{status['succeeded']} of {status['total']} runs succeeded{p50_text}")
        thresholds = st.get_condition(status.get("conditions"), st.COND_THRESHOLDS)
        if thresholds and thresholds.get("status") in ("True", "False") and status.get("thresholds"):
            self.io.event(ref, "Normal" if thresholds["status"] == "True" else "Warning",
                          thresholds.get("reason", "Thresholds"), thresholds.get("message", ""))


def _changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    return any(old.get(k) != v for k, v in new.items())


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _references(images: Mapping[str, Any]) -> dict[str, str]:
    """The references of the images status.images holds (built ones, and read ones)."""
    return {k: v["reference"] for k, v in images.items() if (v or {}).get("reference")}
