"""`startbench images convert` against the real local registry: the base image re-delivered as zstd (and back)."""

from __future__ import annotations

import hashlib
import io
import json
import uuid
import zlib

import requests
import zstandard

from startbench.cli import main as cli
from startbench.images import manifest


def _get(registry: str, repository: str, reference: str) -> dict:
    resp = requests.get(f"http://{registry}/v2/{repository}/manifests/{reference}",
                        headers={"Accept": manifest.ACCEPT}, timeout=30)
    resp.raise_for_status()
    return resp.json()


def _blob(registry: str, repository: str, digest: str) -> bytes:
    resp = requests.get(f"http://{registry}/v2/{repository}/blobs/{digest}", timeout=60)
    resp.raise_for_status()
    assert "sha256:" + hashlib.sha256(resp.content).hexdigest() == digest, "the registry's blob is not its digest"
    return resp.content


def test_convert_to_zstd_keeps_the_image_and_changes_only_its_delivery(registries, base_image, capsys):
    registry = registries["noauth"]
    repository = base_image.split("/", 1)[1].split(":")[0]
    tag = f"zstd-{uuid.uuid4().hex[:8]}"
    dest = f"{registry}/{repository}:{tag}"
    assert cli.main(["images", "convert", base_image, "--to", "zstd", "--push", dest, "--format", "json"]) == 0
    done = json.loads(capsys.readouterr().out)
    source = _get(registry, repository, base_image.rsplit(":", 1)[1])
    converted = _get(registry, repository, tag)
    assert converted["mediaType"] == manifest.OCI_MANIFEST and converted["config"]["digest"] == source["config"]["digest"]
    assert {layer["mediaType"] for layer in converted["layers"]} == {"application/vnd.oci.image.layer.v1.tar+zstd"}
    by_digest = requests.get(f"http://{registry}/v2/{repository}/manifests/{done['digest']}",
                             headers={"Accept": manifest.OCI_MANIFEST}, timeout=30)
    assert by_digest.status_code == 200 and by_digest.json() == converted
    # The same content: each zstd layer unpacks to the tar whose digest the (unchanged) config names.
    diff_ids = json.loads(_blob(registry, repository, source["config"]["digest"]))["rootfs"]["diff_ids"]
    for layer, diff_id in zip(converted["layers"], diff_ids, strict=True):
        tar = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(_blob(registry, repository, layer["digest"]))).read()
        assert "sha256:" + hashlib.sha256(tar).hexdigest() == diff_id
    assert done["compressed_bytes"] == sum(layer["size"] for layer in converted["layers"])
    assert done["source_bytes"] == sum(layer["size"] for layer in source["layers"])

    # And back to gzip: the same diff_ids again.
    back = f"{registry}/{repository}:{tag}-gzip"
    assert cli.main(["images", "convert", dest, "--to", "gzip", "--push", back]) == 0
    assert "gzip level 6" in capsys.readouterr().out
    regz = _get(registry, repository, f"{tag}-gzip")
    for layer, diff_id in zip(regz["layers"], diff_ids, strict=True):
        tar = zlib.decompress(_blob(registry, repository, layer["digest"]), 16 + zlib.MAX_WBITS)
        assert "sha256:" + hashlib.sha256(tar).hexdigest() == diff_id


def test_a_missing_source_is_one_clear_error(registries, capsys):
    registry = registries["noauth"]
    assert cli.main(["images", "convert", f"{registry}/startbench/nothing:v0", "--to", "zstd",
                     "--push", f"{registry}/startbench/nothing:zstd"]) == 1
    assert "HTTP 404" in capsys.readouterr().err
