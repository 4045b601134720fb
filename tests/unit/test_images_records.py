"""Image records, the record store and the sizes table."""

from __future__ import annotations

import dataclasses

import json

from hypothesis import given
from hypothesis import strategies as st

from startbench.images import records, store
from startbench.images.manifest import Layer


def _rec(tag="slim-cpu", repo="127.0.0.1:5000/startbench-jax", unc=810_000_000, layers=(48_893_911, 200_000_000)):
    return records.ImageRecord(
        repository=repo, tag=tag, framework="jax", variant=tag.split("-")[0], flavour="cpu",
        digest="sha256:" + "a" * 64, image_id="sha256:" + "b" * 64, media_type="application/x",
        uncompressed_bytes=unc, compressed_bytes=sum(layers), config_bytes=1715,
        layers=tuple(Layer(f"sha256:{i:064x}", s, "gzip") for i, s in enumerate(layers)),
        build_s=12.5, push_s=3.25, base_image="b", built_at="2026-11-24T00:00:00+00:00")


def test_round_trip_through_dict_and_json():
    rec = _rec()
    doc = json.loads(json.dumps(rec.to_dict()))
    assert doc["layer_count"] == 2 and doc["reference"] == "127.0.0.1:5000/startbench-jax:slim-cpu"
    assert records.ImageRecord.from_dict(doc) == rec


def test_store_replaces_a_rebuilt_reference_and_keeps_others(tmp_path):
    path = tmp_path / "r.json"
    store.add(_rec(unc=1), path)
    store.add(_rec(tag="naive-cpu"), path)
    store.add(_rec(unc=2), path)
    got = store.load(path)
    assert [(r.tag, r.uncompressed_bytes) for r in got] == [("naive-cpu", 810_000_000), ("slim-cpu", 2)]
    assert not list(tmp_path.glob(".records-*"))


def test_table_has_the_published_columns():
    table = records.format_table([_rec(), _rec(tag="naive-cpu", unc=2_430_000_000, layers=(957_000_000,))])
    lines = table.splitlines()
    assert lines[0].split() == ["repository", "tag", "uncompressed", "compressed", "layers", "compression"]
    assert lines[1].split() == ["127.0.0.1:5000/startbench-jax", "slim-cpu", "810.00", "MB", "248.89", "MB", "2",
                                "gzip"]
    assert lines[2].split()[2:] == ["2.43", "GB", "957.00", "MB", "1", "gzip"]
    assert len({len(l) for l in lines}) == 1, "columns are aligned"


@given(st.integers(min_value=0, max_value=10**13))
def test_human_bytes_round_trips_within_rounding(n):
    value, unit = records.human_bytes(n).split()
    scale = {"B": 1, "kB": 10**3, "MB": 10**6, "GB": 10**9}[unit]
    assert abs(float(value) * scale - n) <= 0.005 * scale + 0.5
    assert unit == "B" or float(value) >= 1


def test_a_built_images_status_entry_says_how_its_layers_are_delivered():
    from startbench.images.manifest import Layer
    from startbench.images.records import ImageRecord
    from startbench.runtime.imagebuilds import status_entry
    gz, zst = "application/vnd.oci.image.layer.v1.tar+gzip", "application/vnd.oci.image.layer.v1.tar+zstd"
    layers = (Layer("sha256:" + "1" * 64, 10, gz), Layer("sha256:" + "2" * 64, 20, zst), Layer("sha256:" + "3" * 64, 5, gz))
    fields = {f: None for f in ImageRecord.__dataclass_fields__}
    fields.update(repository="r/x", tag="slim-cpu", layers=layers, compressed_bytes=35, uncompressed_bytes=70)
    entry = status_entry(ImageRecord(**fields))
    assert entry["layers"] == 3 and entry["layerMediaTypes"] == [gz, zst]


def test_the_compression_column_names_how_the_layers_are_delivered():
    zst, gz = "application/vnd.oci.image.layer.v1.tar+zstd", "application/vnd.docker.image.rootfs.diff.tar.gzip"
    def rec(*types):
        return dataclasses.replace(_rec(), layers=tuple(Layer(f"sha256:{i:064x}", 1, t) for i, t in enumerate(types)))
    assert (rec(zst, zst).compression, rec(gz).compression, rec(gz, zst).compression, rec().compression) == (
        "zstd", "gzip", "mixed", "-")
