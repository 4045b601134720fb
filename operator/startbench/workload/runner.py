"""The workload's run: arguments, phases, marks, metrics and the report, including on failure.

Every exit path writes exactly one report: a normal end, an exception in any phase (failed_phase is the
first mark not reached), invalid arguments, and SIGTERM. SIGTERM is handled on a thread woken through
signal.set_wakeup_fd, so the report is written even while the main thread is inside a long framework
call; the process then exits with 143 (128 + SIGTERM), as Kubernetes expects of a terminated container.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass

from startbench.workload.frameworks import FRAMEWORKS, load_backend
from startbench.workload.marks import MARKS, Marks, next_mark
from startbench.workload.perf import (MODELS, PRECISIONS, device_peak_tflops, formula_flops_per_sample, step_metrics,
                                     summarize_gpu_samples)
from startbench.workload.report import build_report, write_report

FAIL_AT_ENV = "STARTBENCH_WORKLOAD_FAIL_AT"
INJECTABLE = MARKS[2:]  # interpreter_ready is taken before the arguments are read
SHAPES = {"imagenet": (224, 1000), "tiny-imagenet": (64, 200)}
EXIT_FAILED = 1
EXIT_SIGTERM = 128 + signal.SIGTERM


def log(message: str) -> None:
    print(f"startbench-workload: {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class RunConfig:
    framework: str
    model: str
    steps: int
    batch_size: int
    precision: str
    image_size: int
    num_classes: int
    data: str | None
    device: str
    fail_at: str | None
    gpu_sampler: bool = True
    clock_skew_ms: float = 0.0

    def report_config(self) -> dict:
        return {"steps": self.steps, "batch_size": self.batch_size, "precision": self.precision,
                "image_size": self.image_size, "data": "dataset" if self.data else "synthetic"}


class ArgumentError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # a report instead of argparse's exit(2), so the operator learns why
        raise ArgumentError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m startbench.workload",
                description="Measure a deep-learning pod's start (imports, device init, first step) and training "
                            "throughput; print a JSON report as the last line (docs/workload.md).")
    p.add_argument("--framework", choices=FRAMEWORKS, default=os.environ.get("STARTBENCH_FRAMEWORK", "pytorch"),
                   help="framework to run (default: env STARTBENCH_FRAMEWORK, else pytorch)")
    p.add_argument("--model", choices=MODELS, default="resnet18")
    p.add_argument("--steps", type=int, default=15, help="training steps, the first included (default 15, >= 2)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--precision", choices=PRECISIONS, default="fp32")
    p.add_argument("--shape", choices=sorted(SHAPES), default="imagenet",
                   help="imagenet: 224x224, 1000 classes; tiny-imagenet: 64x64, 200 classes")
    p.add_argument("--image-size", type=int, help="override the shape's image size")
    p.add_argument("--num-classes", type=int, help="override the shape's (or dataset's) class count")
    p.add_argument("--data", metavar="PATH", help="dataset (.npz or ImageFolder directory) instead of synthetic data")
    p.add_argument("--device", choices=("auto", "gpu", "cpu"), default="auto")
    p.add_argument("--no-gpu-sampler", dest="gpu_sampler", action="store_false",
                   help="do not sample NVML during the steady window (GPU metrics are then null; for measuring "
                        "the sampler's own cost)")
    p.add_argument("--clock-skew-ms", type=float, default=0.0,
                   help="tests: report every mark as if this pod's clock were this far ahead (negative: behind)")
    p.add_argument("--fail-at", choices=INJECTABLE, default=os.environ.get(FAIL_AT_ENV) or None,
                   help=f"fail on purpose just before this mark (tests; default: env {FAIL_AT_ENV})")
    return p


def parse_config(argv: list[str]) -> RunConfig:
    a = build_parser().parse_args(argv)
    if a.fail_at is not None and a.fail_at not in INJECTABLE:  # argparse does not check defaults
        raise ArgumentError(f"{FAIL_AT_ENV}={a.fail_at!r}: use one of {', '.join(INJECTABLE)}")
    if a.steps < 2:
        raise ArgumentError(f"--steps {a.steps}: at least 2 (the first step, then a steady window)")
    if a.batch_size < 1:
        raise ArgumentError(f"--batch-size {a.batch_size}: must be at least 1")
    size, classes = SHAPES[a.shape]
    image_size = a.image_size or size
    if image_size < 32:
        raise ArgumentError(f"--image-size {image_size}: at least 32 (the models downsample 32x)")
    return RunConfig(framework=a.framework, model=a.model, steps=a.steps, batch_size=a.batch_size,
                     precision=a.precision, image_size=image_size, num_classes=a.num_classes or classes,
                     data=a.data, device=a.device, fail_at=a.fail_at, gpu_sampler=a.gpu_sampler,
                     clock_skew_ms=a.clock_skew_ms)


def _guess_identity(argv: list[str]) -> tuple[str, str]:
    """framework and model for a report when the arguments did not parse."""
    found = {"--framework": os.environ.get("STARTBENCH_FRAMEWORK", "pytorch"), "--model": "resnet18"}
    for i, arg in enumerate(argv):
        for flag in found:
            if arg == flag and i + 1 < len(argv):
                found[flag] = argv[i + 1]
            elif arg.startswith(flag + "="):
                found[flag] = arg.split("=", 1)[1]
    return found["--framework"] or "unknown", found["--model"] or "unknown"


class InjectedFailure(RuntimeError):
    pass


class Run:
    """One run's state; report() writes the single report, whichever path gets there first."""

    def __init__(self, marks: Marks, framework: str, model: str):
        self.marks = marks
        self.framework = framework
        self.model = model
        self.cfg: RunConfig | None = None
        self.device: dict | None = None
        self.versions: dict[str, str] = {"python": sys.version.split()[0]}
        self.notes: dict[str, str] = {}
        self._lock = threading.Lock()
        self._reported = False
        self.wakeup_sockets: tuple | None = None

    def report(self, metrics: dict | None = None, error: str | None = None, flops: dict | None = None,
               blocking: bool = True) -> bool:
        """Write the report unless one was written; False when it was (or, not blocking, is being) written."""
        if not self._lock.acquire(blocking=blocking):
            return False
        try:
            if self._reported:
                return False
            self._reported = True
            doc = build_report(framework=self.framework, model=self.model, marks_ms=dict(self.marks.wall_ms),
                               device=self.device, config=self.cfg.report_config() if self.cfg else None,
                               metrics=metrics, error=error, flops=flops, versions=self.versions,
                               notes=self.notes)
            write_report(doc)
            return True
        finally:
            self._lock.release()


