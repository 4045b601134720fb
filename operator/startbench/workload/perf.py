"""Training metrics from step times (pure): throughput, step-time quantiles, FLOPs, TFLOPS and MFU.

FLOPs follow one convention everywhere: each multiply-accumulate (MAC) of a convolution or matrix
product is 2 FLOPs; element-wise work (batch norm, activations, pooling, the optimiser) is not counted.
A training step is the forward pass plus a backward pass that costs two forwards (gradients with
respect to inputs and to weights), except that the first layer needs no input gradient:
    training FLOPs per sample = 2 x (3 x forward MACs - first-layer MACs)
torch.utils.flop_counter counts exactly this for a real PyTorch step; the other frameworks use
model_macs(), which counts the same torchvision architectures layer by layer from their shapes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

# Forward multiply-accumulates per 224x224 image, 1000 classes, as torchvision lists them: the published
# reference that model_macs() is tested against (docs/workload.md).
TRAINING_MACS_224: dict[str, float] = {
    "resnet18": 1.81e9,
    "resnet50": 4.09e9,
    "alexnet": 0.714e9,
}
MODELS: tuple[str, ...] = tuple(TRAINING_MACS_224)


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0 <= q <= 1) with linear interpolation between order statistics (NumPy's
    default, Hyndman-Fan type 7). Raises ValueError on an empty sequence."""
    if not values:
        raise ValueError("quantile of an empty sequence")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile q must be within [0, 1], got {q}")
    xs = sorted(values)
    pos = q * (len(xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def _out(n: int, k: int, s: int, p: int) -> int:
    """Output size of a convolution or pooling window (floor mode, as in torchvision)."""
    return (n + 2 * p - k) // s + 1


def model_macs(model: str, image_size: int, num_classes: int) -> tuple[int, int]:
    """(forward MACs per sample, MACs of the first layer) of torchvision's `model` on a square RGB image
    of side `image_size` with `num_classes` outputs; convolutions and linear layers only."""
    if model not in TRAINING_MACS_224:
        raise ValueError(f"no FLOPs formula for model {model!r}: use one of {', '.join(MODELS)}")
    if image_size < 32 or num_classes < 1:
        raise ValueError(f"image_size must be >= 32 and num_classes >= 1, got {image_size} and {num_classes}")

    def conv(n: int, cin: int, cout: int, k: int, s: int = 1, p: int = 0) -> tuple[int, int]:
        m = _out(n, k, s, p)
        return m * m * cout * cin * k * k, m

    if model == "alexnet":
        total = 0
        first, n = conv(image_size, 3, 64, 11, 4, 2)
        total += first
        n = _out(n, 3, 2, 0)
        for cin, cout, k, p, pool in ((64, 192, 5, 2, True), (192, 384, 3, 1, False), (384, 256, 3, 1, False),
                                      (256, 256, 3, 1, True)):
            macs, n = conv(n, cin, cout, k, 1, p)
            total += macs
            if pool:
                n = _out(n, 3, 2, 0)
        # Adaptive average pooling makes the classifier's input 256 x 6 x 6 whatever the image size.
        total += 256 * 6 * 6 * 4096 + 4096 * 4096 + 4096 * num_classes
        return total, first

    bottleneck = model == "resnet50"
    blocks = (3, 4, 6, 3) if bottleneck else (2, 2, 2, 2)
    expansion = 4 if bottleneck else 1
    first, n = conv(image_size, 3, 64, 7, 2, 3)
    total = first
    n = _out(n, 3, 2, 1)
    cin = 64
    for stage, count in enumerate(blocks):
        planes = 64 * 2**stage
        for b in range(count):
            stride = 2 if stage > 0 and b == 0 else 1
            if bottleneck:  # torchvision's v1.5: the stride sits on the 3x3 convolution
                m1, _ = conv(n, cin, planes, 1)
                m2, n2 = conv(n, planes, planes, 3, stride, 1)
                m3, _ = conv(n2, planes, planes * 4, 1)
                total += m1 + m2 + m3
            else:
                m1, n2 = conv(n, cin, planes, 3, stride, 1)
                m2, _ = conv(n2, planes, planes, 3, 1, 1)
                total += m1 + m2
            if stride != 1 or cin != planes * expansion:
                total += conv(n, cin, planes * expansion, 1, stride)[0]
            cin, n = planes * expansion, n2
    return total + cin * num_classes, first


def formula_flops_per_sample(model: str, image_size: int, num_classes: int) -> float:
    """Training FLOPs per sample by the convention above: 2 x (3 x forward MACs - first-layer MACs)."""
    total, first = model_macs(model, image_size, num_classes)
    return 2.0 * (3 * total - first)


def step_metrics(step_times_s: Sequence[float], batch_size: int, flops_per_sample: float | None,
                 peak_tflops: float | None) -> dict[str, float | None]:
    """Metrics of the steady window from its per-step times in seconds.

    samples_per_s is total samples over total time (not the mean of per-step rates). tflops is
    samples_per_s x flops_per_sample; mfu is tflops / peak_tflops, absent (None) when either is
    unknown. An empty window gives None everywhere: nothing was measured, so nothing is reported.
    """
    out: dict[str, float | None] = {
        "samples_per_s": None, "step_time_p50_ms": None, "step_time_p90_ms": None, "tflops": None, "mfu": None,
    }
    times = [t for t in step_times_s]
    if not times:
        return out
    if any(t <= 0 or not math.isfinite(t) for t in times):
        raise ValueError(f"step times must be positive finite seconds, got {times}")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    sps = batch_size * len(times) / sum(times)
    out["samples_per_s"] = sps
    out["step_time_p50_ms"] = quantile(times, 0.5) * 1000.0
    out["step_time_p90_ms"] = quantile(times, 0.9) * 1000.0
    if flops_per_sample is not None and flops_per_sample > 0:
        tflops = sps * flops_per_sample / 1e12
        out["tflops"] = tflops
        if peak_tflops is not None and peak_tflops > 0:
            out["mfu"] = tflops / peak_tflops
    return out


# Dense (no structured sparsity) peak TFLOPS per GPU model, from NVIDIA's datasheets. Keys are
# precisions as the workload's --precision names them: fp32 (TF32 tensor cores off), tf32, bf16, fp16
# (tensor cores with fp32 accumulation). None where the GPU has no such mode (T4: no TF32, no bf16).
# Patterns are matched against the NVML device name in order; the first match wins, so specific
# variants come before the general ones. A GPU that matches nothing has no MFU.
GPU_PEAKS_TFLOPS: tuple[tuple[str, str, dict[str, float | None]], ...] = (
    # (pattern, label, peaks)
    (r"H200 NVL", "H200 NVL", {"fp32": 60.0, "tf32": 417.5, "bf16": 835.5, "fp16": 835.5}),
    (r"H200", "H200 SXM", {"fp32": 67.0, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4}),
    (r"H100 PCIe", "H100 PCIe", {"fp32": 51.2, "tf32": 378.0, "bf16": 756.0, "fp16": 756.0}),
    (r"H100 (80GB HBM3|SXM)", "H100 SXM", {"fp32": 67.0, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4}),
    (r"A100", "A100", {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0, "fp16": 312.0}),
    (r"L40S", "L40S", {"fp32": 91.6, "tf32": 183.0, "bf16": 362.05, "fp16": 362.05}),
    (r"\bL4\b", "L4", {"fp32": 30.3, "tf32": 60.0, "bf16": 121.0, "fp16": 121.0}),
    (r"\bT4\b", "T4", {"fp32": 8.1, "tf32": None, "bf16": None, "fp16": 65.0}),
)
PRECISIONS: tuple[str, ...] = ("fp32", "tf32", "bf16", "fp16")


def gpu_peak_tflops(device_name: str | None, precision: str) -> float | None:
    """Dense peak TFLOPS of the GPU named `device_name` (as NVML spells it) at `precision`, or None
    when the model is not in GPU_PEAKS_TFLOPS or has no such mode. Never a guess."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    if not device_name:
        return None
    for pattern, _label, peaks in GPU_PEAKS_TFLOPS:
        if re.search(pattern, device_name):
            return peaks.get(precision)
    return None


# Multiprocessors (SMs) of the whole GPU, from NVIDIA's datasheets, by the labels above: the dense peaks are
# for all of them, so a MIG slice's peak is its share of the SMs (device_peak_tflops).
GPU_SMS: dict[str, int] = {
    "H200 NVL": 132, "H200 SXM": 132, "H100 PCIe": 114, "H100 SXM": 132, "A100": 108, "L40S": 142, "L4": 58,
    "T4": 40,
}


def gpu_label(device_name: str | None) -> str | None:
    """The GPU_PEAKS_TFLOPS label that `device_name` (as NVML spells it) matches, or None."""
    if not device_name:
        return None
    for pattern, label, _peaks in GPU_PEAKS_TFLOPS:
        if re.search(pattern, device_name):
            return label
    return None


def device_peak_tflops(device_name: str | None, precision: str,
                       mig: dict | None = None) -> tuple[float | None, float | None, str | None]:
    """(peak TFLOPS of the device at `precision`, the share of the whole GPU's peak it has, a note for the
    report or None). A MIG slice (`mig` holds its multiprocessor count, "sms") gets its share of the SMs of
    the whole GPU times the GPU's peak; a slice whose SM count or GPU is unknown gets no peak, so no MFU:
    never the whole GPU's peak, which would make its MFU several times too low."""
    full = gpu_peak_tflops(device_name, precision)
    label = gpu_label(device_name)
    if mig is None:
        if full is None:
            return None, None, f"no dense {precision} peak known for this GPU: mfu null"
        return full, 1.0, None
    sms, total = mig.get("sms"), GPU_SMS.get(label or "")
    if full is None:
        return None, None, f"MIG slice of a GPU with no known {precision} peak: mfu null"
    if not sms or not total:
        return None, None, "MIG slice of unknown size (NVML gave no multiprocessor count): mfu null"
    share = min(1.0, sms / total)
    return full * share, share, (f"MIG slice: mfu against {sms}/{total} SMs of the {label} {precision} peak "
                                 f"({full * share:.4g} of {full:.4g} TFLOPS)")


def summarize_gpu_samples(samples: Sequence[dict[str, float | None]]) -> dict[str, float | None]:
    """Mean and max of NVML samples, like the published container-overhead study reports them.

    Each sample may hold gpu_util, mem_util (percent), mem_used_mib, power_w and sm_clock_mhz; a
    field absent or None in a sample is left out of that field's statistics, and a field no sample
    has is None (not measured), never zero.
    """
    def values(key: str) -> list[float]:
        return [float(s[key]) for s in samples if s.get(key) is not None]

    def mean(xs: list[float]) -> float | None:
        return sum(xs) / len(xs) if xs else None

    def top(xs: list[float]) -> float | None:
        return max(xs) if xs else None

    gpu, mem, used, power, clock = (values(k) for k in ("gpu_util", "mem_util", "mem_used_mib", "power_w", "sm_clock_mhz"))
    return {
        "gpu_util_mean": mean(gpu), "gpu_util_max": top(gpu),
        "mem_util_mean": mean(mem), "mem_util_max": top(mem),
        "mem_used_max_mib": top(used), "power_mean_w": mean(power), "sm_clock_mean_mhz": mean(clock),
    }
