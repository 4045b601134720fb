"""Run records: one JSON object per ended run (status.run_record makes them), kept in ConfigMaps owned by the
Benchmark, `{benchmark}-records-{i}`, each holding a JSON array of at most DEFAULT_CHUNK_BYTES. Pure: this module
chunks, reads back and makes the ConfigMaps; ClusterIO writes and reads them.

`RecordBook` is what the reconciler holds: the records so far and the chunks last written, so that a step that
ends many runs writes the ConfigMaps that changed once, at one point of the step.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from startbench.core.contracts import ANNOTATION_CHUNK, LABEL_BENCHMARK, LABEL_RECORDS, MANAGED_BY, RECORDS_KEY
from startbench.core.manifests import BenchmarkRef

DEFAULT_CHUNK_BYTES = 900_000  # a ConfigMap holds at most 1 MiB, metadata included


def _record_key(r: Mapping[str, Any]) -> tuple:
    return (r.get("finishedMs") or 0, r.get("order", 0), r["name"])


def chunk_records(records: Iterable[Mapping[str, Any]], max_bytes: int = DEFAULT_CHUNK_BYTES) -> list[str]:
    """Records as JSON arrays of at most `max_bytes` UTF-8 bytes each, in finishing order.

    A later record of the same run replaces an earlier one. Finishing order keeps earlier chunks unchanged
    as runs end, so usually only the last ConfigMap needs an update. Raises ValueError for a record larger
    than `max_bytes` on its own.
    """
    latest: dict[str, Mapping[str, Any]] = {}
    for r in records:
        latest[r["name"]] = r
    return _chunk_texts(((r, _record_text(r)) for r in sorted(latest.values(), key=_record_key)), max_bytes)


def _record_text(r: Mapping[str, Any]) -> tuple[str, int]:
    text = json.dumps(r, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return text, len(text.encode("utf-8"))


def _chunk_texts(texts: Iterable[tuple[Mapping[str, Any], tuple[str, int]]], max_bytes: int) -> list[str]:
    """Records already serialised (record, (text, UTF-8 bytes)), in finishing order, as chunks."""
    chunks: list[str] = []
    current: list[str] = []
    size = 2  # the brackets
    for r, (text, n) in texts:
        if n + 2 > max_bytes:
            raise ValueError(f"run record {r['name']!r} is {n} bytes, more than a chunk of {max_bytes} bytes")
        if current and size + 1 + n > max_bytes:
            chunks.append("[" + ",".join(current) + "]")
            current, size = [], 2
        size += n + (1 if current else 0)
        current.append(text)
    if current:
        chunks.append("[" + ",".join(current) + "]")
    return chunks


def read_chunks(texts: Iterable[str]) -> list[dict[str, Any]]:
    """Records back from chunks (any order, duplicates allowed: the one that finished last wins), sorted by
    plan order. Chunks that do not parse are skipped."""
    latest: dict[str, dict[str, Any]] = {}
    for text in texts:
        try:
            items = json.loads(text)
        except (TypeError, json.JSONDecodeError):
            continue
        for r in items if isinstance(items, list) else ():
            if isinstance(r, dict) and isinstance(r.get("name"), str):
                old = latest.get(r["name"])
                if old is None or _record_key(r) >= _record_key(old):
                    latest[r["name"]] = r
    return sorted(latest.values(), key=lambda r: (r.get("order", 0), r["name"]))


def records_configmap_name(benchmark: str, index: int) -> str:
    """Name of the index-th records ConfigMap: `{benchmark}-records-{index}` (benchmark names are <= 253 chars;
    the suffix is short enough that a valid benchmark name gives a valid ConfigMap name up to index 9999)."""
    suffix = f"-records-{index}"
    return benchmark[: 253 - len(suffix)] + suffix


def records_configmap(benchmark: BenchmarkRef, index: int, chunk: str) -> dict[str, Any]:
    """A ConfigMap holding one chunk of run records (a JSON array, see chunk_records)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": records_configmap_name(benchmark.name, index),
            "namespace": benchmark.namespace,
            "labels": {MANAGED_BY[0]: MANAGED_BY[1], LABEL_BENCHMARK: benchmark.name, LABEL_RECORDS: "true"},
            "annotations": {ANNOTATION_CHUNK: str(index)},
            "ownerReferences": [benchmark.owner_reference()],
        },
        "data": {RECORDS_KEY: chunk},
    }


class RecordBook:
    """A benchmark's run records by run name, and the chunks as last written. `add` records in memory;
    `unwritten()` says whether `chunks()` differs from what was written; after writing, `written(chunks)`."""

    def __init__(self, written_chunks: Sequence[str] = ()):
        self.written_chunks: list[str] = list(written_chunks)
        self.records: dict[str, dict[str, Any]] = {r["name"]: r for r in read_chunks(self.written_chunks)}
        # Each record's text, made once: a step that ends a few runs of thousands re-chunks them all, and
        # serialising every record again on every write was most of a large benchmark's record-keeping.
        self._texts: dict[str, tuple[str, int]] = {}
        self._order: list[dict[str, Any]] | None = None  # records in finishing order, while none is added
        self._dirty = False
        self.version = 0  # counts adds: what follows from the records is the same while it is

    def __contains__(self, name: str) -> bool:
        return name in self.records

    def __len__(self) -> int:
        return len(self.records)

    def get(self, name: str) -> dict[str, Any] | None:
        return self.records.get(name)

    def values(self) -> list[dict[str, Any]]:
        return list(self.records.values())

    def add(self, record: dict[str, Any]) -> None:
        self.records[record["name"]] = record
        self._texts.pop(record["name"], None)
        self._order = None
        self._dirty = True
        self.version += 1

    def unwritten(self) -> bool:
        return self._dirty

    def chunks(self, max_bytes: int = DEFAULT_CHUNK_BYTES) -> list[str]:
        """chunk_records(self.records), with each record serialised once. A record is not changed after `add`
        (a later record of a run is added anew)."""
        if self._order is None:
            self._order = sorted(self.records.values(), key=_record_key)
        texts = self._texts
        for r in self._order:
            if r["name"] not in texts:
                texts[r["name"]] = _record_text(r)
        return _chunk_texts(((r, texts[r["name"]]) for r in self._order), max_bytes)

    def written(self, chunks: Sequence[str]) -> None:
        self.written_chunks = list(chunks)
        self._dirty = False
