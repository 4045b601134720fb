"""NVML sampling (nvidia-ml-py, imported as pynvml) on a thread, every 100 ms by default. I/O only: the
statistics are perf.summarize_gpu_samples. Never used on a CPU run, where every GPU field stays null.

Untested here: the development and CI machines have no GPU (docs/workload.md says what was verified).
"""

from __future__ import annotations

import sys
import threading


def nvml_device_name(index: int = 0) -> str | None:
    """The NVML name of GPU `index` ("NVIDIA H100 80GB HBM3"), or None without NVML or a GPU."""
    try:
        import pynvml
        pynvml.nvmlInit()
    except Exception:  # ImportError, or NVMLError when no driver is loaded
        return None
    try:
        name = pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(index))
        return name.decode() if isinstance(name, bytes) else str(name)
    except Exception:
        return None
    finally:
        pynvml.nvmlShutdown()


class GpuSampler:
    """Samples GPU `index` from start() to stop(): one sample at each end and every `interval_s` between,
    so even a window shorter than the interval has two samples (NVML's utilisation counters already
    average over the last 1/6 to 1 s)."""

    def __init__(self, index: int = 0, interval_s: float = 0.1):
        self.index = index
        self.interval_s = interval_s
        self.samples: list[dict[str, float | None]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._nvml = None
        self._handle = None

    def start(self) -> bool:
        """Start sampling; False (and a note on stderr) when NVML is unavailable."""
        try:
            import pynvml
            pynvml.nvmlInit()
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(self.index)
            self._nvml = pynvml
        except Exception as exc:
            print(f"startbench-workload: NVML unavailable, GPU metrics will be null ({exc})", file=sys.stderr, flush=True)
            return False
        self._sample()
        self._thread = threading.Thread(target=self._run, name="startbench-nvml", daemon=True)
        self._thread.start()
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def _field(self, fn, *args):
        try:
            return fn(self._handle, *args)
        except Exception:  # a field this GPU or driver does not support stays None for that sample
            return None

    def _sample(self) -> None:
        nv = self._nvml
        util = self._field(nv.nvmlDeviceGetUtilizationRates)
        mem = self._field(nv.nvmlDeviceGetMemoryInfo)
        power_mw = self._field(nv.nvmlDeviceGetPowerUsage)
        clock = self._field(nv.nvmlDeviceGetClockInfo, nv.NVML_CLOCK_SM)
        self.samples.append({
            "gpu_util": float(util.gpu) if util is not None else None,
            "mem_util": float(util.memory) if util is not None else None,
            "mem_used_mib": mem.used / 2**20 if mem is not None else None,
            "power_w": power_mw / 1000.0 if power_mw is not None else None,
            "sm_clock_mhz": float(clock) if clock is not None else None,
        })

    def stop(self) -> list[dict[str, float | None]]:
        if self._nvml is None:
            return self.samples
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self._sample()
        try:
            self._nvml.nvmlShutdown()
        except Exception:
            pass
        self._nvml = None
        return self.samples
