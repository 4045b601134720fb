"""Shared pytest configuration: the Docker engine, the local registries and images, used by the docker and
the cluster tiers alike (session-scoped, each from the same idempotent ensure() that `startbench cluster up` calls,
so the first test starts or builds what is missing and later ones reuse it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def docker_host() -> str:
    from startbench.localcluster import docker_engine
    return docker_engine.ensure()


@pytest.fixture(scope="session")
def docker_client(docker_host):
    import docker

    client = docker.DockerClient(base_url=docker_host, timeout=600)
    yield client
    client.close()


@pytest.fixture(scope="session")
def registries(docker_host) -> dict:
    from startbench.localcluster import registry
    return registry.ensure()


@pytest.fixture(scope="session")
def base_image(docker_host, registries) -> str:
    """The registry reference of the local base image (built and pushed once)."""
    from startbench.localcluster import baseimage
    return baseimage.ensure(docker_host=docker_host)


def host_ca_bundle() -> Path | None:
    """The CA bundle this machine's pip trusts, for a test image's pip step (a TLS-intercepting proxy needs it;
    without one the system bundle is harmless). Never part of an image for users: see dockerfiles/build-ca/."""
    for candidate in (os.environ.get("PIP_CERT"), os.environ.get("SSL_CERT_FILE"),
                      os.environ.get("REQUESTS_CA_BUNDLE"), "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def jax_image(docker_host, registries, base_image) -> str:
    """The JAX slim CPU image built from this checkout's dockerfiles/ and workload, in the no-auth registry
    (a few minutes the first time on a machine; the engine's build cache makes it quick after that)."""
    from startbench.images import builder
    record = builder.build_and_push("jax", "slim", "cpu", registries["noauth"], base_image=base_image,
                                    docker_host=docker_host, ca_bundle=host_ca_bundle(), record=False)
    return record.reference