def _terminate(run: Run, blocking: bool) -> None:
    phase = next_mark(run.marks.wall_ms) or MARKS[-1]
    log(f"SIGTERM before mark {phase}: writing the report and exiting")
    if run.report(error=f"terminated by SIGTERM before mark {phase!r}", blocking=blocking) or blocking:
        sys.stdout.flush()
        os._exit(EXIT_SIGTERM)
    # Not blocking and the lock is taken: the main thread is writing its own report; let it finish and exit.


def _watch_sigterm(run: Run) -> None:
    """Write a failure report and exit 143 as soon as SIGTERM arrives, whatever the main thread is doing.

    The C-level signal handler writes the signal number to a socket (set_wakeup_fd) at once; a thread blocked
    on that socket does the work, so a main thread busy inside a framework call does not delay it. The
    Python-level handler, which runs in the main thread between bytecodes, is the fallback should the thread
    be gone: SIGTERM is never swallowed."""
    if threading.current_thread() is not threading.main_thread():
        return
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    run.wakeup_sockets = (reader, writer)  # kept alive with the run: a collected socket closes its fd

    def wait() -> None:
        while True:
            data = reader.recv(16)
            if not data:
                return
            if signal.SIGTERM in data:
                _terminate(run, blocking=True)

    watcher = threading.Thread(target=wait, name="startbench-sigterm", daemon=True)

    def on_sigterm(signum, frame) -> None:
        if not watcher.is_alive():
            _terminate(run, blocking=False)

    signal.signal(signal.SIGTERM, on_sigterm)
    signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    watcher.start()


