"""Every CUDA flavour of every framework image carries nvidia-ml-py (the `pynvml` module the workload's NVML
sampler imports): without it a pod's GPU metrics are all null. Read from the requirements files and the
Dockerfiles as text, so no engine is needed."""

from __future__ import annotations

import re

import pytest

from startbench.images.context import DOCKERFILES

FRAMEWORKS = sorted(p.parent.name for p in DOCKERFILES.glob("*/slim.Dockerfile"))
PIN = re.compile(r"^nvidia-ml-py==(\d+(?:\.\d+)+)$", re.MULTILINE)


def test_the_framework_images_are_the_ones_expected():
    assert FRAMEWORKS == ["jax", "pytorch", "tensorflow"]


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_slim_cuda_flavour_pins_nvidia_ml_py(framework):
    requirements = DOCKERFILES / framework / "requirements-cuda.txt"
    assert requirements.is_file(), f"{framework}: no CUDA flavour requirements"
    assert len(PIN.findall(requirements.read_text())) == 1, f"{requirements}: pin nvidia-ml-py==VERSION once"


def test_every_cuda_flavour_pins_the_same_nvidia_ml_py():
    versions = {PIN.search((DOCKERFILES / f / "requirements-cuda.txt").read_text()).group(1) for f in FRAMEWORKS}
    assert len(versions) == 1, versions


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_naive_cuda_flavour_installs_nvidia_ml_py(framework):
    text = (DOCKERFILES / framework / "naive.Dockerfile").read_text()
    install = re.search(r'if \[ "\$FLAVOUR" = cpu \]; then (.*?); else (.*?); fi', text)
    assert install, f"{framework}/naive.Dockerfile: the FLAVOUR switch of its pip install changed; update this test"
    assert "nvidia-ml-py" in install.group(2).split()


def test_the_sampler_imports_the_module_that_nvidia_ml_py_provides():
    from startbench.workload import gpu

    source = open(gpu.__file__, encoding="utf-8").read()
    assert "import pynvml" in source
