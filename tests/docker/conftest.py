"""Fixtures of the docker tier: the engine, the local registries and the local base image.

Each fixture calls the same idempotent `ensure()` that `startbench cluster up` calls, so the first test
starts what is missing (the base image takes about a minute the first time) and later ones reuse it.
"""

from __future__ import annotations

import uuid

import pytest

from startbench.localcluster import baseimage, docker_engine, registry


def pytest_collection_modifyitems(items):
    # Every test in this directory needs the engine: mark them, so `-m "not docker"` leaves them out.
    for item in items:
        if "tests/docker/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.docker)


@pytest.fixture(scope="session")
def docker_host() -> str:
    return docker_engine.ensure()


@pytest.fixture(scope="session")
def docker_client(docker_host):
    import docker

    client = docker.DockerClient(base_url=docker_host, timeout=600)
    yield client
    client.close()


@pytest.fixture(scope="session")
def registries(docker_host) -> dict:
    return registry.ensure()


@pytest.fixture(scope="session")
def base_image(docker_host, registries) -> str:
    """The registry reference of the local base image (built and pushed once)."""
    return baseimage.ensure(docker_host=docker_host)


@pytest.fixture
def unique_tag() -> str:
    return "t" + uuid.uuid4().hex[:12]
