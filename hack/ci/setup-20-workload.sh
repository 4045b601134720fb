#!/usr/bin/env bash
# Frameworks for the in-pod workload's tests (docs/workload.md), from PyPI only.
#   torch + torchvision   default tier: a real ResNet18 CPU run (PyPI's Linux wheel brings the CUDA
#                         libraries too, several GB; PyPI has no CPU-only torch wheel)
#   jax + flax            slow tier (CPU jaxlib)
#   tensorflow-cpu        slow tier (Keras 3)
#   nvidia-ml-py          the NVML sampler (imports without a GPU; only used when one is present)
# Idempotent: each group is skipped when its modules are installed (found without importing them: importing
# torch and tensorflow alone takes tens of seconds on a small machine).
set -euo pipefail
cd "$(dirname "$0")/../.."
export PIP_ROOT_USER_ACTION=ignore
pip_install() {
    python3 -m pip install -q --disable-pip-version-check --progress-bar off "$@"
}
have() {
    python3 -c "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('$1') else 1)" >/dev/null 2>&1
}
version() {
    python3 -c "import importlib.metadata as m; print(m.version('$1'))" 2>/dev/null || echo "?"
}
have numpy || pip_install "numpy>=1.26"
have pynvml || pip_install "nvidia-ml-py>=12"
if have torch && have torchvision; then
    echo "workload: torch $(version torch) already installed"
else
    pip_install "torch>=2.4" "torchvision>=0.19"
fi
if have jax && have flax; then
    echo "workload: jax $(version jax) already installed"
else
    pip_install "jax>=0.4.30" "flax>=0.10"
fi
if have tensorflow; then
    echo "workload: tensorflow $(version tensorflow-cpu) (tensorflow-cpu) already installed"
else
    pip_install "tensorflow-cpu>=2.16"
fi
