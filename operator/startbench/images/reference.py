"""Image references as the kubelet reads them: `[host[:port]/]path[:tag][@sha256:digest]`, with Docker Hub's
defaults (no host: docker.io; a one-part path on docker.io: library/<path>; no tag: latest). Pure."""

from __future__ import annotations

import dataclasses
import re

_REF = re.compile(r"^(?:(?P<host>[a-zA-Z0-9.-]+(?::[0-9]+)?|localhost(?::[0-9]+)?)/)?"
                  r"(?P<repo>[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*)"
                  r"(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>sha256:[a-f0-9]{64}))?$")
# Docker Hub's name in references, and the host that serves its registry API.
DOCKER_HUB, DOCKER_HUB_API = "docker.io", "registry-1.docker.io"


class InvalidReference(ValueError):
    """Not an image reference; the message is the kubelet's own words for it."""


@dataclasses.dataclass(frozen=True)
class ImageRef:
    host: str
    repository: str
    reference: str  # the digest when the reference pins one, else the tag

    @property
    def is_latest(self) -> bool:
        return self.reference == "latest"

    @property
    def api_host(self) -> str:
        """Where the registry API for `host` answers (Docker Hub's is not docker.io itself)."""
        return DOCKER_HUB_API if self.host == DOCKER_HUB else self.host


def parse(ref: str) -> ImageRef:
    match = _REF.match(ref)
    if not match:
        raise InvalidReference(f'Failed to apply default image tag "{ref}": couldn\'t parse image name "{ref}": '
                               f'invalid reference format')
    host = match.group("host")
    repo = match.group("repo")
    if host and "." not in host and ":" not in host and host != "localhost":
        repo, host = f"{host}/{repo}", None  # "library/x": the first part was a path, not a host
    host = host or DOCKER_HUB
    if host == DOCKER_HUB and "/" not in repo:
        repo = f"library/{repo}"
    return ImageRef(host, repo, match.group("digest") or match.group("tag") or "latest")
