"""Which NVML device the workload samples, MIG slices and their MFU share, the sampler, and the GPU notes of a
report. No GPU here: only the NVML library module (pynvml) is replaced, by tests/unit/fake_nvml.py, which
answers as the NVML documentation describes; the selection, naming, peak and report code is the real one."""

from __future__ import annotations

import json
import sys

import pytest

import fake_nvml as fn
from startbench.workload import gpu, perf, runner
from startbench.workload.marks import Marks
from startbench.workload.report import MAX_BYTES, encode_report, parse_report


def select(visible: str | None, framework_uuid: str | None = None, ordinal: int = 0, **node):
    nv = fn.make_nvml(fn.h100_node(**node))
    env = {} if visible is None else {"CUDA_VISIBLE_DEVICES": visible}
    return gpu.select_device(nv, framework_uuid, ordinal, env)


@pytest.mark.parametrize("value, entries", [
    (None, None),                                   # unset: every device
    ("", []),                                       # set but empty: none
    ("1,0", ["1", "0"]),
    (" GPU-0a1b , GPU-5e6f ", ["GPU-0a1b", "GPU-5e6f"]),
    ("MIG-0a1b,MIG-5e6f", ["MIG-0a1b", "MIG-5e6f"]),
    ("0,oops,1", ["0"]),                            # CUDA stops at the first invalid entry
    ("GPU-0a1b,1", ["GPU-0a1b"]),                   # ... and at one of another kind
    ("1,MIG-5e6f", ["1"]),
    ("-1", []),
])
def test_cuda_visible_devices_is_read_as_cuda_reads_it(value, entries):
    assert gpu.parse_visible_devices(value) == entries


def test_unset_cuda_visible_devices_samples_nvml_index_0():
    """No CUDA_VISIBLE_DEVICES (pynvml replaced by a stand-in): the framework's device 0 is NVML's index 0."""
    device, how = select(None)
    assert device.uuid == fn.UUID0 and device.mig is None
    assert "unset" in how


def test_an_index_names_nvml_index_and_a_mig_mode_gpu_means_its_first_mig_device():
    """CUDA_VISIBLE_DEVICES=0 / =1 with pynvml replaced: index 1 is a GPU in MIG mode, which never runs work as
    a whole, so its first MIG device (at slot 0) is the one trained on."""
    assert select("0")[0].uuid == fn.UUID0
    device, how = select("1,0")
    assert device.uuid == fn.MIG_1G and device.mig == {"slices": 1, "sms": 16}
    assert "index 1" in how
    assert select("1,0", ordinal=1)[0].uuid == fn.UUID0  # JAX's local_hardware_id 1: the second entry


@pytest.mark.parametrize("visible, expected", [
    (fn.UUID0, fn.UUID0),                    # a whole GPU-UUID
    ("GPU-0a1b", fn.UUID0),                  # a unique prefix, as CUDA accepts
    (fn.MIG_3G, fn.MIG_3G),                  # a MIG-UUID, as the device plugin assigns a MIG slice
    ("MIG-9c8d", fn.MIG_3G),
    (fn.UUID1, fn.MIG_1G),                   # the GPU-UUID of a MIG-mode GPU: its first MIG device
])
def test_uuids_in_cuda_visible_devices_pick_that_device(visible, expected):
    """CUDA_VISIBLE_DEVICES holding GPU- or MIG-UUIDs (pynvml replaced by a stand-in)."""
    device, _ = select(visible)
    assert device.uuid == expected


@pytest.mark.parametrize("visible, why", [
    ("GPU-", "no NVML device matched"),              # no UUID at all
    ("MIG-0a1b", "no NVML device matched"),          # a MIG- prefix never matches a whole GPU
    ("3", "no NVML device matched"),                 # no such index
    ("", "has no entry 0"),
])
def test_no_match_is_none_with_a_reason_never_another_gpu(visible, why):
    """pynvml replaced: a CUDA_VISIBLE_DEVICES entry that names nothing gives no device (GPU metrics null)
    instead of silently sampling some other pod's GPU."""
    device, how = select(visible)
    assert device is None and why in how


def test_an_ambiguous_prefix_matches_nothing():
    nv = fn.make_nvml([fn.Gpu("GPU-abc1-0000"), fn.Gpu("GPU-abc2-0000")])
    assert gpu.select_device(nv, None, 0, {"CUDA_VISIBLE_DEVICES": "GPU-abc"})[0] is None
    assert gpu.select_device(nv, None, 0, {"CUDA_VISIBLE_DEVICES": "GPU-abc2"})[0].uuid == "GPU-abc2-0000"


