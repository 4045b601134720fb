"""A stand-in for the pynvml module (nvidia-ml-py) for tests on machines with no GPU: the functions
startbench.workload.gpu calls, answering from a described set of GPUs and MIG devices the way the NVML
documentation says the real library answers (MIG devices at sparse slots, NVMLError for a slot with none,
no utilisation counters on a MIG device). Only this module is replaced; everything else under test is real."""

from __future__ import annotations

import dataclasses
import types


class NVMLError(Exception):
    pass


class NVMLError_NotFound(NVMLError):
    pass


class NVMLError_NotSupported(NVMLError):
    pass


@dataclasses.dataclass
class Mig:
    uuid: str
    slot: int
    slices: int
    sms: int
    memory_mib: int
    name: str | None = None          # None: an old driver that names a MIG device like its GPU


@dataclasses.dataclass
class Gpu:
    uuid: str
    name: str = "NVIDIA H100 80GB HBM3"
    migs: list[Mig] | None = None    # None: MIG mode off
    enumerable: bool = True          # False: GetMaxMigDeviceCount fails (only look-up by UUID finds the MIGs)


@dataclasses.dataclass(frozen=True)
class Handle:
    gpu: int
    mig: int | None = None


def make_nvml(gpus: list[Gpu], available: bool = True) -> types.ModuleType:
    """A module object with pynvml's names, over `gpus` (NVML index = list position)."""
    nv = types.ModuleType("pynvml")
    nv.NVMLError = NVMLError
    nv.NVML_DEVICE_MIG_ENABLE = 1
    nv.NVML_DEVICE_MIG_DISABLE = 0
    nv.NVML_CLOCK_SM = 1
    nv.calls = []

    def mig_of(h: Handle) -> Mig:
        return next(m for m in gpus[h.gpu].migs or [] if m.slot == h.mig)

    def nvmlInit():
        if not available:
            raise NVMLError("Driver Not Loaded")

    nv.nvmlInit = nvmlInit
    nv.nvmlShutdown = lambda: None
    nv.nvmlDeviceGetCount = lambda: len(gpus)

    def get_by_index(i):
        if not 0 <= i < len(gpus):
            raise NVMLError("Invalid Argument")
        return Handle(i)

    nv.nvmlDeviceGetHandleByIndex = get_by_index

    def get_name(h):
        if h.mig is None:
            return gpus[h.gpu].name
        return mig_of(h).name or gpus[h.gpu].name

    nv.nvmlDeviceGetName = get_name
    nv.nvmlDeviceGetUUID = lambda h: gpus[h.gpu].uuid if h.mig is None else mig_of(h).uuid
    nv.nvmlDeviceGetIndex = lambda h: h.gpu

    def mig_mode(h):
        if h.mig is not None:
            raise NVMLError_NotSupported("Not Supported")
        on = gpus[h.gpu].migs is not None
        return [int(on), int(on)]

    nv.nvmlDeviceGetMigMode = mig_mode

    def max_count(h):
        if not gpus[h.gpu].enumerable:
            raise NVMLError("No Permission")
        return 7

    nv.nvmlDeviceGetMaxMigDeviceCount = max_count

    def mig_by_index(h, j):
        if not any(m.slot == j for m in gpus[h.gpu].migs or []):
            raise NVMLError_NotFound("Not Found")
        return Handle(h.gpu, j)

    nv.nvmlDeviceGetMigDeviceHandleByIndex = mig_by_index

    def attributes(h):
        if h.mig is None:
            raise NVMLError_NotSupported("Not Supported")  # documented: MIG device handles only
        m = mig_of(h)
        return types.SimpleNamespace(gpuInstanceSliceCount=m.slices, computeInstanceSliceCount=m.slices,
                                     multiprocessorCount=m.sms, memorySizeMB=m.memory_mib)

    nv.nvmlDeviceGetAttributes = attributes

    def by_uuid(uuid):
        nv.calls.append(("nvmlDeviceGetHandleByUUID", uuid))
        for i, g in enumerate(gpus):
            if g.uuid == uuid:
                return Handle(i)
            for m in g.migs or []:
                if m.uuid == uuid:
                    return Handle(i, m.slot)
        raise NVMLError_NotFound("Not Found")

    nv.nvmlDeviceGetHandleByUUID = by_uuid
    nv.nvmlDeviceIsMigDeviceHandle = lambda h: h.mig is not None
    nv.nvmlDeviceGetDeviceHandleFromMigDeviceHandle = lambda h: Handle(h.gpu)

    def utilization(h):
        if h.mig is not None:
            raise NVMLError_NotSupported("Not Supported")
        return types.SimpleNamespace(gpu=97, memory=41)

    nv.nvmlDeviceGetUtilizationRates = utilization
    nv.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(used=(9000 if h.mig is not None else 70000) * 2**20)
    nv.nvmlDeviceGetPowerUsage = lambda h: 650_000
    nv.nvmlDeviceGetClockInfo = lambda h, clock: 1980
    return nv


# A node like a real multi-GPU one: GPU 0 whole, GPU 1 in MIG mode with a 1g and a 3g slice at sparse slots.
UUID0 = "GPU-0a1b2c3d-0000-1111-2222-333344445555"
UUID1 = "GPU-1f2e3d4c-6666-7777-8888-9999aaaabbbb"
MIG_1G = "MIG-5e6f7a8b-1234-5678-9abc-def012345678"
MIG_3G = "MIG-9c8d7e6f-abcd-ef01-2345-6789abcdef01"


def h100_node(mig_names: bool = True, enumerable: bool = True) -> list[Gpu]:
    migs = [Mig(MIG_1G, 0, 1, 16, 9856, "NVIDIA H100 80GB HBM3 MIG 1g.10gb" if mig_names else None),
            Mig(MIG_3G, 3, 3, 60, 40320, "NVIDIA H100 80GB HBM3 MIG 3g.40gb" if mig_names else None)]
    return [Gpu(UUID0), Gpu(UUID1, migs=migs, enumerable=enumerable)]
