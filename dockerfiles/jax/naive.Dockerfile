# jax, naive: one stage on a general-purpose Python image, the framework installed the quick way
# (`pip install` as its docs say, unpinned, pip's cache left in place), as in the published 2021 comparison.
# The baseline that slim.Dockerfile is measured against; build with `startbench images build` (docs/images.md).
ARG BASE_IMAGE=python:3.11
FROM ${BASE_IMAGE}

# cuda: the PyPI wheels with their CUDA libraries; cpu: the framework's CPU-only install.
ARG FLAVOUR=cuda
# Optional CA bundle for the build machine's TLS proxy (dockerfiles/build-ca/, empty for user builds).
COPY dockerfiles/build-ca/ /tmp/build-ca/
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN if [ -f /tmp/build-ca/ca.crt ]; then export PIP_CERT=/tmp/build-ca/ca.crt; fi; \
    if [ "$FLAVOUR" = cpu ]; then pip install jax flax optax; else pip install "jax[cuda12]" flax optax nvidia-ml-py; fi

COPY operator/startbench/__init__.py /opt/startbench/startbench/__init__.py
COPY operator/startbench/workload/ /opt/startbench/startbench/workload/
ENV PYTHONPATH=/opt/startbench STARTBENCH_FRAMEWORK=jax
ENTRYPOINT ["/opt/venv/bin/python", "-m", "startbench.workload"]
