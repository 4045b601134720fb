"""Image references, the one grammar startbench reads them with: distribution/reference's, which the kubelet and
containerd accept, `[domain[:port]/]path[:tag][@algorithm:digest]`, with Docker Hub's defaults (no domain:
docker.io; a one-part path there: library/<path>; no tag and no digest: latest). Pure.

The spec's validation (and the CRD's CEL rule, which is `IMAGE_REFERENCE` verbatim), the registry reads, the
pull simulator and the image purge all parse with this module.
"""

from __future__ import annotations

import dataclasses
import re

_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = _COMPONENT + r"(?:\." + _COMPONENT + r")*(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH = _PATH_COMPONENT + r"(?:/" + _PATH_COMPONENT + r")*"
_TAG = r"[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

# The whole grammar as one pattern that Go's RE2 (the API server's CEL `matches`) and Python's re both accept.
IMAGE_REFERENCE = rf"^(?:{_DOMAIN}/)?{_PATH}(?::{_TAG})?(?:@{_DIGEST})?$"
MAX_IMAGE_REFERENCE = 512
MAX_REPOSITORY = 255
_PARTS = re.compile(rf"^(?:(?P<domain>{_DOMAIN})/)?(?P<path>{_PATH})(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$")

# Docker Hub's name in references, and the host that serves its registry API.
DOCKER_HUB, DOCKER_HUB_API = "docker.io", "registry-1.docker.io"
EXAMPLE = "127.0.0.1:5000/startbench/pytorch:slim"


class InvalidReference(ValueError):
    """Not an image reference; the message is the kubelet's own words for it."""


@dataclasses.dataclass(frozen=True)
class ImageRef:
    host: str                 # the registry (docker.io when the reference names none)
    repository: str           # the path on that registry (library/x for a one-part Docker Hub path)
    tag: str | None           # as written (None when absent)
    digest: str | None        # as written (None when absent)
    written_name: str         # the name as written, before any default

    @property
    def reference(self) -> str:
        """What a registry resolves: the digest when the reference pins one, else the tag (default latest)."""
        return self.digest or self.tag or "latest"

    @property
    def is_latest(self) -> bool:
        return self.reference == "latest"

    @property
    def api_host(self) -> str:
        """Where the registry API for `host` answers (Docker Hub's is not docker.io itself)."""
        return DOCKER_HUB_API if self.host == DOCKER_HUB else self.host

    def normalized(self) -> str:
        """The fully qualified spelling containerd's CRI plugin stores: docker.io/library/x:latest for `x`."""
        tag = self.tag if self.tag is not None or self.digest is not None else "latest"
        return f"{self.host}/{self.repository}" + (f":{tag}" if tag else "") + (f"@{self.digest}" if self.digest else "")

    def aliases(self) -> list[str]:
        """References that name the same image, as far as the spelling tells: the one written, and for
        `name:tag@sha256:d` also `name@sha256:d` and `name:tag` (the forms containerd records for a pull by
        digest). Spelled as written."""
        written = self.written_name + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")
        out = [written]
        if self.digest:
            out.append(f"{self.written_name}@{self.digest}")
            if self.tag:
                out.append(f"{self.written_name}:{self.tag}")
        return list(dict.fromkeys(out))


def parse(ref: str) -> ImageRef:
    """The parts of `ref`, defaults applied; InvalidReference (in the kubelet's words) when it is not one."""
    match = _PARTS.fullmatch(ref) if isinstance(ref, str) else None
    if not match:
        raise InvalidReference(f'Failed to apply default image tag "{ref}": couldn\'t parse image name "{ref}": '
                               f'invalid reference format')
    domain, path = match.group("domain"), match.group("path")
    written_name = f"{domain}/{path}" if domain else path
    if domain and "." not in domain and ":" not in domain and domain != "localhost":
        path, domain = f"{domain}/{path}", None  # "library/x": the first part was a path, not a domain
    host = domain or DOCKER_HUB
    if host == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    return ImageRef(host, path, match.group("tag"), match.group("digest"), written_name)


def problem(ref: str) -> str | None:
    """Why `ref` is not an image reference the kubelet can pull (words for a person, with the fix), or None."""
    if not isinstance(ref, str) or not ref:
        return f"is empty; give an image reference such as {EXAMPLE}"
    if len(ref) > MAX_IMAGE_REFERENCE:
        return f"is {len(ref)} characters long; an image reference has at most {MAX_IMAGE_REFERENCE}"
    match = _PARTS.fullmatch(ref)
    if not match:
        last = ref.split("@")[0].split("/")[-1].split(":")[0]
        hint = ""
        if any(c.isspace() for c in ref):
            hint = " (it contains white space)"
        elif "://" in ref:
            hint = " (leave out the scheme, e.g. https://)"
        elif last != last.lower():
            hint = " (repository names must be lower case)"
        return (f"{ref!r} is not a valid image reference{hint}; use [registry[:port]/]path[:tag][@sha256:digest], "
                f"e.g. {EXAMPLE}")
    name = f"{match.group('domain')}/{match.group('path')}" if match.group("domain") else match.group("path")
    if len(name) > MAX_REPOSITORY:
        return f"{ref!r} has a repository name longer than {MAX_REPOSITORY} characters"
    return None


def normalize(ref: str) -> str:
    """`parse(ref).normalized()`; a string that is no reference (an image ID in `ctr images ls`, say) is itself."""
    try:
        return parse(ref).normalized()
    except InvalidReference:
        return ref


def aliases(ref: str) -> list[str]:
    """`parse(ref).aliases()`; a string that is no reference is its only alias."""
    try:
        return parse(ref).aliases()
    except InvalidReference:
        return [ref]
