import re
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from startbench.runtime.metrics import PHASES, Metrics

LABELS = {"benchmark": "b1", "image": "torch-slim", "framework": "pytorch", "variant": "slim",
          "node": "gpu-0", "gpu_product": "NVIDIA-H100", "cache": "cold"}


def sample(metrics, name, **labels):
    return metrics.registry.get_sample_value(name, labels)


def test_observe_run_records_phases_total_and_result():
    m = Metrics()
    m.observe_run(LABELS, {"scheduling": 0.02, "pulling": 12.5}, 14.0, "Succeeded", "")
    assert sample(m, "startbench_phase_seconds_count", **LABELS, phase="pulling") == 1
    assert sample(m, "startbench_phase_seconds_sum", **LABELS, phase="pulling") == pytest.approx(12.5)
    assert sample(m, "startbench_time_to_first_step_seconds_sum", **LABELS) == pytest.approx(14.0)
    assert sample(m, "startbench_runs_total", benchmark="b1", result="Succeeded", reason="") == 1


def test_unknown_phase_is_refused():
    with pytest.raises(ValueError, match="unknown phase"):
        Metrics().observe_run(LABELS, {"warming": 1.0}, None, "Succeeded", "")


def test_training_gauges_leave_absent_metrics_unset():
    m = Metrics()
    labels = {"benchmark": "b1", "image": "i", "framework": "pytorch", "model": "resnet18", "node": "n"}
    m.set_training(labels, {"samples_per_s": 120.0, "tflops": None, "mfu": None, "gpu_util_mean": 97.0})
    assert sample(m, "startbench_training_samples_per_second", **labels) == 120.0
    assert sample(m, "startbench_training_gpu_utilization_ratio", **labels) == pytest.approx(0.97)
    assert sample(m, "startbench_training_tflops", **labels) is None


def test_no_label_is_per_pod_or_per_run():
    m = Metrics()
    m.observe_run(LABELS, {p: 1.0 for p in PHASES}, 7.0, "Failed", "OOMKilled")
    for family in m.registry.collect():
        for s in family.samples:
            assert not {"pod", "run", "run_id", "pod_name"} & set(s.labels), s


def test_served_over_http():
    m = Metrics()
    m.set_image("b1", "torch-slim", "pytorch", "slim", compressed=100, uncompressed=300, layers=4)
    server = m.serve(0, "127.0.0.1")
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/metrics", timeout=5).read().decode()
    finally:
        server.shutdown()
    assert 'startbench_image_size_bytes{benchmark="b1",framework="pytorch",image="torch-slim",kind="compressed",variant="slim"} 100.0' in body
    assert "startbench_image_layers" in body


def test_readme_documents_every_metric():
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    names = {f.name for f in Metrics().registry.collect()}
    # Counters are collected without their _total suffix.
    documented = set(re.findall(r"`(startbench_[a-z_]+)`", readme))
    for name in names:
        assert name in documented or f"{name}_total" in documented, f"{name} missing from README"
    assert generate_latest(Metrics().registry)
