"""Prometheus metrics of the operator (prometheus-client). All names start with `startbench_`.

Label cardinality is bounded on purpose: a benchmark, an image *name* from the spec (not a digest),
a node, a phase and a handful of enums. No pod names and no run ids ever become labels; per-run
detail lives in the Benchmark's status and run records.

The README's "Metrics" table documents every metric here; a unit test keeps the two in step.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from startbench.core.contracts import PHASES

# Startup phases span milliseconds (scheduling on an idle cluster) to many minutes (a cold pull of a
# multi-gigabyte image on a slow link).
PHASE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 3600)


RUN_LABELS = ("benchmark", "image", "framework", "variant", "node", "gpu_product", "cache")
TRAINING_LABELS = ("benchmark", "image", "framework", "model", "node")


class Metrics:
    """The operator's metrics, on their own registry so tests can make as many as they like."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.phase_seconds = Histogram(
            "startbench_phase_seconds", "Duration of one startup phase of a benchmark run.",
            RUN_LABELS + ("phase",), buckets=PHASE_BUCKETS, registry=r)
        self.time_to_first_step_seconds = Histogram(
            "startbench_time_to_first_step_seconds",
            "Pod creation to the end of the first training step; runs without an in-pod report (simulated nodes, "
            "framework none) have no first step and are not observed here.",
            RUN_LABELS, buckets=PHASE_BUCKETS, registry=r)
        self.image_size_bytes = Gauge(
            "startbench_image_size_bytes", "Size of a framework image.",
            ("benchmark", "image", "framework", "variant", "kind"), registry=r)
        self.image_layers = Gauge(
            "startbench_image_layers", "Number of layers of a framework image.",
            ("benchmark", "image", "framework", "variant"), registry=r)
        self.pull_throughput = Gauge(
            "startbench_pull_throughput_bytes_per_second",
            "Compressed bytes per second of pull time, last download of the image on the node (observed cache miss; "
            "pulls that transferred nothing are left out).",
            ("node", "image"), registry=r)
        self.samples_per_second = Gauge(
            "startbench_training_samples_per_second", "Training throughput in the steady window of a run.",
            TRAINING_LABELS, registry=r)
        self.tflops = Gauge(
            "startbench_training_tflops", "Achieved training TFLOP/s in the steady window of a run.",
            TRAINING_LABELS, registry=r)
        self.mfu = Gauge(
            "startbench_training_mfu", "Model FLOPs utilisation (achieved / peak of the GPU model), 0..1.",
            TRAINING_LABELS, registry=r)
        self.gpu_utilization = Gauge(
            "startbench_training_gpu_utilization_ratio", "Mean NVML GPU utilisation during the run, 0..1.",
            TRAINING_LABELS, registry=r)
        self.runs_total = Counter(
            "startbench_runs_total", "Benchmark runs finished, by result and reason.",
            ("benchmark", "result", "reason"), registry=r)
        self.benchmarks_active = Gauge(
            "startbench_benchmarks_active", "Benchmarks that are building or running now.", registry=r)
        self.operator_up = Gauge(
            "startbench_operator_up",
            "1 while the operator's Kopf loop has started and is not shutting down, else 0.", registry=r)
        self.reconcile_errors_total = Counter(
            "startbench_reconcile_errors_total", "Handler invocations that raised an unexpected error.",
            ("handler",), registry=r)

    def observe_run(
        self,
        labels: Mapping[str, str],
        phase_seconds: Mapping[str, float],
        total_seconds: float | None,
        result: str,
        reason: str,
    ) -> None:
        """Record one finished run: its phases, its total, and its result. Call once per run."""
        run_labels = {name: str(labels.get(name) or "") for name in RUN_LABELS}
        for phase, seconds in phase_seconds.items():
            if phase not in PHASES:
                raise ValueError(f"unknown phase {phase!r}; expected one of {', '.join(PHASES)}")
            if seconds is not None:
                self.phase_seconds.labels(**run_labels, phase=phase).observe(max(0.0, seconds))
        if total_seconds is not None:
            self.time_to_first_step_seconds.labels(**run_labels).observe(max(0.0, total_seconds))
        self.runs_total.labels(benchmark=run_labels["benchmark"], result=result, reason=reason or "").inc()

    def set_training(self, labels: Mapping[str, str], metrics: Mapping[str, float | None]) -> None:
        """Set the training gauges from an in-pod report's metrics; absent (None) metrics are left unset."""
        training_labels = {name: str(labels.get(name) or "") for name in TRAINING_LABELS}
        pairs = (
            (self.samples_per_second, metrics.get("samples_per_s"), 1.0),
            (self.tflops, metrics.get("tflops"), 1.0),
            (self.mfu, metrics.get("mfu"), 1.0),
            # The report gives utilisation in percent, as NVML does; the metric is a ratio.
            (self.gpu_utilization, metrics.get("gpu_util_mean"), 0.01),
        )
        for gauge, value, scale in pairs:
            if value is not None:
                gauge.labels(**training_labels).set(float(value) * scale)

    def set_image(self, benchmark: str, image: str, framework: str, variant: str,
                  compressed: int | None, uncompressed: int | None, layers: int | None) -> None:
        """`image` is the spec.images entry name, which only names an image within its benchmark."""
        labels = {"benchmark": benchmark, "image": image, "framework": framework, "variant": variant}
        for kind, value in (("compressed", compressed), ("uncompressed", uncompressed)):
            if value is not None:
                self.image_size_bytes.labels(**labels, kind=kind).set(value)
        if layers is not None:
            self.image_layers.labels(**labels).set(layers)

    def set_operator_up(self, up: bool) -> None:
        """Called by the operator's startup (True) and cleanup (False) handlers."""
        self.operator_up.set(1 if up else 0)

    def set_pull_throughput(self, node: str, image: str, bytes_per_second: float) -> None:
        self.pull_throughput.labels(node=node, image=image).set(bytes_per_second)

    def serve(self, port: int, address: str = "0.0.0.0"):
        """Serve /metrics over HTTP; returns the server so a caller (a test) can shut it down."""
        server, _thread = start_http_server(port, addr=address, registry=self.registry)
        return server
