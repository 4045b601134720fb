"""Images a Benchmark names by reference (`image:` entries): read each one's manifest from its registry and
describe it for status.images and the image metrics: digest, compressed size and layer count.

Reads are anonymous (token services included, so public images on Docker Hub, GHCR or nvcr.io are read): the
operator is given no access to Secrets. An image the operator cannot read (a private registry, or one the
nodes reach and the operator does not) is described with `message` saying why and no sizes; its runs still
record the size each node pulled, from the kubelet's Pulled events. The uncompressed size is not in a
registry's manifest, so only images the operator builds have it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from startbench.images import manifest
from startbench.core.reference import InvalidReference, parse
from startbench.images.registry_api import RegistryAPIError, fetch_manifest
from startbench.core.spec import ImageEntry

TIMEOUT_S = 10.0  # per request: a registry that does not answer delays the first runs by this, a few times


def describe(entry: ImageEntry, fetch: Callable[..., tuple[bytes, str, str]] = fetch_manifest) -> dict[str, Any]:
    """The status.images value of an `image:` entry; never raises for a registry's answer (see `message`)."""
    described: dict[str, Any] = {"reference": entry.image, "framework": entry.framework, "variant": entry.variant}
    try:
        ref = parse(entry.image or "")
        raw, media_type, digest = fetch(ref.api_host, ref.repository, ref.reference, timeout=TIMEOUT_S)
        sizes = manifest.sizes(raw, media_type)
    except (InvalidReference, RegistryAPIError, manifest.ManifestError) as err:
        described["message"] = (f"the operator could not read this image's manifest, so its size is not "
                                f"recorded here (each run still records what its node pulled): {err}")
        return described
    described.update(digest=digest, compressedBytes=sizes.compressed_bytes, layers=sizes.layer_count,
                     layerMediaTypes=sorted({layer.media_type for layer in sizes.layers if layer.media_type}))
    return described
