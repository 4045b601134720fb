"""Image sizes from registry manifests (pure: documents in, numbers out).

Handles the four documents a registry serves for a tag:
  * Docker image manifest v2 schema 2   application/vnd.docker.distribution.manifest.v2+json
  * OCI image manifest                  application/vnd.oci.image.manifest.v1+json
  * Docker manifest list                application/vnd.docker.distribution.manifest.list.v2+json
  * OCI image index                     application/vnd.oci.image.index.v1+json

The compressed size of an image is the sum of its layer blobs' sizes as the registry stores them (what a
pull downloads, apart from the small config blob), the figure registries and the published comparison
call "compressed". An index names one manifest per platform; `select_platform` picks one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST_TYPES = (DOCKER_MANIFEST, OCI_MANIFEST)
INDEX_TYPES = (DOCKER_LIST, OCI_INDEX)
ACCEPT = ", ".join(MANIFEST_TYPES + INDEX_TYPES)


class ManifestError(ValueError):
    """A registry document is not a manifest or index this module understands; the message says which field."""


@dataclasses.dataclass(frozen=True)
class Layer:
    digest: str
    size: int
    media_type: str

    def to_dict(self) -> dict:
        return {"digest": self.digest, "compressed_bytes": self.size, "media_type": self.media_type}


@dataclasses.dataclass(frozen=True)
class ManifestSizes:
    media_type: str
    config_digest: str
    config_size: int
    layers: tuple[Layer, ...]

    @property
    def compressed_bytes(self) -> int:
        return sum(layer.size for layer in self.layers)

    @property
    def layer_count(self) -> int:
        return len(self.layers)


def digest_of(raw: bytes) -> str:
    """The content digest a registry gives the exact bytes of a manifest."""
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def load(raw: bytes | str | Mapping[str, Any]) -> dict:
    if isinstance(raw, Mapping):
        return dict(raw)
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError(f"the registry's manifest is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ManifestError("the registry's manifest is not a JSON object")
    return doc


def media_type_of(doc: Mapping[str, Any], content_type: str | None = None) -> str:
    """The document's media type: its own `mediaType`, else the HTTP Content-Type, else inferred.

    OCI documents may omit `mediaType`; an index has `manifests`, an image manifest has `config` and `layers`.
    """
    declared = doc.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    if content_type:
        ct = content_type.split(";")[0].strip()
        if ct in MANIFEST_TYPES + INDEX_TYPES:
            return ct
    if doc.get("schemaVersion") != 2:
        raise ManifestError(
            f"manifest schemaVersion is {doc.get('schemaVersion')!r}; only schema 2 (Docker v2 and OCI) is "
            "supported: push the image again with a current Docker or OCI client"
        )
    if "manifests" in doc:
        return OCI_INDEX
    if "layers" in doc and "config" in doc:
        return OCI_MANIFEST
    raise ManifestError("document has neither `manifests` (an index) nor `config` and `layers` (a manifest)")


def is_index(doc: Mapping[str, Any], content_type: str | None = None) -> bool:
    return media_type_of(doc, content_type) in INDEX_TYPES


def _descriptor(value: Any, where: str) -> tuple[str, int, str]:
    if not isinstance(value, Mapping):
        raise ManifestError(f"{where} is not an object")
    digest, size, media_type = value.get("digest"), value.get("size"), value.get("mediaType", "")
    if not isinstance(digest, str) or ":" not in digest:
        raise ManifestError(f"{where}.digest is {digest!r}, not a digest like sha256:<hex>")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ManifestError(f"{where}.size is {size!r}, not a byte count")
    return digest, size, media_type if isinstance(media_type, str) else ""


def sizes(raw: bytes | str | Mapping[str, Any], content_type: str | None = None) -> ManifestSizes:
    """Layer and config sizes of an image manifest (Docker v2 or OCI). An index raises ManifestError."""
    doc = load(raw)
    media_type = media_type_of(doc, content_type)
    if media_type in INDEX_TYPES:
        raise ManifestError(
            f"this is an index ({media_type}) naming one manifest per platform; pick one with "
            "select_platform() and fetch that manifest"
        )
    if media_type not in MANIFEST_TYPES:
        raise ManifestError(f"mediaType {media_type!r} is not an image manifest ({', '.join(MANIFEST_TYPES)})")
    config_digest, config_size, _ = _descriptor(doc.get("config"), "config")
    layers_doc = doc.get("layers")
    if not isinstance(layers_doc, list):
        raise ManifestError("`layers` is missing or not a list")
    layers = tuple(Layer(*_descriptor(entry, f"layers[{i}]")) for i, entry in enumerate(layers_doc))
    return ManifestSizes(media_type, config_digest, config_size, layers)


def platforms(raw: bytes | str | Mapping[str, Any], content_type: str | None = None) -> list[dict]:
    """The entries of an index: digest, size, mediaType and platform (os, architecture, variant)."""
    doc = load(raw)
    if not is_index(doc, content_type):
        raise ManifestError("this is an image manifest, not an index; read its sizes with sizes()")
    entries = doc.get("manifests")
    if not isinstance(entries, list):
        raise ManifestError("`manifests` is not a list")
    out = []
    for i, entry in enumerate(entries):
        digest, size, media_type = _descriptor(entry, f"manifests[{i}]")
        platform = entry.get("platform") or {}
        out.append({
            "digest": digest, "size": size, "media_type": media_type,
            "os": platform.get("os", ""), "architecture": platform.get("architecture", ""),
            "variant": platform.get("variant", ""),
        })
    return out


def select_platform(raw: bytes | str | Mapping[str, Any], os: str = "linux", architecture: str = "amd64",
                    variant: str = "", content_type: str | None = None) -> dict:
    """The index entry for one platform (attestation manifests, platform unknown/unknown, never match)."""
    entries = platforms(raw, content_type)
    matches = [e for e in entries if e["os"] == os and e["architecture"] == architecture
               and (not variant or e["variant"] == variant)]
    if not matches:
        offered = ", ".join(sorted({f"{e['os']}/{e['architecture']}" + (f"/{e['variant']}" if e['variant'] else "")
                                    for e in entries})) or "none"
        raise ManifestError(
            f"the index has no manifest for {os}/{architecture}{'/' + variant if variant else ''}; "
            f"it offers {offered}: build the image for this platform or ask for one of those"
        )
    return matches[0]


def compression_of(media_type: str) -> str:
    """gzip, zstd, estargz (a gzip layer with a stargz TOC is only told apart by its annotations), or none."""
    if media_type.endswith("+zstd") or media_type.endswith(".zstd"):
        return "zstd"
    if media_type.endswith("gzip"):
        return "gzip"
    if media_type.endswith(".tar") or media_type.endswith("tar"):
        return "none"
    return media_type.rsplit("+", 1)[-1] or "unknown"
