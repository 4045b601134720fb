"""Kopf registrations only: each handler is a few lines that hand over to the modules that do the work.

- startup: storage under startbench.dev, the shared Observer, API client, metrics and configuration.
- pod and event watches: stamp the arrival time first, then fold into the Observer.
- one daemon per Benchmark: calls BenchmarkReconciler.step() until the benchmark has finished.
Deleting a Benchmark deletes its pods and record ConfigMaps through their owner references (the garbage
collector); the daemon stops first.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import threading

import kopf

from startbench.core.contracts import FINALIZER, GROUP, LABEL_BENCHMARK, PLURAL, VERSION
from startbench.runtime import config as config_module
from startbench.runtime.metrics import Metrics
from startbench.runtime.observer import Observer, now_ms

STEP_SECONDS = 0.5


@kopf.on.login()
def on_login(**kwargs) -> kopf.ConnectionInfo | None:
    # In a pod: the ServiceAccount; elsewhere: $KUBECONFIG, read now (the client library reads it at import).
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


@kopf.on.startup()
def on_startup(settings: kopf.OperatorSettings, memo: kopf.Memo, logger, **_) -> None:
    from kubernetes import client, config as kube_config

    from startbench.runtime.kube import ClusterIO

    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = BenchmarkDiffBase(prefix=GROUP, key="last-handled")
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 300
    settings.execution.max_workers = 32
    cfg = memo.get("config") or config_module.load()
    try:
        kube_config.load_incluster_config()
    except kube_config.ConfigException:
        kube_config.load_kube_config(config_file=os.environ.get("KUBECONFIG") or None)
    configuration = client.Configuration.get_default_copy()
    configuration.connection_pool_maxsize = 32
    memo.config = cfg
    memo.io = ClusterIO(client.ApiClient(configuration))
    memo.observer = memo.get("observer") or Observer()
    memo.metrics = memo.get("metrics") or Metrics()
    memo.builder = memo.get("builder") or _image_builder(cfg, memo.metrics)
    if cfg.insecure_registries:
        from startbench.images.registry_api import allow_plain_http
        allow_plain_http(cfg.insecure_registries)
    logger.info("startbench operator started (namespaces: %s)", ", ".join(cfg.namespaces) or "all")
    memo.metrics.set_operator_up(True)


@kopf.on.cleanup()
def on_cleanup(memo: kopf.Memo, **_) -> None:
    if memo.get("metrics") is not None:
        memo.metrics.set_operator_up(False)


def _image_builder(cfg, metrics):
    """The image build hook for the reconciler, or None when the Docker SDK is not installed."""
    try:
        import docker  # noqa: F401
    except ImportError:
        return None
    from startbench.runtime import imagebuilds
    return imagebuilds.builder(cfg, metrics)


class BenchmarkDiffBase(kopf.AnnotationsDiffBaseStorage):
    """Kopf's diff base (the last-handled annotation), kept for the Benchmark only. Kopf builds one, a deep copy of
    the body, for every event of every watched resource; pods and kubelet events have watching handlers only
    (on.event), which never read it, so for them it is empty."""

    def build(self, *, body: kopf.Body, extra_fields=None):
        if body.get("kind") in UNDIFFED:
            return {}
        if extra_fields:
            return super().build(body=body, extra_fields=extra_fields)
        # Kopf deep-copies the whole body and then drops the status and most of the metadata; the status of a
        # large benchmark (nodes, nodeContext, summaries) is most of it, and each status patch comes back as an
        # event. The same essence from the parts it keeps:
        meta = body.get("metadata") or {}
        slim = {"metadata": {k: meta[k] for k in ("name", "namespace", "labels", "annotations") if k in meta},
                **{k: v for k, v in body.items() if k not in ("metadata", "status")}}
        return super().build(body=kopf.Body(slim), extra_fields=extra_fields)

    def fetch(self, *, body: kopf.Body):
        if body.get("kind") in UNDIFFED:
            return None
        return super().fetch(body=body)


UNDIFFED = ("Pod", "Event")


def served(namespace: str | None, memo: kopf.Memo, **_) -> bool:
    """Whether this operator serves `namespace` (STARTBENCH_NAMESPACES; empty: all). Glob patterns are matched
    here rather than by Kopf's namespace discovery, which can miss a namespace created as the operator starts."""
    patterns = memo.config.namespaces
    return not patterns or any(fnmatch.fnmatchcase(namespace or "", p) for p in patterns)


