"""Where the local cluster keeps its binaries, state and logs, and which versions it builds.

Everything lives under one cache directory (default ~/.cache/startbench, override with STARTBENCH_CACHE):
  bin/<component>-<version>/<binary>   built once by hack/k8s/build.sh, keyed by version
  cluster/                             state of the running cluster: pki, etcd data, logs, pids, kubeconfig
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
BUILD_SCRIPT = REPO_ROOT / "hack" / "k8s" / "build.sh"

# Pinned versions. Kubernetes and etcd are read from the Go modules that build them so there is one source.
KWOK_VERSION = "v0.7.0"
HELM_VERSION = "v3.18.6"


def _required_version(go_mod: Path, module: str) -> str:
    match = re.search(rf"^require {re.escape(module)} (v[0-9][^\s]*)$", go_mod.read_text(), re.MULTILINE)
    if not match:
        raise RuntimeError(f"{go_mod} does not require {module}; the build module is broken")
    return match.group(1)


def kubernetes_version() -> str:
    return _required_version(REPO_ROOT / "hack" / "k8s" / "go.mod", "k8s.io/kubernetes")


def etcd_version() -> str:
    return _required_version(REPO_ROOT / "hack" / "etcd" / "go.mod", "go.etcd.io/etcd/server/v3")


def coredns_version() -> str:
    return _required_version(REPO_ROOT / "hack" / "coredns" / "go.mod", "github.com/coredns/coredns")


def cache_dir() -> Path:
    return Path(os.environ.get("STARTBENCH_CACHE") or Path.home() / ".cache" / "startbench")


@dataclasses.dataclass(frozen=True)
class Binaries:
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kubelet: Path
    kubectl: Path
    kube_proxy: Path
    etcd: Path
    coredns: Path
    kwok: Path
    helm: Path

    def missing(self) -> list[Path]:
        return [p for p in dataclasses.astuple(self) if not os.access(p, os.X_OK)]


def binaries(cache: Path | None = None) -> Binaries:
    root = (cache or cache_dir()) / "bin"
    k8s = root / f"kubernetes-{kubernetes_version()}"
    return Binaries(
        kube_apiserver=k8s / "kube-apiserver",
        kube_controller_manager=k8s / "kube-controller-manager",
        kube_scheduler=k8s / "kube-scheduler",
        kubelet=k8s / "kubelet",
        kubectl=k8s / "kubectl",
        kube_proxy=k8s / "kube-proxy",
        etcd=root / f"etcd-{etcd_version()}" / "etcd",
        coredns=root / f"coredns-{coredns_version()}" / "coredns",
        kwok=root / f"kwok-{KWOK_VERSION}" / "kwok",
        helm=root / f"helm-{HELM_VERSION}" / "helm",
    )


# Prometheus 3.16.0 with Kubernetes service discovery (Debian's 2.42 has none), built on request by
# `hack/k8s/build.sh prometheus` (hack/ci/setup-30-prometheus.sh); not part of the cluster.
PROMETHEUS_VERSION = "v0.316.0"


def prometheus_path(cache: Path | None = None) -> Path:
    return (cache or cache_dir()) / "bin" / f"prometheus-{PROMETHEUS_VERSION}" / "prometheus"


def cluster_dir(cache: Path | None = None) -> Path:
    return (cache or cache_dir()) / "cluster"


def kubeconfig_path(cache: Path | None = None) -> Path:
    return cluster_dir(cache) / "kubeconfig"
