#!/usr/bin/env bash
# Frameworks for the in-pod workload's tests (docs/workload.md), from PyPI only.
#   torch + torchvision   default tier: a real ResNet18 CPU run (PyPI's Linux wheel brings the CUDA
#                         libraries too, several GB; PyPI has no CPU-only torch wheel)
#   jax + flax            slow tier (CPU jaxlib)
#   tensorflow-cpu        slow tier (Keras 3)
#   nvidia-ml-py          the NVML sampler (imports without a GPU; only used when one is present)
# Idempotent: each group is skipped when it already imports.
set -euo pipefail
cd "$(dirname "$0")/../.."
pip_install() {
    python3 -m pip install -q --disable-pip-version-check --progress-bar off "$@"
}
have() {
    python3 -c "import $1" >/dev/null 2>&1
}
have numpy || pip_install "numpy>=1.26"
have pynvml || pip_install "nvidia-ml-py>=12"
if have torch && have torchvision; then
    echo "workload: torch $(python3 -c 'import torch; print(torch.__version__)') already installed"
else
    pip_install "torch>=2.4" "torchvision>=0.19"
fi
if have jax && have flax; then
    echo "workload: jax $(python3 -c 'import jax; print(jax.__version__)') already installed"
else
    pip_install "jax>=0.4.30" "flax>=0.10"
fi
if have tensorflow; then
    echo "workload: tensorflow $(python3 -c 'import tensorflow as tf; print(tf.__version__)' 2>/dev/null) already installed"
else
    pip_install "tensorflow-cpu>=2.16"
fi
