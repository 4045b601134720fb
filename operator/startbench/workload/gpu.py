"""NVML (nvidia-ml-py, imported as pynvml): which GPU the framework trains on, its name and MIG slice, and a
sampler of that one device on a thread. The statistics are perf.summarize_gpu_samples; the MFU of a MIG slice
is perf.device_peak_tflops. Never used on a CPU run, where every GPU field stays null.

Which device: NVML numbers every GPU of the machine (or of the container, as the runtime mounted them), while
the framework trains on its device 0, which CUDA_VISIBLE_DEVICES (indices, GPU-UUIDs or MIG-UUIDs, unique
prefixes allowed) picks among them. So the device is found by UUID, in this order:
  1. the UUID the framework reports for its device (PyTorch does: get_device_properties(0).uuid);
  2. else the CUDA_VISIBLE_DEVICES entry of the framework's device ordinal: an index is NVML's index (exact
     with CUDA_DEVICE_ORDER=PCI_BUS_ID or identical GPUs: CUDA's default order is fastest first), a UUID is
     matched against every GPU and every MIG device;
  3. else (unset) NVML index `ordinal`.
A GPU in MIG mode is never trained on as a whole: an index that names one means its first MIG device.

Tested with a stand-in for the pynvml module only (tests/unit/test_workload_gpu.py); no GPU has run this yet
(docs/workload.md says what was verified).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import sys
import threading
from collections.abc import Mapping
from typing import Any

VISIBLE_ENV = "CUDA_VISIBLE_DEVICES"
_ENTRY = re.compile(r"\d+|(?:GPU|MIG)-\S+", re.IGNORECASE)
NVML_DEVICE_MIG_ENABLE = 1  # pynvml.NVML_DEVICE_MIG_ENABLE


def _entry_kind(entry: str) -> str | None:
    if not _ENTRY.fullmatch(entry):
        return None
    return "index" if entry.isdigit() else entry[:4].upper()


def parse_visible_devices(value: str | None) -> list[str] | None:
    """CUDA_VISIBLE_DEVICES as CUDA reads it (and PyTorch's reading of it): None when unset (every device is
    visible), else its entries in order up to the first invalid one, which CUDA ignores with every entry after
    it; entries are all indices, all GPU-UUIDs or all MIG-UUIDs, so one of another kind also ends the list.
    "" gives []."""
    if value is None:
        return None
    entries: list[str] = []
    for raw in value.split(","):
        entry = raw.strip()
        kind = _entry_kind(entry)
        if kind is None or (entries and kind != _entry_kind(entries[0])):
            break
        entries.append(entry)
    return entries


def uuid_key(text: str) -> str:
    """A UUID without its GPU- or MIG- prefix, lower case: NVML spells "GPU-5d3c…", "MIG-8a1f…"; PyTorch gives
    the bare "5d3c…"."""
    key = text.strip().lower()
    for prefix in ("gpu-", "mig-"):
        if key.startswith(prefix):
            return key[len(prefix):]
    return key


@dataclasses.dataclass
class NvmlDevice:
    """One device NVML can sample: a whole GPU, or a MIG device (then `mig` holds its size)."""
    handle: Any
    uuid: str
    name: str
    index: int                       # NVML index of the GPU (of the parent GPU, for a MIG device)
    mig: dict[str, int] | None = None     # {"slices": GPU-instance slices, "sms": multiprocessors}, either may be absent
    mig_enabled: bool = False        # a whole GPU in MIG mode (work runs on its MIG devices, never on it)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def mig_name(parent_name: str, nvml_name: str | None, slices: int | None, memory_mib: int | None) -> str:
    """A MIG device's name with its profile, e.g. "NVIDIA H100 80GB HBM3 MIG 1g.10gb": NVML's own name when it
    has the profile (recent drivers), else made from the slice count and memory (GiB rounded up, which gives
    the profile's name on A100 and H100; an approximation elsewhere)."""
    if nvml_name and "MIG" in nvml_name:
        return nvml_name if not nvml_name.startswith("MIG") else f"{parent_name} {nvml_name}"
    if slices:
        memory = f".{math.ceil(memory_mib / 1024)}gb" if memory_mib else ""
        return f"{parent_name} MIG {slices}g{memory}"
    return f"{parent_name} MIG"


def _mig_devices(nv, parent, index: int, parent_name: str) -> tuple[bool, list[NvmlDevice]]:
    """(MIG mode on, the MIG devices) of the GPU `parent`."""
    try:
        current = nv.nvmlDeviceGetMigMode(parent)[0]
    except Exception:  # no MIG on this GPU or driver
        return False, []
    if current != getattr(nv, "NVML_DEVICE_MIG_ENABLE", NVML_DEVICE_MIG_ENABLE):
        return False, []
    found = []
    try:
        count = nv.nvmlDeviceGetMaxMigDeviceCount(parent)
    except Exception:
        return True, []
    for j in range(count):
        try:
            handle = nv.nvmlDeviceGetMigDeviceHandleByIndex(parent, j)
        except Exception:  # NVML_ERROR_NOT_FOUND: no MIG device at this slot (or not visible here)
            continue
        found.append(_mig_device(nv, handle, index, parent_name))
    return True, found


def _mig_device(nv, handle, index: int, parent_name: str) -> NvmlDevice:
    mig: dict[str, int] = {}
    memory = None
    try:
        attrs = nv.nvmlDeviceGetAttributes(handle)
        mig = {"slices": int(attrs.gpuInstanceSliceCount), "sms": int(attrs.multiprocessorCount)}
        memory = int(attrs.memorySizeMB)
    except Exception:  # an old driver: the slice stays unsized, and has no MFU
        pass
    try:
        own = _text(nv.nvmlDeviceGetName(handle))
    except Exception:
        own = None
    return NvmlDevice(handle, _text(nv.nvmlDeviceGetUUID(handle)),
                      mig_name(parent_name, own, mig.get("slices"), memory), index, mig=mig)


def enumerate_devices(nv) -> list[NvmlDevice]:
    """Every GPU NVML sees, each followed by its MIG devices when it is in MIG mode."""
    out: list[NvmlDevice] = []
    for i in range(nv.nvmlDeviceGetCount()):
        handle = nv.nvmlDeviceGetHandleByIndex(i)
        name = _text(nv.nvmlDeviceGetName(handle))
        enabled, migs = _mig_devices(nv, handle, i, name)
        out.append(NvmlDevice(handle, _text(nv.nvmlDeviceGetUUID(handle)), name, i, mig_enabled=enabled))
        out.extend(migs)
    return out


def match_uuid(wanted: str, devices: list[NvmlDevice]) -> NvmlDevice | None:
    """The one device whose UUID `wanted` names, as CUDA reads it: the whole UUID or a unique prefix; a
    GPU- or MIG- prefix restricts the match to whole GPUs or MIG devices. None when none or several match."""
    key = uuid_key(wanted)
    if not key:
        return None
    kind = wanted.strip().lower()[:4]
    candidates = [d for d in devices if uuid_key(d.uuid).startswith(key)
                  and (kind != "mig-" or d.mig is not None) and (kind != "gpu-" or d.mig is None)]
    return candidates[0] if len(candidates) == 1 else None


def _by_index(devices: list[NvmlDevice], index: int) -> NvmlDevice | None:
    """The GPU at NVML index `index`, or its first MIG device when it is in MIG mode."""
    gpu = next((d for d in devices if d.index == index and d.mig is None), None)
    if gpu is not None and gpu.mig_enabled:
        return next((d for d in devices if d.index == index and d.mig is not None), None)
    return gpu


def _by_uuid_lookup(nv, uuid: str) -> NvmlDevice | None:
    """NVML's own look-up of a whole UUID (it also knows MIG devices that enumeration did not show)."""
    try:
        handle = nv.nvmlDeviceGetHandleByUUID(uuid)
    except Exception:
        return None
    try:
        is_mig = bool(nv.nvmlDeviceIsMigDeviceHandle(handle))
    except Exception:
        is_mig = uuid.strip().upper().startswith("MIG-")
    if is_mig:
        try:
            parent = nv.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(handle)
            parent_name, index = _text(nv.nvmlDeviceGetName(parent)), int(nv.nvmlDeviceGetIndex(parent))
        except Exception:
            parent_name, index = "NVIDIA GPU", -1
        return _mig_device(nv, handle, index, parent_name)
    try:
        index = int(nv.nvmlDeviceGetIndex(handle))
    except Exception:
        index = -1
    return NvmlDevice(handle, _text(nv.nvmlDeviceGetUUID(handle)), _text(nv.nvmlDeviceGetName(handle)), index)


def select_device(nv, framework_uuid: str | None = None, ordinal: int = 0,
                  env: Mapping[str, str] | None = None) -> tuple[NvmlDevice | None, str]:
    """(the device the framework trains on, what chose it) or (None, why none); see the module's docstring.
    `nv` is the pynvml module, initialised."""
    env = os.environ if env is None else env
    devices = enumerate_devices(nv)
    if framework_uuid:
        found = match_uuid(framework_uuid, devices) or _by_uuid_lookup(nv, framework_uuid)
        if found is not None:
            return found, "the framework's device UUID"
    visible = env.get(VISIBLE_ENV)
    entries = parse_visible_devices(visible)
    if entries is not None:
        if ordinal >= len(entries):
            return None, f"{VISIBLE_ENV}={visible!r} has no entry {ordinal}: no NVML device matched"
        entry = entries[ordinal]
        if entry.isdigit():
            found, how = _by_index(devices, int(entry)), f"{VISIBLE_ENV} entry {ordinal} (index {entry})"
        else:
            found = match_uuid(entry, devices) or _by_uuid_lookup(nv, entry)
            if found is not None and found.mig_enabled:  # a GPU in MIG mode: CUDA shows its MIG devices
                found = _by_index(devices, found.index)
            how = f"{VISIBLE_ENV} entry {ordinal} ({entry[:16]})"
    else:
        found, how = _by_index(devices, ordinal), f"NVML index {ordinal} ({VISIBLE_ENV} unset)"
    if found is None:
        return None, f"{how}: no NVML device matched"
    if entries is None or entry.isdigit():
        names = {d.name for d in devices if d.mig is None}
        if len(names) > 1 and env.get("CUDA_DEVICE_ORDER") != "PCI_BUS_ID":
            how += " (mixed GPUs: CUDA's order may differ, set CUDA_DEVICE_ORDER=PCI_BUS_ID)"
    return found, how


@dataclasses.dataclass
class GpuProbe:
    """What probe() found: the device (None when NVML is missing or nothing matched), how it was chosen or why
    none was, and the initialised pynvml module for the sampler."""
    device: NvmlDevice | None
    how: str
    nv: Any = None


def probe(framework_uuid: str | None = None, ordinal: int = 0, env: Mapping[str, str] | None = None) -> GpuProbe:
    """Initialise NVML and find the framework's device. NVML stays initialised for the sampler (nvmlInit is
    reference-counted; the process ends without tearing it down)."""
    try:
        import pynvml
    except ImportError:
        return GpuProbe(None, "NVML unavailable (nvidia-ml-py is not installed in this image)")
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError when no driver is loaded or the library is not mounted
        return GpuProbe(None, f"NVML unavailable ({type(exc).__name__}: {str(exc)[:80]})")
    try:
        device, how = select_device(pynvml, framework_uuid, ordinal, env)
    except Exception as exc:
        return GpuProbe(None, f"NVML device look-up failed ({type(exc).__name__}: {str(exc)[:80]})", pynvml)
    return GpuProbe(device, how, pynvml)


class GpuSampler:
    """Samples one NVML device from start() to stop(): one sample at each end and every `interval_s` between,
    so even a window shorter than the interval has two samples (NVML's utilisation counters already
    average over the last 1/6 to 1 s). A field the device does not give (a MIG device has no utilisation
    counters) stays None."""

    def __init__(self, nv, handle, interval_s: float = 0.1):
        self.interval_s = interval_s
        self.samples: list[dict[str, float | None]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._nvml = nv
        self._handle = handle
        self._running = False

    def start(self) -> bool:
        """Start sampling; False (and a note on stderr) when even the first sample fails."""
        try:
            self._sample()
        except Exception as exc:
            print(f"startbench-workload: NVML sampling failed, GPU metrics will be null ({exc})", file=sys.stderr,
                  flush=True)
            return False
        self._running = True
        self._thread = threading.Thread(target=self._run, name="startbench-nvml", daemon=True)
        self._thread.start()
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def _field(self, fn, *args):
        try:
            return fn(self._handle, *args)
        except Exception:  # a field this device or driver does not support stays None for that sample
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
        if not self._running:
            return self.samples
        self._running = False
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self._sample()
        return self.samples
