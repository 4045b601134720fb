"""Registry manifest sizes, on documents captured from the local registry (tests/unit/data/images_manifests/).

docker-v2: `docker push` of a three-layer image; oci-manifest: the same blobs as an OCI manifest; oci-index
and docker-list: indexes naming both. Each .meta.json holds what the registry said next to the document
(Content-Type, Docker-Content-Digest, each layer blob's Content-Length) and what the engine said (image id,
layer count): independent sources the parser's numbers are checked against.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from startbench.images import manifest as m

DATA = Path(__file__).parent / "data" / "images_manifests"


def _doc(name: str) -> tuple[bytes, dict]:
    return (DATA / f"{name}.json").read_bytes(), json.loads((DATA / f"{name}.meta.json").read_text())


@pytest.mark.parametrize("name", ["docker-v2", "oci-manifest", "oci-index", "docker-list"])
def test_digest_matches_the_registry(name):
    raw, meta = _doc(name)
    assert m.digest_of(raw) == meta["digest"]
    assert m.media_type_of(m.load(raw), meta["content_type"]) == meta["content_type"]


@pytest.mark.parametrize("name", ["docker-v2", "oci-manifest"])
def test_manifest_sizes_match_blob_lengths_and_engine(name):
    raw, meta = _doc(name)
    sizes = m.sizes(raw, meta["content_type"])
    assert sizes.layer_count == meta["engine_rootfs_layers"]
    assert sizes.config_digest == meta["engine_image_id"]
    assert [l.digest for l in sizes.layers] == list(meta["blob_content_length"])
    assert [l.size for l in sizes.layers] == list(meta["blob_content_length"].values())
    assert sizes.compressed_bytes == sum(meta["blob_content_length"].values())
    assert sizes.media_type == meta["content_type"]


def test_docker_and_oci_manifests_of_the_same_blobs_agree():
    docker_raw, _ = _doc("docker-v2")
    oci_raw, _ = _doc("oci-manifest")
    a, b = m.sizes(docker_raw), m.sizes(oci_raw)
    assert a.media_type != b.media_type
    assert a.compressed_bytes == b.compressed_bytes and a.layer_count == b.layer_count


@pytest.mark.parametrize("name", ["oci-index", "docker-list"])
def test_index_is_not_sizes_but_selects_a_platform(name):
    raw, meta = _doc(name)
    assert m.is_index(m.load(raw), meta["content_type"])
    with pytest.raises(m.ManifestError, match="select_platform"):
        m.sizes(raw, meta["content_type"])
    amd64 = m.select_platform(raw, "linux", "amd64")
    arm64 = m.select_platform(raw, "linux", "arm64", variant="v8")
    assert (amd64["architecture"], amd64["variant"]) == ("amd64", "")
    assert (arm64["architecture"], arm64["variant"]) == ("arm64", "v8")
    assert len(m.platforms(raw, meta["content_type"])) == len(json.loads(raw)["manifests"])
    with pytest.raises(m.ManifestError, match="linux/amd64"):
        m.select_platform(raw, "linux", "s390x")


def test_index_entry_points_at_the_captured_manifest():
    index_raw, _ = _doc("oci-index")
    oci_raw, oci_meta = _doc("oci-manifest")
    entry = m.select_platform(index_raw, "linux", "amd64")
    assert entry["digest"] == oci_meta["digest"] and entry["size"] == len(oci_raw)


def test_oci_manifest_without_media_type_is_inferred():
    doc = json.loads(_doc("oci-manifest")[0])
    del doc["mediaType"]
    assert m.sizes(doc).media_type == m.OCI_MANIFEST
    index = json.loads(_doc("oci-index")[0])
    del index["mediaType"]
    assert m.is_index(index)


def test_schema1_and_garbage_are_refused_with_a_reason():
    with pytest.raises(m.ManifestError, match="schemaVersion"):
        m.sizes({"schemaVersion": 1, "fsLayers": []})
    with pytest.raises(m.ManifestError, match="not JSON"):
        m.sizes(b"<html>")
    doc = json.loads(_doc("docker-v2")[0])
    doc["layers"][1]["size"] = "146"
    with pytest.raises(m.ManifestError, match=r"layers\[1\]\.size"):
        m.sizes(doc)
    doc = json.loads(_doc("docker-v2")[0])
    doc["layers"][0]["digest"] = "abc"
    with pytest.raises(m.ManifestError, match=r"layers\[0\]\.digest"):
        m.sizes(doc)


_descriptor = st.fixed_dictionaries({
    "mediaType": st.sampled_from(["application/vnd.oci.image.layer.v1.tar+gzip",
                                  "application/vnd.docker.image.rootfs.diff.tar.gzip"]),
    "digest": st.text("0123456789abcdef", min_size=64, max_size=64).map(lambda h: "sha256:" + h),
    "size": st.integers(min_value=0, max_value=2**40),
})


@given(st.lists(_descriptor, max_size=40), st.sampled_from([m.DOCKER_MANIFEST, m.OCI_MANIFEST]))
def test_compressed_size_is_the_sum_of_layer_sizes(layers, media_type):
    doc = {"schemaVersion": 2, "mediaType": media_type,
           "config": {"mediaType": "x", "digest": "sha256:" + "0" * 64, "size": 7}, "layers": layers}
    sizes = m.sizes(json.dumps(doc))
    assert sizes.layer_count == len(layers)
    assert sizes.compressed_bytes == sum(l["size"] for l in layers)
    assert [l.to_dict()["compressed_bytes"] for l in sizes.layers] == [l["size"] for l in layers]


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                    max_leaves=12))
def test_malformed_documents_raise_manifest_error_only(doc):
    try:
        m.sizes(json.dumps(doc))
    except m.ManifestError:
        pass
