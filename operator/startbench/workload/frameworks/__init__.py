"""One backend per framework. Importing this package imports no framework: each backend imports its
framework inside import_framework(), the measured phase.

A backend is an object with:
  name                                   "pytorch", "jax" or "tensorflow"
  import_framework() -> dict[str, str]   import the framework; versions for the report
  init_device(want) -> dict              want is "auto", "cpu" or "gpu"; run one tiny synchronised
                                         operation; {"kind", "name", "count"}, and on a GPU "ordinal" (the
                                         CUDA ordinal trained on) and "uuid" where the framework tells it:
                                         the runner finds that device in NVML (workload/gpu.py)
  build_model(cfg)                       model, loss and optimiser for cfg.model / precision
  prepare_data(cfg, dataset)             dataset is None (synthetic) or (x uint8 NHWC, y, classes)
  step()                                 one training step, returning only when the device is done
  counted_flops_per_sample(cfg)          training FLOPs per sample from the framework's own counter,
                                         or None (then perf.formula_flops_per_sample is used)
  memory_report() -> (MiB, note)         peak device memory the framework allocated and a note on what
                                         NVML's figure holds besides (a preallocated pool, a cache);
                                         (None, None) on the CPU
"""

from __future__ import annotations

import importlib

BACKENDS: dict[str, str] = {
    "pytorch": "startbench.workload.frameworks.pytorch_backend:PyTorchBackend",
    "jax": "startbench.workload.frameworks.jax_backend:JaxBackend",
    "tensorflow": "startbench.workload.frameworks.tensorflow_backend:TensorFlowBackend",
}
FRAMEWORKS: tuple[str, ...] = tuple(BACKENDS)


def load_backend(name: str):
    if name not in BACKENDS:
        raise ValueError(f"unknown framework {name!r}: use one of {', '.join(FRAMEWORKS)}")
    module_name, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module_name), cls)()


def cpu_name() -> str | None:
    """The CPU model from /proc/cpuinfo, for the report's device name on a CPU run."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_count() -> int:
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
