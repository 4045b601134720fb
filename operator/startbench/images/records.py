"""What startbench records about each image it builds and pushes, and the `images sizes` table (pure)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

from startbench.images.manifest import Layer, compression_of


@dataclasses.dataclass(frozen=True)
class ImageRecord:
    repository: str            # e.g. 127.0.0.1:5000/startbench-jax
    tag: str                   # <variant>-<flavour>, e.g. slim-cpu
    framework: str
    variant: str
    flavour: str
    digest: str                # manifest digest the registry serves for the tag
    image_id: str              # the engine's image id (= the manifest's config digest for a docker push)
    media_type: str            # manifest media type
    uncompressed_bytes: int    # the engine's image size (sum of unpacked layers)
    compressed_bytes: int      # sum of the layer blobs in the registry manifest
    config_bytes: int
    layers: tuple[Layer, ...]  # per-layer compressed sizes, from the manifest
    build_s: float
    push_s: float
    base_image: str = ""
    built_at: str = ""         # ISO 8601, UTC

    @property
    def layer_count(self) -> int:
        return len(self.layers)

    @property
    def compression(self) -> str:
        """How the layers are delivered: gzip, zstd, ... or `mixed`."""
        kinds = {compression_of(layer.media_type) for layer in self.layers}
        return kinds.pop() if len(kinds) == 1 else ("mixed" if kinds else "-")

    @property
    def reference(self) -> str:
        return f"{self.repository}:{self.tag}"

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["layers"] = [layer.to_dict() for layer in self.layers]
        out["layer_count"] = self.layer_count
        out["reference"] = self.reference
        return out

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> ImageRecord:
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in doc.items() if k in fields}
        values["layers"] = tuple(
            Layer(digest=l["digest"], size=int(l["compressed_bytes"]), media_type=l.get("media_type", ""))
            for l in doc.get("layers", ())
        )
        return cls(**values)


def merge(existing: Iterable[ImageRecord], new: ImageRecord) -> list[ImageRecord]:
    """Records with `new` replacing any earlier record of the same reference, sorted by reference."""
    kept = [r for r in existing if r.reference != new.reference]
    return sorted(kept + [new], key=lambda r: (r.repository, r.tag))


def human_bytes(n: int) -> str:
    """Decimal units, as registries and the published comparison use them (1 GB = 10^9 bytes)."""
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"


COLUMNS = ("repository", "tag", "uncompressed", "compressed", "layers", "compression")


def table_rows(records: Sequence[ImageRecord]) -> list[tuple[str, ...]]:
    return [(r.repository, r.tag, human_bytes(r.uncompressed_bytes), human_bytes(r.compressed_bytes),
             str(r.layer_count), r.compression) for r in records]


def format_table(records: Sequence[ImageRecord]) -> str:
    """A plain-text table: repository, tag, uncompressed, compressed, layers, compression (sizes right-aligned)."""
    rows = [COLUMNS] + table_rows(records)
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    right = {2, 3, 4, 5}
    lines = []
    for row in rows:
        cells = [cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