def test_the_frameworks_own_uuid_wins_over_cuda_visible_devices():
    """PyTorch reports its device's UUID bare (no GPU-/MIG- prefix): it is matched against MIG devices too, and
    wins over an index in CUDA_VISIBLE_DEVICES (pynvml replaced by a stand-in)."""
    bare = fn.MIG_3G[len("MIG-"):]
    device, how = select("0", framework_uuid=bare)
    assert device.uuid == fn.MIG_3G and "framework" in how
    device, how = select("0", framework_uuid="ffffffff-not-on-this-node")  # unknown: fall back to the variable
    assert device.uuid == fn.UUID0 and "CUDA_VISIBLE_DEVICES" in how


def test_a_mig_device_hidden_from_enumeration_is_found_by_nvmls_uuid_lookup():
    """Where listing a GPU's MIG devices is refused (pynvml replaced), NVML's look-up by UUID still finds it."""
    device, _ = select(fn.MIG_3G, enumerable=False)
    assert device.uuid == fn.MIG_3G and device.mig == {"slices": 3, "sms": 60}
    assert device.name == "NVIDIA H100 80GB HBM3 MIG 3g.40gb"


def test_mixed_gpus_warn_that_cudas_order_may_differ():
    nv = fn.make_nvml([fn.Gpu(fn.UUID0, "NVIDIA A100-SXM4-80GB"), fn.Gpu(fn.UUID1, "NVIDIA H100 80GB HBM3")])
    assert "CUDA_DEVICE_ORDER" in gpu.select_device(nv, None, 0, {"CUDA_VISIBLE_DEVICES": "1"})[1]
    assert "CUDA_DEVICE_ORDER" not in gpu.select_device(nv, None, 0, {"CUDA_VISIBLE_DEVICES": "1",
                                                                    "CUDA_DEVICE_ORDER": "PCI_BUS_ID"})[1]


@pytest.mark.parametrize("nvml_name, slices, memory, expected", [
    ("NVIDIA H100 80GB HBM3 MIG 1g.10gb", 1, 9856, "NVIDIA H100 80GB HBM3 MIG 1g.10gb"),   # NVML's own name
    ("MIG 2g.20gb", 2, 19968, "NVIDIA H100 80GB HBM3 MIG 2g.20gb"),                        # profile only
    ("NVIDIA H100 80GB HBM3", 1, 9856, "NVIDIA H100 80GB HBM3 MIG 1g.10gb"),               # old driver
    ("NVIDIA H100 80GB HBM3", 7, 81152, "NVIDIA H100 80GB HBM3 MIG 7g.80gb"),
    (None, 3, None, "NVIDIA H100 80GB HBM3 MIG 3g"),
    (None, None, None, "NVIDIA H100 80GB HBM3 MIG"),
])
def test_mig_slices_are_named_with_their_profile(nvml_name, slices, memory, expected):
    assert gpu.mig_name("NVIDIA H100 80GB HBM3", nvml_name, slices, memory) == expected


def test_mig_names_from_an_old_driver_are_made_from_the_attributes():
    device, _ = select(fn.MIG_1G, mig_names=False)
    assert device.name == "NVIDIA H100 80GB HBM3 MIG 1g.10gb"


def test_mfu_of_a_mig_slice_is_against_its_share_of_the_sms():
    """A 1g slice of an H100 SXM has 16 of its 132 SMs: its peak is 16/132 of the GPU's (MFU ~8x higher than
    against the whole GPU)."""
    peak, share, note = perf.device_peak_tflops("NVIDIA H100 80GB HBM3 MIG 1g.10gb", "bf16", {"slices": 1, "sms": 16})
    assert share == pytest.approx(16 / 132)
    assert peak == pytest.approx(989.4 * 16 / 132)
    assert "16/132 SMs" in note and "H100 SXM" in note
    assert perf.device_peak_tflops("NVIDIA H200 MIG 7g.141gb", "fp32", {"sms": 132})[:2] == (67.0, 1.0)


