"""Real JAX and TensorFlow runs on the CPU (slow tier), datasets on disk through each framework, and a
check that the three frameworks train the same architectures (parameter counts against torchvision's,
Keras layer shapes against the FLOPs formula)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from startbench.workload.marks import MARKS
from startbench.workload.perf import MODELS, formula_flops_per_sample, model_macs
from startbench.workload.report import parse_report

pytestmark = pytest.mark.slow


def run_workload(tmp_path, *args):
    env = dict(os.environ, STARTBENCH_REPORT_PATH=str(tmp_path / "termination-log"))
    env.pop("STARTBENCH_WORKLOAD_FAIL_AT", None)
    proc = subprocess.run([sys.executable, "-m", "startbench.workload", "--device", "cpu", "--batch-size", "2",
                           "--shape", "tiny-imagenet", *args], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = proc.stdout.rstrip("\n").splitlines()[-1]
    assert (tmp_path / "termination-log").read_text() == line
    return parse_report(line)


@pytest.mark.parametrize("framework, version_key", [("jax", "flax"), ("tensorflow", "keras")])
def test_cpu_run_reports_every_phase_in_order(tmp_path, framework, version_key):
    report = run_workload(tmp_path, "--framework", framework, "--model", "resnet18", "--steps", "3")
    assert report["ok"] and report["framework"] == framework and report["device"]["kind"] == "cpu"
    assert list(report["marks_ms"]) == list(MARKS)
    assert list(report["marks_ms"].values()) == sorted(report["marks_ms"].values())
    assert report["metrics"]["samples_per_s"] > 0 and report["metrics"]["gpu_util_mean"] is None
    assert report["metrics"]["mfu"] is None
    assert report["flops"] == {"per_sample": formula_flops_per_sample("resnet18", 64, 200), "source": "formula"}
    assert version_key in report["versions"]


@pytest.mark.parametrize("framework", ["pytorch", "jax", "tensorflow"])
def test_dataset_on_disk_trains_in_every_framework(tmp_path, framework):
    rng = np.random.default_rng(1)
    path = tmp_path / "tiny.npz"
    np.savez(path, x=rng.integers(0, 255, (5, 64, 64, 3), dtype=np.uint8), y=rng.integers(0, 200, 5))
    report = run_workload(tmp_path, "--framework", framework, "--model", "alexnet", "--steps", "3",
                          "--data", str(path))
    assert report["ok"] and report["config"]["data"] == "dataset"
    assert report["marks_ms"]["data_ready"] >= report["marks_ms"]["model_built"]


PARAMS_SCRIPT = r"""
import json, math, sys
framework, classes = sys.argv[1], 1000
out = {}
if framework == "pytorch":
    import torchvision
    for m in ("resnet18", "resnet50", "alexnet"):
        out[m] = sum(p.numel() for p in getattr(torchvision.models, m)(weights=None, num_classes=classes).parameters())
elif framework == "jax":
    import jax, jax.numpy as jnp, flax.linen as nn
    from startbench.workload.frameworks.jax_backend import _models
    make = _models(nn, jnp)
    for m in ("resnet18", "resnet50", "alexnet"):
        v = jax.eval_shape(lambda: make(m, classes, jnp.float32).init(
            {"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(0)}, jnp.ones((1, 64, 64, 3)), train=False))
        out[m] = sum(x.size for x in jax.tree_util.tree_leaves(v["params"]))
else:
    import keras
    from startbench.workload.frameworks import tensorflow_backend as tb
    for m in ("resnet18", "resnet50", "alexnet"):
        for size in (64, 224):
            model = (tb._alexnet(keras, size, classes) if m == "alexnet"
                     else tb._resnet(keras, size, classes, bottleneck=m == "resnet50"))
            macs = 0
            for layer in model.layers:
                if isinstance(layer, keras.layers.Conv2D):
                    h, w, cout = layer.output.shape[1:]
                    kh, kw = layer.kernel_size
                    macs += h * w * cout * kh * kw * layer.input.shape[-1]
                elif isinstance(layer, keras.layers.Dense):
                    macs += layer.input.shape[-1] * layer.units
            out[f"{m}@{size}"] = macs
        out[m] = sum(int(math.prod(w.shape)) for w in model.trainable_weights)  # the same at any image size
print(json.dumps(out))
"""


def _framework_facts(framework: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", PARAMS_SCRIPT, framework], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_jax_and_keras_models_are_torchvisions_architectures():
    torch_params = _framework_facts("pytorch")
    jax_facts = _framework_facts("jax")
    tf_facts = _framework_facts("tensorflow")
    for model in MODELS:
        assert jax_facts[model] == torch_params[model], f"jax {model}"
        assert tf_facts[model] == torch_params[model], f"keras {model}"
        for size in (64, 224):
            assert tf_facts[f"{model}@{size}"] == model_macs(model, size, 1000)[0], f"keras {model} at {size}"
