"""Which Dockerfile builds which image, and what the image is called (pure, apart from reading dockerfiles/)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from startbench.images.context import DOCKERFILES
from startbench.images.errors import DockerfileNotFound, ImageBuildError

FRAMEWORKS = ("pytorch", "jax", "tensorflow")
VARIANTS = ("naive", "slim")
FLAVOURS = ("cpu", "cuda")
_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_REGISTRY = re.compile(r"^[A-Za-z0-9.\-]+(:[0-9]{1,5})?(/[a-z0-9]+([._-][a-z0-9]+)*)*$")


@dataclasses.dataclass(frozen=True)
class ImageSpec:
    framework: str
    variant: str
    flavour: str
    framework_dir: Path
    dockerfile: Path
    default_base: str


def dockerfile_path(framework_dir: Path, variant: str) -> Path:
    """<variant>.Dockerfile; a directory with a single plain `Dockerfile` (the operator) serves variant slim."""
    named = framework_dir / f"{variant}.Dockerfile"
    if not named.exists() and variant == "slim" and (framework_dir / "Dockerfile").exists():
        return framework_dir / "Dockerfile"
    return named


def available(dockerfiles: Path | None = None) -> dict[str, list[str]]:
    """framework -> variants that have a Dockerfile."""
    root = dockerfiles or DOCKERFILES
    out = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir() and p.name != "build-ca"):
        variants = [v for v in VARIANTS if dockerfile_path(d, v).exists()]
        if variants:
            out[d.name] = variants
    return out


def default_base(dockerfile_text: str) -> str:
    match = re.search(r"^ARG BASE_IMAGE=(\S+)", dockerfile_text, re.MULTILINE)
    return match.group(1) if match else ""


def resolve(framework: str, variant: str, flavour: str, dockerfiles: Path | None = None) -> ImageSpec:
    """The Dockerfile for framework/variant/flavour, or DockerfileNotFound saying what exists."""
    root = dockerfiles or DOCKERFILES
    if flavour not in FLAVOURS:
        raise ImageBuildError(f"flavour {flavour!r} is not one of {', '.join(FLAVOURS)}")
    for field, value in (("framework", framework), ("variant", variant)):
        if not _NAME.match(value or ""):
            raise ImageBuildError(f"{field} {value!r} is not a lower-case name (letters, digits, '-')")
    framework_dir = root / framework
    have = available(root) if root.is_dir() else {}
    if not framework_dir.is_dir():
        raise DockerfileNotFound(
            f"no directory {framework_dir} for framework {framework!r}; frameworks with Dockerfiles: "
            f"{', '.join(have) or 'none'}"
        )
    dockerfile = dockerfile_path(framework_dir, variant)
    if not dockerfile.is_file():
        raise DockerfileNotFound(
            f"no {dockerfile} for variant {variant!r} of {framework}; variants there: "
            f"{', '.join(have.get(framework, [])) or 'none'}"
        )
    text = dockerfile.read_text()
    if "requirements-${FLAVOUR}" in text and not (framework_dir / f"requirements-{flavour}.txt").is_file():
        raise DockerfileNotFound(
            f"{dockerfile} installs requirements-{flavour}.txt, which {framework_dir} lacks; add it or pick "
            f"another flavour"
        )
    return ImageSpec(framework, variant, flavour, framework_dir, dockerfile, default_base(text))


def reference(registry: str, framework: str, variant: str, flavour: str) -> str:
    """<registry>/startbench-<framework>:<variant>-<flavour>; registry is host[:port][/namespace...]."""
    registry = registry.strip().rstrip("/")
    if "://" in registry or not _REGISTRY.match(registry):
        raise ImageBuildError(
            f"registry {registry!r} is not host[:port][/namespace] (no scheme, no tag), e.g. 127.0.0.1:5000 "
            "or ghcr.io/myorg"
        )
    return f"{registry}/startbench-{framework}:{variant}-{flavour}"