@pytest.mark.parametrize("name, mig, fragment", [
    ("NVIDIA H100 80GB HBM3 MIG 1g.10gb", {"slices": 1}, "unknown size"),     # no SM count from NVML
    ("NVIDIA A30 MIG 1g.6gb", {"slices": 1, "sms": 14}, "no known bf16 peak"),
    ("NVIDIA GeForce RTX 4090", None, "no dense bf16 peak"),
])
def test_no_mfu_rather_than_a_wrong_one(name, mig, fragment):
    peak, share, note = perf.device_peak_tflops(name, "bf16", mig)
    assert peak is None and share is None and fragment in note


def test_a_whole_gpu_has_its_full_peak_and_no_note():
    assert perf.device_peak_tflops("NVIDIA H200", "bf16") == (989.4, 1.0, None)
    assert set(perf.GPU_SMS) == {label for _p, label, _v in perf.GPU_PEAKS_TFLOPS}


def test_probe_uses_the_pynvml_module_and_says_when_nvml_is_missing(monkeypatch):
    """probe() imports pynvml: here sys.modules holds the stand-in, then nothing (an image without
    nvidia-ml-py), then a stand-in whose nvmlInit fails (no driver)."""
    monkeypatch.setitem(sys.modules, "pynvml", fn.make_nvml(fn.h100_node()))
    found = gpu.probe(None, 0, {"CUDA_VISIBLE_DEVICES": fn.MIG_1G})
    assert found.device.uuid == fn.MIG_1G and found.nv is sys.modules["pynvml"]
    monkeypatch.setitem(sys.modules, "pynvml", None)
    found = gpu.probe(None, 0, {})
    assert found.device is None and "nvidia-ml-py is not installed" in found.how
    monkeypatch.setitem(sys.modules, "pynvml", fn.make_nvml(fn.h100_node(), available=False))
    assert "Driver Not Loaded" in gpu.probe(None, 0, {}).how


def test_sampler_samples_the_chosen_handle_and_leaves_what_a_mig_slice_lacks_null():
    """The sampler on a stand-in pynvml: a whole GPU gives every field; a MIG device has no utilisation
    counters, so gpu_util and mem_util stay None (never zero) while memory, power and clock remain."""
    nv = fn.make_nvml(fn.h100_node())
    whole = gpu.GpuSampler(nv, fn.Handle(0), interval_s=0.01)
    assert whole.start()
    samples = whole.stop()
    assert len(samples) >= 2 and samples[0]["gpu_util"] == 97.0 and samples[0]["mem_used_mib"] == 70000
    mig = gpu.GpuSampler(nv, fn.Handle(1, 0), interval_s=0.01)
    assert mig.start()
    summary = perf.summarize_gpu_samples(mig.stop())
    assert summary["gpu_util_mean"] is None and summary["mem_util_max"] is None
    assert summary["mem_used_max_mib"] == 9000 and summary["power_mean_w"] == 650.0


# --- the runner's GPU path, end to end on a stand-in backend


class StandInGpuBackend:
    """Replaces the framework (no framework here reports a GPU): says it trains on CUDA device 0 of `count`,
    with `uuid` as PyTorch would give it, and takes a fixed time per step."""
    name = "pytorch"

    def __init__(self, count: int, uuid: str | None):
        self.count, self.uuid = count, uuid

    def import_framework(self):
        return {"torch": "stand-in"}

    def init_device(self, want):
        return {"kind": "gpu", "name": "stand-in name", "count": self.count, "uuid": self.uuid, "ordinal": 0}

    def build_model(self, cfg):
        pass

    def prepare_data(self, cfg, dataset):
        pass

    def step(self):
        pass

    def counted_flops_per_sample(self, cfg):
        return None

    def memory_report(self):
        return 5120.0, "NVML's mem_used_max_mib also counts the CUDA context and torch's block cache"


def run_stand_in(monkeypatch, tmp_path, capsys, *, count, uuid, visible, extra=()):
    monkeypatch.setitem(sys.modules, "pynvml", fn.make_nvml(fn.h100_node()))
    monkeypatch.setenv("STARTBENCH_REPORT_PATH", str(tmp_path / "report"))
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    monkeypatch.setattr(runner, "load_backend", lambda name: StandInGpuBackend(count, uuid))
    cfg = runner.parse_config(["--framework", "pytorch", "--model", "resnet50", "--steps", "3",
                               "--precision", "bf16", *extra])
    run = runner.Run(Marks(), cfg.framework, cfg.model)
    run.marks.mark("interpreter_ready")
    run.cfg = cfg
    assert runner._run_phases(run, cfg) == 0
    text = capsys.readouterr().out.strip().splitlines()[-1]
    assert len(text.encode()) <= MAX_BYTES
    return parse_report(text)


