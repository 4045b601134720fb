"""Shared pytest configuration.

The tiers (markers, pyproject.toml): every test under tests/unit/ that needs nothing else is marked `unit`, so
`python3 -m pytest -m unit` runs the pure unit tests alone. A test that needs a built or installed tool says so
with `@pytest.mark.tools("helm")` or `@pytest.mark.framework("torch")` (tests/support/tools.py finds them). When
one is missing the test is skipped, naming the setup script that brings it; under CI=true it fails instead,
before any fixture runs: on CI the setup scripts have run, so a missing tool is a broken setup, not a reason to
pass without testing.

The fixtures: the Docker engine, the local registries and images, used by the docker and the cluster tiers alike
(session-scoped, each from the same idempotent ensure() that `startbench cluster up` calls, so the first test
starts or builds what is missing and later ones reuse it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support import tools

UNIT_DIR = Path(__file__).resolve().parent / "unit"
# A test under tests/unit/ with one of these is not a pure unit test.
NOT_UNIT = ("cluster", "docker", "slow", "tools", "framework")
MISSING = pytest.StashKey[str]()


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1")


def _missing(item: pytest.Item, cache: dict) -> str | None:
    """Why the tools and frameworks the item's markers name are not all there, or None."""
    reasons = []
    for marker_name, check in (("tools", tools.missing_tool), ("framework", tools.missing_framework)):
        for marker in item.iter_markers(marker_name):
            if not marker.args:
                raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.{marker_name} needs what it needs, named: "
                                        f'@pytest.mark.tools("helm") or @pytest.mark.framework("torch")')
            for name in marker.args:
                key = (marker_name, name)
                if key not in cache:
                    cache[key] = check(name)
                if cache[key] and cache[key] not in reasons:
                    reasons.append(cache[key])
    return "; ".join(reasons) or None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    cache: dict = {}
    ci = in_ci()
    for item in items:
        if item.path.is_relative_to(UNIT_DIR) and not any(item.get_closest_marker(m) for m in NOT_UNIT):
            item.add_marker(pytest.mark.unit)
        reason = _missing(item, cache)
        if reason is None:
            continue
        if ci:
            item.stash[MISSING] = reason
        else:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    # Before any fixture is set up (the JAX image fixture alone takes minutes to build).
    reason = item.stash.get(MISSING, None)
    if reason:
        pytest.fail(f"CI=true and a tool this test needs is missing (on CI that is a failure, not a skip): {reason}",
                    pytrace=False)


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
