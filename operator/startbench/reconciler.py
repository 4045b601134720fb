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

from startbench import status as st
from startbench.config import Config
from startbench.manifests import BenchmarkRef, pod_manifest
from startbench.metrics import Metrics
from startbench.observer import ANNOTATION_OBSERVATIONS, Observer, PodEntry, now_ms, serialize
from startbench.planner import PlanError, Run, RunState, next_runs, plan, select_nodes
from startbench.purge import purge_image
from startbench.spec import BenchmarkSpec, ImageEntry, SpecError
from startbench.timeline import Observations, read_report

log = logging.getLogger("startbench.reconciler")
TERMINAL = (st.SUCCEEDED, st.PARTIALLY_FAILED, st.FAILED)
SIMULATED_ANNOTATION = "kwok.x-k8s.io/node"
CREATE_WORKERS = 16  # concurrent pod creations (the API client's connection pool holds 32)


@dataclasses.dataclass
class Step:
    finished: bool
    status: dict[str, Any]


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
        self.records: dict[str, dict[str, Any]] | None = None
        self.chunks: list[str] = []
        self.created: dict[str, float] = {}  # runs this process created and has not seen on the watch yet
        self.announced: set[str] = set()
        self.node_meta: dict[str, tuple[dict[str, str], dict[str, str]]] = {}

    # --- helpers
    def _load_records(self, ref: BenchmarkRef) -> None:
        if self.records is None:
            self.chunks = self.io.read_records(ref.namespace, ref.name)
            self.records = {r["name"]: r for r in st.read_chunks(self.chunks)}

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
        return self._node(node)[1].get(SIMULATED_ANNOTATION) == "fake"

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

    # --- the step
    def step(self, body: Mapping[str, Any]) -> Step:
        ref = BenchmarkRef.from_body(body)
        meta, status = body["metadata"], dict(body.get("status") or {})
        generation = meta.get("generation", 1)
        if status.get("phase") in TERMINAL:
            return Step(True, status)
        try:
            spec = BenchmarkSpec.from_dict(body.get("spec") or {})
        except SpecError as err:
            return self._fail(ref, body, "InvalidSpec", str(err))

        patch: dict[str, Any] = {}
        nodes = status.get("nodes")
        if not nodes:
            try:
                selection = select_nodes(spec, self.io.list_nodes())
            except PlanError as err:
                return self._fail(ref, body, "NoUsableNodes", str(err))
            nodes = list(selection.nodes)
            # Kept at once: later steps (and a restarted operator) plan from this list, never from a new look.
            self.io.patch_status(ref, {"nodes": nodes, "startedAt": status.get("startedAt") or _now(),
                                       "phase": st.RUNNING, "observedGeneration": generation})
            skipped = f"; {len(selection.excluded)} matching node(s) excluded" if selection.excluded else ""
            self.io.event(ref, "Normal", "Planned", f"{spec.max_runs()} runs over {len(nodes)} node(s){skipped}")

        built = dict(status.get("images") or {})
        spec = spec.with_built_images({k: v["reference"] for k, v in built.items() if (v or {}).get("reference")})
        if spec.unbuilt_images:
            if self.build_images is None:
                return self._fail(ref, body, "ImageBuildUnavailable",
                                  "spec.images asks the operator to build images, but this operator has no Docker "
                                  "engine (set STARTBENCH_DOCKER_HOST, or enable the chart's dind builder)")
            names = ", ".join(e.name for e in spec.unbuilt_images)
            self.io.patch_status(ref, {"phase": st.BUILDING, "message": f"building images {names}"})
            self.io.event(ref, "Normal", "Building", f"building images {names}")
            try:
                built.update(self.build_images(ref, spec, lambda m: log.info("%s: %s", ref.name, m)))
            except Exception as err:  # ends the benchmark in the build's own words (with its log's last lines)
                return self._fail(ref, body, "ImageBuildFailed", str(err))
            # Kept at once, so a restarted operator does not build them again.
            self.io.patch_status(ref, {"images": built, "message": f"built images {names}"})
            self.io.event(ref, "Normal", "Built", f"built images {names}")
            spec = spec.with_built_images({k: v["reference"] for k, v in built.items()})
            self.images_published = False
        unread = [e for e in spec.images if e.build is None and e.name not in built]
        if unread and self.describe_image is not None:
            described = {e.name: self.describe_image(e) for e in unread}
            built.update(described)
            self.io.patch_status(ref, {"images": built})  # once: a restarted operator does not read them again
            for name, image in described.items():
                if image.get("message"):
                    self.io.event(ref, "Warning", "ImageUnreadable", f"images[{name}]: {image['message']}")
            self.images_published = False
        if not self.images_published:  # after a restart too: the metrics start empty
            self._publish_images(ref, built)

        runs = plan(ref.name, spec, nodes)
        by_name = {r.name: r for r in runs}
        self._load_records(ref)
        records = self.records
        pods = self.observer.pods_of(ref.namespace, ref.name)
        now = self.clock_ms()

        # 1. Runs that ended: record them (before anything deletes their pods).
        ended: list[tuple[Run, PodEntry, dict]] = []
        for name, entry in pods.items():
            run = by_name.get(name)
            if run is None or name in records:
                continue
            simulated = self._simulated(entry.obs.node or run.node)
            expects_report = spec.image(run.image).framework != "none" and not simulated
            report = read_report(entry.obs.termination_message) if expects_report else None
            outcome = st.run_outcome(entry.obs, report, now, spec.run_timeout_seconds,
                                     expects_report=expects_report, deleted=entry.deleted)
            if outcome is not None and simulated and outcome.reason == "Completed":
                outcome = dataclasses.replace(outcome, message="simulated node (KWOK): no workload runs there, so "
                                              "the timeline ends at container start")
            if outcome is not None:
                ended.append((run, entry, st.run_record(run, entry.obs, report, outcome, now)))
        for name in [n for n in self.created if n in pods or n in records]:
            del self.created[name]  # the watch has caught up with this creation
        if ended:
            for run, _, record in ended:
                records[run.name] = record
            new_chunks = st.chunk_records(records.values())
            patch["recordsConfigMaps"] = self.io.write_records(ref, new_chunks, self.chunks)
            self.chunks = new_chunks
            for run, _, record in ended:
                self._announce(ref, spec, run, record)

        # 2. Persist observations that changed, so a restarted operator resumes from them.
        for entry in self.observer.dirty(ref.namespace, ref.name):
            if entry.name in records:
                continue
            self.io.annotate_pod(ref.namespace, entry.name, {ANNOTATION_OBSERVATIONS: serialize(entry.obs)})
            self.observer.mark_persisted(ref.namespace, entry.name, entry.obs)

        # 3. Clean up pods of recorded runs, as spec.keepFinishedPods says.
        for name, entry in pods.items():
            if name in records and not entry.deleted and self._should_delete(spec, entry, records[name], now):
                self.io.delete_pod(ref.namespace, name)

        # 4. Start what may start now.
        states: dict[str, RunState] = {name: RunState.DONE for name in records}
        for name, entry in pods.items():
            if name not in records and not entry.deleted:
                states[name] = RunState.RUNNING
        for name in self.created:
            states.setdefault(name, RunState.RUNNING)
        parallelism = min(spec.parallelism, self.config.max_parallel_pods)
        to_start = []
        for run in next_runs(runs, states, parallelism, spec.mode):
            if run.purge_first:  # spec.purgeImageBeforeColdRun: make the cold run truly cold
                purged = purge_image(self.io.core, run.node, spec.image(run.image).reference,
                                     self.config.purge_namespace or None, self._simulated(run.node))
                if not purged.ok:
                    self._record_unstarted(ref, spec, run, "PurgeFailed", purged.message, records, patch)
                    states[run.name] = RunState.DONE
                    continue
                log.info("%s: %s", ref.name, purged.message)
            to_start.append(run)
        for run, created_ms, refusal in self._create_pods(ref, spec, to_start):
            if refusal is None:
                self.created[run.name] = created_ms
                states[run.name] = RunState.RUNNING
            else:
                self._record_unstarted(ref, spec, run, "PodRejected", refusal + "; fix the spec field the message "
                                       "names", records, patch, created_ms)
                states[run.name] = RunState.DONE

        # 5. Status.
        running = sum(1 for s in states.values() if s is RunState.RUNNING)
        out = st.progress_status(spec, runs, list(records.values()), running, status.get("conditions"), generation,
                                 _now())
        out.update(patch)
        complete = out["phase"] in TERMINAL
        if complete:
            out["finishedAt"] = status.get("finishedAt") or _now()
        if _changed(status, out):
            self.io.patch_status(ref, out)
        if complete:
            self._finish(ref, out)
        return Step(complete, out)

    def _record_unstarted(self, ref: BenchmarkRef, spec: BenchmarkSpec, run: Run, reason: str, message: str,
                          records: dict, patch: dict, created_ms: float | None = None) -> None:
        """Record a run that ended before its pod existed (the purge failed, the API refused the pod)."""
        at = self.clock_ms() if created_ms is None else created_ms
        record = st.run_record(run, Observations(created_ms=at), None, st.Outcome(st.FAILED, reason, message), at)
        records[run.name] = record
        new_chunks = st.chunk_records(records.values())
        patch["recordsConfigMaps"] = self.io.write_records(ref, new_chunks, self.chunks)
        self.chunks = new_chunks
        self._announce(ref, spec, run, record)

    def _create_pods(self, ref: BenchmarkRef, spec: BenchmarkSpec, to_start: list[Run]):
        """Create the pods of `to_start` (in parallel when there are many: a fan-out wave should start together,
        not one API round trip after another). Returns (run, created_ms, refusal or None) in plan order."""
        def create(run: Run) -> tuple[Run, float, str | None]:
            created_ms = self.clock_ms()
            return run, created_ms, self.io.create_pod(ref.namespace, pod_manifest(ref, spec, run, int(created_ms)))

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
        if pull.get("seconds") and pull.get("imageSizeBytes"):
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