def test_a_run_on_a_mig_slice_reports_the_slice_its_share_and_an_mfu_against_it(monkeypatch, tmp_path, capsys):
    """The runner with a stand-in backend and a stand-in pynvml: CUDA_VISIBLE_DEVICES names a MIG-UUID, as the
    device plugin assigns one; the report names the slice, gives its SM share and says how MFU was computed."""
    report = run_stand_in(monkeypatch, tmp_path, capsys, count=1, uuid=None, visible=fn.MIG_1G)
    assert report["device"]["name"] == "NVIDIA H100 80GB HBM3 MIG 1g.10gb"
    assert report["device"]["uuid"] == fn.MIG_1G
    assert report["device"]["mig"] == {"slices": 1, "sms": 16, "share": pytest.approx(16 / 132, abs=1e-6)}
    metrics = report["metrics"]
    assert metrics["mfu"] == pytest.approx(metrics["tflops"] / (989.4 * 16 / 132), rel=1e-4)
    assert "16/132 SMs" in report["notes"]["mfu"]
    assert metrics["gpu_util_mean"] is None and metrics["mem_used_max_mib"] == 9000
    assert "no utilisation counters" in report["notes"]["sampler"]
    assert metrics["framework_mem_peak_mib"] == 5120.0 and "block cache" in report["notes"]["memory"]
    assert "gpus" not in report["notes"]


def test_several_gpus_in_the_pod_are_said_plainly(monkeypatch, tmp_path, capsys):
    """A stand-in backend that sees 4 GPUs (gpusPerPod: 4) and a stand-in pynvml: the report says the workload
    trained on one of them and which NVML device (found by the framework's UUID) was sampled."""
    report = run_stand_in(monkeypatch, tmp_path, capsys, count=4, uuid=fn.UUID0[4:], visible="1,0,2,3")
    assert report["device"]["count"] == 4 and report["device"]["uuid"] == fn.UUID0
    assert report["notes"]["gpus"].startswith("trains on 1 GPU of the 4 visible")
    assert "framework's device UUID" in report["notes"]["sampler"]
    assert report["metrics"]["gpu_util_mean"] == 97.0
    assert report["metrics"]["mfu"] is not None and "mfu" not in report["notes"]


def test_no_gpu_sampler_leaves_gpu_metrics_null_and_says_so(monkeypatch, tmp_path, capsys):
    report = run_stand_in(monkeypatch, tmp_path, capsys, count=1, uuid=None, visible=None,
                          extra=["--no-gpu-sampler"])
    assert report["metrics"]["gpu_util_mean"] is None and report["metrics"]["mem_used_max_mib"] is None
    assert "--no-gpu-sampler" in report["notes"]["sampler"]
    assert report["device"]["name"] == "NVIDIA H100 80GB HBM3" and report["metrics"]["mfu"] is not None


def test_a_gpu_report_with_every_note_at_its_longest_stays_under_4_kib():
    from startbench.workload.report import MAX_NOTE_CHARS, NOTE_KEYS, build_report
    from startbench.workload.marks import MARKS

    doc = build_report(framework="tensorflow", model="resnet50", marks_ms={m: 1.7e12 + i for i, m in enumerate(MARKS)},
                       device={"kind": "gpu", "name": "N" * 300, "count": 8, "uuid": "MIG-" + "f" * 200,
                               "mig": {"slices": 7, "sms": 132, "share": 1.0}},
                       config={"steps": 15, "batch_size": 256, "precision": "bf16", "image_size": 224,
                               "data": "synthetic"},
                       metrics={k: 123456.123456 for k in ("samples_per_s", "tflops", "framework_mem_peak_mib")},
                       flops={"per_sample": 1.2e10, "source": "formula"},
                       versions={f"package{i}": "v" * 100 for i in range(10)},
                       notes={k: "x" * 1000 for k in NOTE_KEYS}, error="e" * 2000)
    text = encode_report(doc)
    assert len(text.encode()) <= MAX_BYTES
    assert all(len(v) <= MAX_NOTE_CHARS for v in json.loads(text)["notes"].values())
    with pytest.raises(ValueError, match="unknown notes"):
        build_report(framework="jax", model="resnet18", marks_ms={}, notes={"other": "x"})
