"""The docker tier: every test here is marked `docker`. The engine, registries and images fixtures are shared
with the cluster tier and live in tests/conftest.py."""

from __future__ import annotations

import uuid

import pytest


def pytest_collection_modifyitems(items):
    # Every test in this directory needs the engine: mark them, so `-m "not docker"` leaves them out.
    for item in items:
        if "tests/docker/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.docker)


@pytest.fixture
def unique_tag() -> str:
    return "t" + uuid.uuid4().hex[:12]
