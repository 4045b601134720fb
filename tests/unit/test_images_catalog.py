"""Which Dockerfile builds what, image names, and the messages for bad input."""

from __future__ import annotations

import pytest

from startbench.images import catalog
from startbench.images.errors import DockerfileNotFound, ImageBuildError


def test_every_framework_has_both_variants_and_both_requirement_files():
    have = catalog.available()
    for framework in catalog.FRAMEWORKS:
        assert have[framework] == ["naive", "slim"]
        for flavour in catalog.FLAVOURS:
            spec = catalog.resolve(framework, "slim", flavour)
            assert spec.dockerfile.name == "slim.Dockerfile"
            assert (spec.framework_dir / f"requirements-{flavour}.txt").is_file()
    assert catalog.resolve("operator", "slim", "cpu").dockerfile.name == "Dockerfile"


def test_default_bases_are_the_public_python_images():
    assert catalog.resolve("jax", "naive", "cpu").default_base == "python:3.11"
    assert catalog.resolve("jax", "slim", "cpu").default_base == "python:3.11-slim"


def test_missing_dockerfile_names_what_exists(tmp_path):
    (tmp_path / "jax").mkdir()
    (tmp_path / "jax" / "slim.Dockerfile").write_text("ARG BASE_IMAGE=x\nFROM ${BASE_IMAGE}\n"
                                                        "COPY dockerfiles/jax/requirements-${FLAVOUR}.txt /r\n")
    with pytest.raises(DockerfileNotFound, match="framework 'torch'.*frameworks with Dockerfiles: jax"):
        catalog.resolve("torch", "slim", "cpu", tmp_path)
    with pytest.raises(DockerfileNotFound, match="naive.Dockerfile for variant 'naive' of jax; variants there: slim"):
        catalog.resolve("jax", "naive", "cpu", tmp_path)
    with pytest.raises(DockerfileNotFound, match="requirements-cuda.txt"):
        catalog.resolve("jax", "slim", "cuda", tmp_path)
    with pytest.raises(ImageBuildError, match="flavour 'rocm'"):
        catalog.resolve("jax", "slim", "rocm", tmp_path)
    with pytest.raises(ImageBuildError, match="framework '../etc'"):
        catalog.resolve("../etc", "slim", "cpu", tmp_path)


@pytest.mark.parametrize("registry, expected", [
    ("127.0.0.1:5000", "127.0.0.1:5000/startbench-jax:slim-cpu"),
    ("ghcr.io/myorg/", "ghcr.io/myorg/startbench-jax:slim-cpu"),
    ("localhost", "localhost/startbench-jax:slim-cpu"),
])
def test_reference(registry, expected):
    assert catalog.reference(registry, "jax", "slim", "cpu") == expected


@pytest.mark.parametrize("registry", ["https://ghcr.io", "ghcr.io/Org", "r:5000/x:tag", ""])
def test_bad_registry_says_the_expected_shape(registry):
    with pytest.raises(ImageBuildError, match=r"host\[:port\]\[/namespace\]"):
        catalog.reference(registry, "jax", "slim", "cpu")
