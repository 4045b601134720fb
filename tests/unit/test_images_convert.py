"""Layer re-compression (images/convert.py), without a registry: the content never changes, only its encoding."""

from __future__ import annotations

import gzip
import hashlib
import io
import os

import pytest
import zstandard

from startbench.images.convert import ConvertError, convert, recompress
from startbench.images.manifest import compression_of

TAR = os.urandom(50_000) + b"\0" * 200_000  # some incompressible bytes, and many that compress well


def _diff_id(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_gzip_to_zstd_and_back_keeps_the_uncompressed_layer_and_its_diff_id():
    src = io.BytesIO(gzip.compress(TAR))
    zst = io.BytesIO()
    assert recompress(src, "gzip", "zstd", 3, zst) == _diff_id(TAR)
    assert zstandard.ZstdDecompressor().stream_reader(io.BytesIO(zst.getvalue())).read() == TAR
    back = io.BytesIO()
    assert recompress(io.BytesIO(zst.getvalue()), "zstd", "gzip", 6, back) == _diff_id(TAR)
    assert gzip.decompress(back.getvalue()) == TAR
    assert len(zst.getvalue()) < len(TAR)  # it is compressed


def test_an_uncompressed_layer_is_compressed():
    out = io.BytesIO()
    assert recompress(io.BytesIO(TAR), "none", "zstd", 1, out) == _diff_id(TAR)
    assert zstandard.ZstdDecompressor().stream_reader(io.BytesIO(out.getvalue())).read() == TAR


@pytest.mark.parametrize("media_type, kind", [
    ("application/vnd.docker.image.rootfs.diff.tar.gzip", "gzip"),
    ("application/vnd.oci.image.layer.v1.tar+gzip", "gzip"),
    ("application/vnd.oci.image.layer.v1.tar+zstd", "zstd"),
    ("application/vnd.oci.image.layer.v1.tar", "none"),
])
def test_compression_of_a_layer_media_type(media_type, kind):
    assert compression_of(media_type) == kind


@pytest.mark.parametrize("to, level, words", [
    ("estargz", None, "stargz snapshotter"),
    ("brotli", None, "use one of gzip, zstd, estargz"),
    ("zstd", 23, "zstd levels go from 1 to 22"),
    ("gzip", 0, "gzip levels go from 1 to 9"),
])
def test_what_cannot_be_converted_says_why_before_touching_a_registry(to, level, words):
    with pytest.raises(ConvertError, match=words):
        convert("127.0.0.1:9/x:1", to, "127.0.0.1:9/x:2", level)


def test_the_destination_needs_a_tag():
    with pytest.raises(ConvertError, match="REGISTRY/REPOSITORY:TAG"):
        convert("127.0.0.1:9/x:1", "zstd", "127.0.0.1:9/x@sha256:" + "a" * 64)
