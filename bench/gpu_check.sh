#!/usr/bin/env bash
# The GPU device check (docs/workload.md, "The GPU device check"): the in-pod workload from this checkout on one
# GPU, PyTorch and JAX x ResNet50 (bf16, fp32) x batch 64 and 256, ResNet18 and AlexNet at one setting, each with
# and without the NVML sampler; every report and a summary JSON go to $OUT. Made for a machine with one H200,
# no network, python3 with torch, torchvision, jax, flax, optax and nvidia-ml-py: about 6 minutes, runs not
# started past a deadline are listed in the summary. bench/gpu_check.py does the work and says more.
#
#   OUT=/tmp/gpu-check bench/gpu_check.sh              # on the GPU machine
#   OUT=/tmp/gpu-check bench/gpu_check.sh --cpu        # the same plan on the CPU, tiny settings (minutes)
#   bench/gpu_check.sh --cpu --limit 1 --out DIR       # any bench/gpu_check.py option passes through
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
cpu=false
for arg in "$@"; do [ "$arg" = --cpu ] && cpu=true; done
out=${OUT:-}
prev=
for arg in "$@"; do
    case $arg in --out=*) out=${arg#--out=} ;; esac
    [ "$prev" = --out ] && out=$arg
    prev=$arg
done
if [ -z "$out" ]; then
    echo "gpu_check.sh: set OUT (or pass --out DIR) to the directory for the reports and the summary" >&2
    exit 2
fi
mkdir -p "$out"
if ! $cpu; then
    # The card as found (read only: nothing here changes its settings).
    { nvidia-smi; nvidia-smi -q -d CLOCK,POWER,MEMORY,PERFORMANCE; } >"$out/nvidia-smi.txt" 2>&1 ||
        echo "gpu_check.sh: nvidia-smi failed (see $out/nvidia-smi.txt)" >&2
fi
GPU_CHECK_COMMAND="bench/gpu_check.sh$(printf ' %q' "$@")"
export GPU_CHECK_COMMAND
exec "$PYTHON" bench/gpu_check.py --python "$PYTHON" --out "$out" "$@"