def main(argv: list[str] | None = None, anchor: tuple[int, int] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    marks = Marks(anchor)
    marks.mark("interpreter_ready")
    framework, model = _guess_identity(argv)
    run = Run(marks, framework, model)
    _watch_sigterm(run)
    log(f"interpreter_ready at +{marks.elapsed_ms('interpreter_ready'):.1f} ms")
    try:
        cfg = parse_config(argv)
    except ArgumentError as exc:
        log(f"invalid arguments: {exc}")
        run.report(error=f"invalid arguments: {exc}")
        return EXIT_FAILED
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    run.cfg = cfg
    if cfg.clock_skew_ms:
        marks.skew(cfg.clock_skew_ms)
    try:
        return _run_phases(run, cfg)
    except BaseException as exc:  # any phase, KeyboardInterrupt included: the report says which and why
        phase = next_mark(marks.wall_ms) or MARKS[-1]
        log(f"failed before mark {phase}: {type(exc).__name__}: {exc}")
        run.report(error=f"{type(exc).__name__}: {exc}")
        return EXIT_FAILED


def _run_phases(run: Run, cfg: RunConfig) -> int:
    marks = run.marks

    def reach(name: str) -> None:
        if cfg.fail_at == name:
            raise InjectedFailure(f"failure injected before mark {name!r} ({FAIL_AT_ENV} or --fail-at)")
        marks.mark(name)
        log(f"{name} at +{marks.elapsed_ms(name):.1f} ms")

    backend = load_backend(cfg.framework)
    run.versions.update(backend.import_framework())
    reach("framework_imported")
    run.device = backend.init_device(cfg.device)
    gpu = _find_gpu(run) if run.device.get("kind") == "gpu" else None
    reach("device_ready")
    backend.build_model(cfg)
    reach("model_built")
    dataset = None
    if cfg.data:
        from startbench.workload.data import load_dataset

        dataset = load_dataset(cfg.data, cfg.image_size, cfg.steps * cfg.batch_size)
    backend.prepare_data(cfg, dataset)
    reach("data_ready")
    backend.step()
    reach("first_step")

    sampler = None
    if gpu is not None and gpu.device is not None and cfg.gpu_sampler:
        from startbench.workload.gpu import GpuSampler

        sampler = GpuSampler(gpu.nv, gpu.device.handle)
        if not sampler.start():
            sampler = None
    step_times = []
    try:
        for _ in range(cfg.steps - 1):
            t0 = time.perf_counter()
            backend.step()
            step_times.append(time.perf_counter() - t0)
        reach("steady_end")
    finally:
        samples = sampler.stop() if sampler is not None else []

    flops = None
    try:
        counted = backend.counted_flops_per_sample(cfg)
        if counted:
            flops = {"per_sample": counted, "source": "counter"}
    except Exception as exc:  # the formula below counts the same thing
        log(f"FLOP counter failed ({type(exc).__name__}: {exc}); using the FLOPs formula")
    if flops is None:
        flops = {"per_sample": formula_flops_per_sample(cfg.model, cfg.image_size, cfg.num_classes), "source": "formula"}
    peak = None
    if run.device.get("kind") == "gpu":
        mig = run.device.get("mig")
        peak, share, note = device_peak_tflops(run.device.get("name"), cfg.precision, mig)
        if mig is not None:
            mig["share"] = share
        if note:
            run.notes["mfu"] = note
    metrics = step_metrics(step_times, cfg.batch_size, flops["per_sample"], peak)
    if samples:
        metrics.update(summarize_gpu_samples(samples))
    if run.device.get("kind") == "gpu":
        metrics["framework_mem_peak_mib"], memory_note = _memory_report(backend)
        if memory_note:
            run.notes["memory"] = memory_note
    run.report(metrics=metrics, flops=flops)
    return 0


def _find_gpu(run: Run):
    """The NVML device the framework trains on (workload/gpu.py), its name and MIG slice into run.device, and
    the notes on which device was sampled and on GPUs left idle. NVML's name wins over the framework's: it
    names a MIG slice's profile and is what the peak table matches."""
    from startbench.workload.gpu import probe

    cfg = run.cfg
    found = probe(framework_uuid=run.device.pop("uuid", None), ordinal=run.device.pop("ordinal", 0) or 0)
    if found.device is not None:
        run.device["name"] = found.device.name
        run.device["uuid"] = found.device.uuid
        if found.device.mig is not None:
            run.device["mig"] = dict(found.device.mig)
        if cfg is not None and not cfg.gpu_sampler:
            sampled = "NVML sampler off (--no-gpu-sampler): GPU metrics null"
        elif found.device.mig is not None:
            sampled = "NVML has no utilisation counters for a MIG slice (gpu_util, mem_util null)"
        else:
            sampled = "sampled"
        run.notes["sampler"] = f"NVML device chosen by {found.how}; {sampled}"
    else:
        run.notes["sampler"] = f"{found.how}: GPU metrics null"
    log(f"GPU: {run.notes['sampler']}")
    count = run.device.get("count") or 0
    if count > 1:
        run.notes["gpus"] = (f"trains on 1 GPU of the {count} visible: the workload is single-device, the other "
                             f"{count - 1} stay idle (throughput, TFLOPS and MFU are for one GPU)")
        log(run.notes["gpus"])
    return found


def _memory_report(backend) -> tuple[float | None, str | None]:
    try:
        return backend.memory_report()
    except Exception as exc:  # a statistic the framework cannot give must not fail a finished run
        log(f"memory statistics unavailable ({type(exc).__name__}: {exc})")
        return None, None
