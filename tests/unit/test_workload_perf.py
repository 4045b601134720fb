"""Training metrics maths: quantiles, FLOPs per sample, TFLOPS, MFU against the peak table, NVML summaries."""

from __future__ import annotations

import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from startbench.workload import perf


@given(st.lists(st.floats(0.001, 1e4, allow_nan=False), min_size=2, max_size=40))
def test_quantile_matches_the_standard_librarys_inclusive_method(values):
    # statistics.quantiles(method="inclusive") is the same type-7 interpolation at the 10 % cut points.
    cuts = statistics.quantiles(values, n=10, method="inclusive")
    assert perf.quantile(values, 0.5) == pytest.approx(cuts[4], rel=1e-9)
    assert perf.quantile(values, 0.9) == pytest.approx(cuts[8], rel=1e-9)
    assert perf.quantile(values, 0.0) == min(values) and perf.quantile(values, 1.0) == max(values)


def test_quantile_refuses_empty_and_out_of_range():
    with pytest.raises(ValueError, match="empty"):
        perf.quantile([], 0.5)
    with pytest.raises(ValueError, match="within"):
        perf.quantile([1.0], 1.5)


@pytest.mark.parametrize("model", perf.MODELS)
def test_formula_reproduces_torchvisions_published_forward_cost_at_224(model):
    macs, first = perf.model_macs(model, 224, 1000)
    assert macs == pytest.approx(perf.TRAINING_MACS_224[model], rel=0.005)
    assert 0 < first < macs / 5


def test_training_flops_are_three_forwards_less_the_first_layers_input_gradient():
    macs, first = perf.model_macs("resnet50", 224, 1000)
    assert perf.formula_flops_per_sample("resnet50", 224, 1000) == 2 * (3 * macs - first)


def test_alexnet_classifier_does_not_shrink_with_the_image():
    # Adaptive pooling feeds 256 x 6 x 6 to the classifier at any size: at 64x64 it dominates.
    small, _ = perf.model_macs("alexnet", 64, 1000)
    classifier = 9216 * 4096 + 4096 * 4096 + 4096 * 1000
    assert classifier < small < classifier * 2


def test_resnet_costs_scale_with_image_area_and_classes():
    r224, _ = perf.model_macs("resnet18", 224, 1000)
    r64, _ = perf.model_macs("resnet18", 64, 1000)
    assert r64 == pytest.approx(r224 * (64 / 224) ** 2, rel=0.05)
    assert perf.model_macs("resnet18", 64, 1000)[0] - perf.model_macs("resnet18", 64, 200)[0] == 512 * 800


def test_formula_refuses_unknown_models_and_tiny_images():
    with pytest.raises(ValueError, match="resnet18"):
        perf.model_macs("vgg16", 224, 1000)
    with pytest.raises(ValueError, match="image_size"):
        perf.model_macs("resnet18", 16, 1000)


def test_step_metrics_are_total_samples_over_total_time():
    m = perf.step_metrics([0.1, 0.2, 0.3, 0.4], batch_size=8, flops_per_sample=1e10, peak_tflops=100.0)
    assert m["samples_per_s"] == pytest.approx(32 / 1.0)
    assert m["step_time_p50_ms"] == pytest.approx(250.0)
    assert m["step_time_p90_ms"] == pytest.approx(370.0)
    assert m["tflops"] == pytest.approx(32 * 1e10 / 1e12)
    assert m["mfu"] == pytest.approx(0.32 / 100.0)


def test_unknown_peak_or_flops_leave_mfu_and_tflops_absent_not_zero():
    m = perf.step_metrics([0.5], batch_size=4, flops_per_sample=1e9, peak_tflops=None)
    assert m["tflops"] == pytest.approx(8e-3) and m["mfu"] is None
    m = perf.step_metrics([0.5], batch_size=4, flops_per_sample=None, peak_tflops=989.0)
    assert m["tflops"] is None and m["mfu"] is None
    assert all(v is None for v in perf.step_metrics([], 4, 1e9, 989.0).values())


def test_step_metrics_refuse_nonsense():
    with pytest.raises(ValueError, match="positive finite"):
        perf.step_metrics([0.1, 0.0], 4, None, None)
    with pytest.raises(ValueError, match="batch_size"):
        perf.step_metrics([0.1], 0, None, None)


@pytest.mark.parametrize("name, precision, peak", [
    ("NVIDIA H100 80GB HBM3", "bf16", 989.4),
    ("NVIDIA H100 80GB HBM3", "fp32", 67.0),
    ("NVIDIA H100 PCIe", "bf16", 756.0),
    ("NVIDIA H200", "tf32", 494.7),
    ("NVIDIA H200 NVL", "bf16", 835.5),
    ("NVIDIA A100-SXM4-80GB", "bf16", 312.0),
    ("NVIDIA A100 80GB PCIe", "tf32", 156.0),
    ("NVIDIA A100-PCIE-40GB", "fp16", 312.0),
    ("NVIDIA L40S", "fp16", 362.05),
    ("NVIDIA L4", "bf16", 121.0),
    ("Tesla T4", "fp16", 65.0),
    ("Tesla T4", "bf16", None),        # Turing has no bf16 tensor cores
    ("Tesla T4", "tf32", None),
    ("NVIDIA L40", "bf16", None),      # not in the table: "L4" must not match it
    ("NVIDIA H100 NVL", "bf16", None),
    ("NVIDIA GeForce RTX 4090", "fp16", None),
    (None, "fp32", None),
])
def test_peak_table_matches_nvml_names_and_never_guesses(name, precision, peak):
    assert perf.gpu_peak_tflops(name, precision) == peak


def test_peak_table_covers_the_required_gpus_in_every_precision_key():
    labels = {label for _p, label, _v in perf.GPU_PEAKS_TFLOPS}
    assert {"H100 SXM", "H100 PCIe", "H200 SXM", "A100", "L40S", "L4", "T4"} <= labels
    for _p, label, peaks in perf.GPU_PEAKS_TFLOPS:
        assert set(peaks) == set(perf.PRECISIONS), label
        known = [v for v in peaks.values() if v is not None]
        assert peaks["fp32"] == min(known), f"{label}: fp32 must be the slowest mode"


def test_unknown_precision_is_an_error():
    with pytest.raises(ValueError, match="fp8"):
        perf.gpu_peak_tflops("NVIDIA H100 80GB HBM3", "fp8")


def test_gpu_summary_means_and_maxima_ignore_missing_fields():
    samples = [
        {"gpu_util": 90.0, "mem_util": 30.0, "mem_used_mib": 1000.0, "power_w": 300.0, "sm_clock_mhz": 1800.0},
        {"gpu_util": 100.0, "mem_util": None, "mem_used_mib": 1200.0, "power_w": 400.0, "sm_clock_mhz": None},
    ]
    s = perf.summarize_gpu_samples(samples)
    assert s == {"gpu_util_mean": 95.0, "gpu_util_max": 100.0, "mem_util_mean": 30.0, "mem_util_max": 30.0,
                 "mem_used_max_mib": 1200.0, "power_mean_w": 350.0, "sm_clock_mean_mhz": 1800.0}
    assert all(v is None for v in perf.summarize_gpu_samples([]).values())