# The two watches below are async on purpose: they do no I/O (the Observer folds an update into memory under a
# short lock), and a sync handler costs a hop to Kopf's thread pool and back for each of the thousands of pod
# updates and kubelet events of a large benchmark.
@kopf.on.event("", "v1", "pods", labels={LABEL_BENCHMARK: kopf.PRESENT}, when=served)
async def on_pod_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_) -> None:
    arrival = now_ms()
    memo.observer.on_pod(type, dict(body), arrival)


@kopf.on.event("", "v1", "events", field="involvedObject.kind", value="Pod", when=served)
async def on_kubelet_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_) -> None:
    arrival = now_ms()
    if type is None:  # the initial listing after a (re)start: the event happened before we looked
        from startbench.core.timeline import rfc3339_ms
        arrival = rfc3339_ms(body.get("eventTime") or body.get("lastTimestamp") or body.get("firstTimestamp")) or arrival
    memo.observer.on_event(dict(body.get("involvedObject") or {}), body.get("reason"), body.get("message"), arrival)


# Not `when=served`: Kopf puts its finalizer only on objects some daemon matches, and takes it off the ones no
# handler of this operator matches. Two operators serving different namespaces (STARTBENCH_NAMESPACES) would then
# take turns adding and removing it on every Benchmark, each turn a patch and an event for every operator
# (thousands during one large benchmark). Every operator's daemon matches every Benchmark, so all agree on the
# finalizer, and returns at once from a Benchmark it does not serve.
@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=10.0)
def run_benchmark(stopped: kopf.DaemonStopped, body: kopf.Body, memo: kopf.Memo, logger, **_) -> None:
    if not served(body.get("metadata", {}).get("namespace"), memo):
        return
    from startbench.runtime.imageinspect import describe
    from startbench.runtime.reconciler import BenchmarkReconciler

    reconciler = BenchmarkReconciler(memo.io, memo.observer, memo.metrics, memo.config, build_images=memo.builder,
                                     describe_image=describe)
    memo.metrics.benchmarks_active.inc()
    try:
        while not stopped:
            try:
                if reconciler.step(dict(body)).finished:
                    return
            except Exception:
                memo.metrics.reconcile_errors_total.labels(handler="run_benchmark").inc()
                logger.exception("reconcile step failed; retrying")
                stopped.wait(5.0)
            stopped.wait(STEP_SECONDS)
    finally:
        memo.metrics.benchmarks_active.dec()


@kopf.on.delete(GROUP, VERSION, PLURAL, optional=True, when=served)
def on_benchmark_delete(body: kopf.Body, memo: kopf.Memo, **_) -> None:
    memo.observer.forget_benchmark(body["metadata"]["namespace"], body["metadata"]["name"])


def run_in_thread(memo: dict, namespaces: tuple[str, ...] = (), ready: threading.Event | None = None,
                  stop: threading.Event | None = None, liveness: str | None = None) -> threading.Thread:
    """Run the operator in a background thread of this process (tests and `startbench operator`)."""
    import asyncio
    import contextlib

    # Named namespaces: Kopf watches each. Any glob: one cluster-wide watch, filtered by `served`.
    clusterwide = not namespaces or any(set(ns) & set("*?[") for ns in namespaces)

    def target():
        registry = kopf.get_default_registry()
        with contextlib.suppress(asyncio.CancelledError):
            asyncio.run(kopf.operator(
                registry=registry, memo=kopf.Memo(memo), standalone=True, clusterwide=clusterwide,
                namespaces=[] if clusterwide else list(namespaces), ready_flag=ready, stop_flag=stop,
                liveness_endpoint=liveness))

    thread = threading.Thread(target=target, name="kopf", daemon=True)
    thread.start()
    return thread
