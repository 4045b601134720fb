"""The tools and frameworks some tests need, found in one place (markers `tools` and `framework`, see
tests/conftest.py): each check says what is missing and which setup script brings it.

    @pytest.mark.tools("helm")          the helm binary hack/k8s/build.sh builds into the cache
    @pytest.mark.tools("promtool")      Debian's prometheus package
    @pytest.mark.tools("prometheus-k8s") Prometheus with Kubernetes service discovery, built by hack/k8s/build.sh
    @pytest.mark.tools("dpkg-query")    Debian's own package database
    @pytest.mark.tools("chromium")      Debian's chromium, for headless screenshots of the HTML report
    @pytest.mark.framework("torch")     a real ML framework in this interpreter (torch, jax, tensorflow)

Frameworks are looked up with importlib.util.find_spec, never imported: importing torch or tensorflow alone
takes tens of seconds on a small machine.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

from startbench.localcluster import paths

SETUP_PROMETHEUS = "hack/ci/setup-30-prometheus.sh"
SETUP_WORKLOAD = "hack/ci/setup-20-workload.sh"
SETUP_CHROMIUM = "hack/ci/setup-35-chromium.sh"


def helm_path() -> Path:
    """Where the suite's helm is: the pinned version the cluster setup builds (not whatever helm is on PATH)."""
    return paths.binaries().helm


def _helm() -> str | None:
    helm = helm_path()
    return None if os.access(helm, os.X_OK) else f"helm is not built at {helm}: run {SETUP_PROMETHEUS}"


def _promtool() -> str | None:
    if shutil.which("promtool"):
        return None
    return f"promtool (Debian's prometheus package) is not on PATH: run {SETUP_PROMETHEUS}"


def _dpkg_query() -> str | None:
    if shutil.which("dpkg-query"):
        return None
    return "dpkg-query is not on PATH: hack/ci/apt.sh and the CI setup scripts need a Debian machine"


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _chromium() -> str | None:
    return None if chromium_path() else f"chromium is not on PATH: run {SETUP_CHROMIUM}"


def _prometheus_k8s() -> str | None:
    path = paths.prometheus_path()
    return None if os.access(path, os.X_OK) else (f"Prometheus with Kubernetes service discovery is not built at "
                                                  f"{path} (Debian's has none): run {SETUP_PROMETHEUS}")


TOOLS = {"helm": _helm, "promtool": _promtool, "dpkg-query": _dpkg_query, "chromium": _chromium,
         "prometheus-k8s": _prometheus_k8s}

# The modules the workload imports for each framework (workload/frameworks/*_backend.py).
FRAMEWORKS = {"torch": ("torch", "torchvision"), "jax": ("jax", "flax", "optax"), "tensorflow": ("tensorflow",)}


def missing_tool(name: str) -> str | None:
    """None when the tool is there; otherwise why not and how to get it."""
    if name not in TOOLS:
        raise ValueError(f"unknown tool {name!r} in @pytest.mark.tools: known ones are {sorted(TOOLS)}")
    return TOOLS[name]()


def missing_framework(name: str) -> str | None:
    """None when every module of the framework is installed; otherwise which are not and how to get them."""
    if name not in FRAMEWORKS:
        raise ValueError(f"unknown framework {name!r} in @pytest.mark.framework: known ones are {sorted(FRAMEWORKS)}")
    absent = [module for module in FRAMEWORKS[name] if importlib.util.find_spec(module) is None]
    if not absent:
        return None
    return f"{name} is not installed (no module {', '.join(absent)}): run {SETUP_WORKLOAD}"
