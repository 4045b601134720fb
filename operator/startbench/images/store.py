"""The record store read by `startbench images sizes`: one JSON file, replaced atomically on each add."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from startbench.images.records import ImageRecord, merge


def default_path() -> Path:
    root = Path(os.environ.get("STARTBENCH_CACHE") or Path.home() / ".cache" / "startbench")
    return root / "images" / "records.json"


def load(path: Path | None = None) -> list[ImageRecord]:
    path = path or default_path()
    if not path.exists():
        return []
    try:
        doc = json.loads(path.read_text())
        return [ImageRecord.from_dict(entry) for entry in doc["images"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is not a startbench image record file ({exc}); move it away to start afresh") from None


def add(record: ImageRecord, path: Path | None = None) -> None:
    """Add (or replace) one record; the file is written whole to a temporary name and renamed."""
    path = path or default_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    records = merge(load(path), record)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".records-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump({"images": [r.to_dict() for r in records]}, f, indent=1)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
