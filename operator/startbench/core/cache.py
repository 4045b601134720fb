"""The cache state a run observed, decided from evidence. Pure.

The kubelet reports a pull the same way whether it downloaded every layer or only re-resolved the manifest of an
image it already had (pull policy Always): `Successfully pulled image "X" in 22ms ... Image size: N bytes`. So the
event alone cannot tell a cold pull from a no-op. The evidence, taken by the operator and kept on the pod:

- the kubelet's event: `already present on machine` is a hit (no pull at all);
- the node's image list (`node.status.images`, the kubelet's own) read right before the pod was created: whether
  it listed the image (by tag or digest), and which digests of the image's repository it held;
- the operator's own history: an earlier run of the benchmark on the node that got the image there (the kubelet
  refreshes its list only every few seconds, so a run right after another finds the list stale), and a purge
  right before the run (then the image was not there, whatever the list says).

A pull is then `miss` (layers downloaded: the node did not have the image, it was purged, or the tag now names a
digest the node did not hold), `revalidated` (the node had the image: nothing transferred), or, with no node
evidence at all (an operator older than this, or a node that lists more images than the kubelet reports), `miss`,
with the evidence saying so. Only `miss` pulls measure download throughput.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from startbench.core.contracts import (ANNOTATION_IMAGE_ON_NODE, ANNOTATION_NODE_DIGESTS, ANNOTATION_PULLED_BY,
                                       ANNOTATION_PURGED, HIT, MISS, OBSERVED_FOR_ASKED, REVALIDATED, UNKNOWN)
from startbench.core.reference import InvalidReference, normalize, parse


@dataclasses.dataclass(frozen=True)
class NodeEvidence:
    """What the node held of an image right before a run's pod was created."""
    image_on_node: bool            # the node listed the image's reference (tag or digest), or pulled_by got it
    digests: tuple[str, ...] = ()  # digests of the image's repository the node held
    purged: bool = False           # the operator removed the image from the node first
    pulled_by: str | None = None   # an earlier run of the benchmark on this node that got the image there

    def annotations(self) -> dict[str, str]:
        out = {ANNOTATION_IMAGE_ON_NODE: "true" if self.image_on_node else "false"}
        if self.digests:
            out[ANNOTATION_NODE_DIGESTS] = ",".join(self.digests)
        if self.purged:
            out[ANNOTATION_PURGED] = "true"
        if self.pulled_by:
            out[ANNOTATION_PULLED_BY] = self.pulled_by
        return out

    @classmethod
    def from_annotations(cls, annotations: Mapping[str, str] | None) -> "NodeEvidence | None":
        annotations = annotations or {}
        if ANNOTATION_IMAGE_ON_NODE not in annotations:
            return None
        digests = tuple(d for d in (annotations.get(ANNOTATION_NODE_DIGESTS) or "").split(",") if d)
        return cls(annotations[ANNOTATION_IMAGE_ON_NODE] == "true", digests, annotations.get(ANNOTATION_PURGED) == "true",
                   annotations.get(ANNOTATION_PULLED_BY) or None)


def node_evidence(image: str, node_images: Iterable[Mapping[str, Any]] | None, purged: bool = False,
                  earlier: Mapping[str, Any] | None = None) -> NodeEvidence:
    """The evidence for `image` from a node's `status.images` (each `{names: [...], sizeBytes}`; None when it could
    not be read) and `earlier`, the record of the benchmark's last run on this node that got the image there (a
    hit or a pull), if any. After a purge the image is not on the node, whatever a stale list says."""
    try:
        wanted = parse(image)
    except InvalidReference:
        return NodeEvidence(False, (), purged)
    key = normalize(image)
    on_node, digests = False, []
    for entry in node_images or ():
        for name in entry.get("names") or ():
            try:
                ref = parse(name)
            except InvalidReference:
                continue
            if (ref.host, ref.repository) != (wanted.host, wanted.repository):
                continue
            if ref.digest:
                digests.append(ref.digest)
            if normalize(name) == key or (wanted.digest and ref.digest == wanted.digest):
                on_node = True
    pulled_by = None
    if earlier is not None and not purged:
        pulled_by = earlier.get("name")
        digest = _digest((earlier.get("pull") or {}).get("imageID"))
        if digest:
            digests.append(digest)
    return NodeEvidence((on_node or pulled_by is not None) and not purged,
                        () if purged else tuple(sorted(set(digests))), purged, pulled_by)


def arrived(record: Mapping[str, Any]) -> bool:
    """Whether a run got its image onto its node (it was there, or the pull finished)."""
    return (record.get("timeline") or {}).get("cacheObserved") in (HIT, MISS, REVALIDATED)


def _digest(image_id: str | None) -> str | None:
    if not image_id:
        return None
    digest = image_id.rpartition("@")[2] if "@" in image_id else image_id
    return digest if digest.startswith("sha256:") else None


def observed_cache(cache_hit: bool | None, evidence: NodeEvidence | None,
                   image_id: str | None = None) -> tuple[str, dict[str, Any]]:
    """(state, evidence for the record). `cache_hit`: the kubelet's event (True: already present; False: pulled;
    None: no pull result seen). `image_id`: the container's imageID after the pull, when the runtime gave one."""
    record: dict[str, Any] = {"event": "AlreadyPresent" if cache_hit else "Pulled" if cache_hit is False else None}
    if evidence is not None:
        record.update(imageOnNode=evidence.image_on_node, purged=evidence.purged, pulledBy=evidence.pulled_by)
    if cache_hit is None:
        return UNKNOWN, record
    if cache_hit:
        return HIT, record
    if evidence is None:
        record["why"] = "no node evidence was taken before the run: counted as a download"
        return MISS, record
    if evidence.purged:
        record["why"] = "the operator removed the image from the node before the run"
        return MISS, record
    if not evidence.image_on_node:
        record["why"] = "the node did not list the image before the run"
        return MISS, record
    pulled = _digest(image_id)
    if pulled and evidence.digests and pulled not in evidence.digests:
        record["why"] = f"the tag now names {pulled[:19]}..., which the node did not hold"
        return MISS, record
    seen = f"run {evidence.pulled_by} got it onto the node" if evidence.pulled_by else "the node listed the image"
    record["why"] = f"{seen} before the run: the pull re-resolved it and transferred nothing"
    return REVALIDATED, record


def downloaded(record: Mapping[str, Any]) -> bool:
    """Whether a run record's pull downloaded layers (the only pulls that measure throughput)."""
    return (record.get("timeline") or {}).get("cacheObserved") == MISS


def counts_as(observed: str, asked: str | None) -> bool:
    """Whether a run with this observed state counts for a threshold's `cache` (cold: downloads, warm: hits)."""
    return asked is None or OBSERVED_FOR_ASKED.get(asked) == observed
