"""What a loopback registry serves for an image, read with plain HTTP: the expected values for tests of code that
reads registries (so a test does not check that code against itself)."""

from __future__ import annotations

import hashlib
import json
import urllib.request

ACCEPT = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"


def manifest_of(reference: str) -> tuple[dict, str]:
    """(manifest document, its digest) for `host:port/repository:tag` on a registry without auth."""
    host, rest = reference.split("/", 1)
    repository, tag = rest.rsplit(":", 1)
    request = urllib.request.Request(f"http://{host}/v2/{repository}/manifests/{tag}", headers={"Accept": ACCEPT})
    with urllib.request.urlopen(request, timeout=10) as response:
        raw = response.read()
    return json.loads(raw), "sha256:" + hashlib.sha256(raw).hexdigest()
