# pytorch, slim: the virtual environment is built from pinned requirements in a builder stage and only it
# (plus the workload) is copied into a lean base. No compilers, pip, caches, tests or C headers in the final
# image; a non-root user; exec-form entry point. Build with `startbench images build` (docs/images.md).
ARG BASE_IMAGE=python:3.11-slim

# --- installed: the pinned requirements as pip installs them (bench/images_sizes.py measures this stage)
FROM ${BASE_IMAGE} AS installed
ARG FLAVOUR=cuda
COPY dockerfiles/build-ca/ /tmp/build-ca/
COPY dockerfiles/pytorch/requirements-${FLAVOUR}.txt /tmp/requirements.txt
RUN if [ -f /tmp/build-ca/ca.crt ]; then export PIP_CERT=/tmp/build-ca/ca.crt; fi; \
    python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps -r /tmp/requirements.txt \
 && /opt/venv/bin/pip check

# --- builder: drop what does not run, check the framework still imports, precompile the workload
FROM installed AS builder
# triton is torch.compile's JIT compiler with its own CUDA toolchain (about 1 GB installed, the cuda flavour only).
# The workload trains eagerly and never compiles, so the slim image leaves it out; torch imports it only when
# compiling. For a torch.compile training image, build with --build-arg DROP= to keep it.
ARG DROP=triton
COPY dockerfiles/prune-venv.sh /tmp/prune-venv.sh
RUN PRUNE_DROP="$DROP" sh /tmp/prune-venv.sh /opt/venv /tmp/requirements.txt \
 && /opt/venv/bin/python -c "import torch, torchvision"
COPY operator/startbench/__init__.py /opt/startbench/startbench/__init__.py
COPY operator/startbench/workload/ /opt/startbench/startbench/workload/
# What is left still trains: two small steps on the CPU (a few seconds), then precompile the workload.
RUN PYTHONPATH=/opt/startbench /opt/venv/bin/python -m startbench.workload --framework pytorch --model resnet18 \
        --steps 2 --batch-size 2 --shape tiny-imagenet --device cpu > /dev/null \
 && /opt/venv/bin/python -m compileall -q /opt/startbench

# --- final: the lean base, the venv, the workload, a non-root user
FROM ${BASE_IMAGE}
RUN useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin startbench
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /opt/startbench /opt/startbench
ENV PATH=/opt/venv/bin:$PATH PYTHONPATH=/opt/startbench STARTBENCH_FRAMEWORK=pytorch PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /home/startbench
ENTRYPOINT ["/opt/venv/bin/python", "-m", "startbench.workload"]
