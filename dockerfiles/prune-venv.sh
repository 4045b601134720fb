#!/bin/sh
# Remove from a virtual environment what a training run never uses: pip itself, test suites, C/C++ headers
# and static libraries and C sources (no compiler in the final image).
# Kept on purpose: bytecode (__pycache__: without it every start recompiles, which slows the imports phase we
# measure), and the nvidia/ and triton/ trees whole (their headers and tools are used by JIT compilers).
# PRUNE_DROP (environment): installed packages to uninstall as well, space-separated, after `pip check` has seen
# them complete (e.g. triton for an image that never runs torch.compile); one that is not installed is skipped.
set -eu
venv=${1:?usage: prune-venv.sh VENV [REQUIREMENTS]}
requirements=${2:-/dev/null}
site=$(echo "$venv"/lib/python3*/site-packages)
before=$(du -sk "$venv" | cut -f1)
# setuptools and wheel come with the venv; keep them only where the pinned requirements ask for them.
for tool in setuptools wheel; do
    grep -qi "^$tool==" "$requirements" || "$venv/bin/python" -m pip uninstall -q -y "$tool" 2>/dev/null || true
done
for package in ${PRUNE_DROP:-}; do
    if "$venv/bin/python" -m pip show -q "$package" 2>/dev/null; then
        "$venv/bin/python" -m pip uninstall -q -y "$package"
        echo "prune-venv: dropped $package"
    fi
done
"$venv/bin/python" -m pip uninstall -q -y pip 2>/dev/null || true
rm -f "$venv"/bin/pip "$venv"/bin/pip3*
keep="-path $site/nvidia -o -path $site/triton"
# shellcheck disable=SC2086 # $keep is a list of find arguments
find "$site" -mindepth 1 \( $keep \) -prune -o -type d \( -name tests -o -name include \) -prune -exec rm -rf {} +
# shellcheck disable=SC2086
find "$site" -mindepth 1 \( $keep \) -prune -o -type f \( -name '*.a' -o -name '*.pyx' -o -name '*.pxd' \
    -o -name '*.c' -o -name '*.cc' -o -name '*.cpp' -o -name '*.h' -o -name '*.hpp' \) -exec rm -f {} +
after=$(du -sk "$venv" | cut -f1)
echo "prune-venv: $venv $((before / 1024)) MiB -> $((after / 1024)) MiB"
