"""Image variants from one image: the same content, delivered another way. `convert(SRC, to, DEST)` reads SRC's
manifest and layers from its registry, re-compresses every layer (gzip <-> zstd), and pushes an OCI image to DEST.

The uncompressed layers do not change, so the image config (its rootfs diff_ids, its entry point) is pushed as it
is: the converted image runs exactly what the source ran, and only its download and decompression differ. zstd
layers decompress several times faster than gzip on the CPU, which is what bounds a pull on most nodes
(docs/delivery.md). Containerd reads zstd layers since 1.5.

eStargz (lazy pulling) needs a converter that writes the stargz table of contents and a node that runs the
stargz snapshotter; neither is available here yet, so `--to estargz` says so instead of writing something else.

I/O over the Distribution HTTP API with `requests` (the registry_api module's auth), layers streamed through
temporary files, so an image larger than memory converts.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import shutil
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO

import requests

from startbench.core.reference import InvalidReference, parse
from startbench.images import manifest
from startbench.images.manifest import compression_of
from startbench.images.credentials import Credentials
from startbench.images.registry_api import RegistryAPIError, _challenge, base_url, fetch_manifest

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_TYPES = {
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}
DOCKER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
TARGETS = ("gzip", "zstd", "estargz")
DEFAULT_LEVEL = {"gzip": 6, "zstd": 3}
CHUNK = 1 << 20
Progress = Callable[[str], None]


class ConvertError(RuntimeError):
    """The conversion cannot be done; the message says why and what to change."""


@dataclasses.dataclass(frozen=True)
class ConvertedLayer:
    source_digest: str
    source_media_type: str
    source_bytes: int
    digest: str
    media_type: str
    bytes: int


@dataclasses.dataclass(frozen=True)
class Converted:
    reference: str           # DEST as pushed
    digest: str              # the new manifest's digest
    compression: str
    level: int
    layers: tuple[ConvertedLayer, ...]

    @property
    def source_bytes(self) -> int:
        return sum(layer.source_bytes for layer in self.layers)

    @property
    def compressed_bytes(self) -> int:
        return sum(layer.bytes for layer in self.layers)

    def to_dict(self) -> dict:
        return {"reference": self.reference, "digest": self.digest, "compression": self.compression,
                "level": self.level, "source_bytes": self.source_bytes, "compressed_bytes": self.compressed_bytes,
                "layers": [dataclasses.asdict(layer) for layer in self.layers]}


# --- streams (pure apart from temporary files) -----------------------------------------------------------------

def _decompressor(compression: str):
    if compression == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if compression == "zstd":
        import zstandard
        return zstandard.ZstdDecompressor().decompressobj()
    if compression == "none":
        return None
    raise ConvertError(f"cannot read a layer compressed with {compression}")


def recompress(source: IO[bytes], source_compression: str, target: str, level: int, out: IO[bytes]) -> str:
    """Write `source` (compressed with `source_compression`) to `out` compressed with `target`; returns the
    sha256 of the uncompressed tar (the layer's diff_id), so a caller can check the content did not change."""
    diff_id = hashlib.sha256()
    decompress = _decompressor(source_compression)
    if target == "zstd":
        import zstandard
        writer = zstandard.ZstdCompressor(level=level).stream_writer(out, closefd=False)
    elif target == "gzip":
        writer = gzip.GzipFile(fileobj=out, mode="wb", compresslevel=level, mtime=0)
    else:
        raise ConvertError(f"cannot write {target} layers")
    with writer:
        while chunk := source.read(CHUNK):
            data = decompress.decompress(chunk) if decompress is not None else chunk
            diff_id.update(data)
            writer.write(data)
        if decompress is not None and hasattr(decompress, "flush"):
            rest = decompress.flush()
            if rest:
                diff_id.update(rest)
                writer.write(rest)
    return "sha256:" + diff_id.hexdigest()


def _file_digest(path: Path) -> tuple[str, int]:
    h, n = hashlib.sha256(), 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            n += len(chunk)
    return "sha256:" + h.hexdigest(), n


# --- the registry ----------------------------------------------------------------------------------------------

class _Registry:
    """One registry session with the auth its challenge asks for (Basic, or a Bearer token for `scope`)."""

    def __init__(self, registry: str, credentials: Credentials | None, scope: str):
        self.registry, self.base, self.credentials, self.scope = registry, base_url(registry), credentials, scope
        self.session = requests.Session()

    def request(self, method: str, url: str, what: str, ok=(200,), **kwargs) -> requests.Response:
        url = url if url.startswith("http") else self.base + url
        try:
            resp = self.session.request(method, url, timeout=600, **kwargs)
            if resp.status_code == 401 and not kwargs.get("data"):
                self._authorize(resp)
                resp = self.session.request(method, url, timeout=600, **kwargs)
        except requests.RequestException as exc:
            raise RegistryAPIError(f"cannot reach {self.registry} for {what}: {exc.__class__.__name__}") from None
        if resp.status_code == 401:
            raise RegistryAPIError(f"{self.registry} refused {what} without valid credentials (HTTP 401); pass "
                                   "credentials that may push there")
        if resp.status_code not in ok:
            raise RegistryAPIError(f"{self.registry} answered HTTP {resp.status_code} for {what}: {resp.text[:300]}")
        return resp

    def _authorize(self, resp: requests.Response) -> None:
        scheme, params = _challenge(resp.headers.get("WWW-Authenticate", ""))
        auth = (self.credentials.username, self.credentials.password) if self.credentials else None
        if scheme == "basic" and auth:
            self.session.auth = auth
        elif scheme == "bearer" and params.get("realm"):
            query = {"service": params.get("service", ""), "scope": self.scope}
            token = self.session.get(params["realm"], params=query, auth=auth, timeout=60)
            if token.status_code == 200:
                body = token.json()
                self.session.headers["Authorization"] = f"Bearer {body.get('token') or body.get('access_token')}"

    def blob_exists(self, repository: str, digest: str) -> bool:
        resp = self.request("HEAD", f"/v2/{repository}/blobs/{digest}", f"blob {digest}", ok=(200, 404))
        return resp.status_code == 200

    def download(self, repository: str, digest: str, to: IO[bytes]) -> None:
        resp = self.request("GET", f"/v2/{repository}/blobs/{digest}", f"blob {digest}", stream=True)
        for chunk in resp.iter_content(CHUNK):
            to.write(chunk)

    def upload(self, repository: str, digest: str, path: Path) -> None:
        if self.blob_exists(repository, digest):
            return
        start = self.request("POST", f"/v2/{repository}/blobs/uploads/", f"an upload to {repository}", ok=(202,))
        location = start.headers["Location"]
        sep = "&" if "?" in location else "?"
        with path.open("rb") as f:
            self.request("PUT", f"{location}{sep}digest={digest}", f"blob {digest} to {repository}", ok=(201,),
                         data=f, headers={"Content-Type": "application/octet-stream"})

    def put_manifest(self, repository: str, tag: str, raw: bytes, media_type: str) -> str:
        resp = self.request("PUT", f"/v2/{repository}/manifests/{tag}", f"manifest {repository}:{tag}", ok=(201,),
                            data=raw, headers={"Content-Type": media_type})
        return resp.headers.get("Docker-Content-Digest") or manifest.digest_of(raw)


def convert(source: str, to: str, dest: str, level: int | None = None, credentials: Credentials | None = None,
            progress: Progress = lambda _: None, workdir: Path | None = None) -> Converted:
    """Push to `dest` the image `source` with every layer compressed as `to`; see the module docstring."""
    if to not in TARGETS:
        raise ConvertError(f"--to {to!r}: use one of {', '.join(TARGETS)}")
    if to == "estargz":
        raise ConvertError("eStargz needs the stargz converter and, on the nodes, the stargz snapshotter; neither "
                           "is built here yet (docs/delivery.md): use --to zstd or gzip")
    level = DEFAULT_LEVEL[to] if level is None else level
    limits = {"zstd": (1, 22), "gzip": (1, 9)}[to]
    if not limits[0] <= level <= limits[1]:
        raise ConvertError(f"--level {level}: {to} levels go from {limits[0]} to {limits[1]}")
    try:
        src, dst = parse(source), parse(dest)
    except InvalidReference as err:
        raise ConvertError(str(err)) from None
    if dst.digest or not dst.tag:
        raise ConvertError(f"{dest!r}: give the destination as REGISTRY/REPOSITORY:TAG")
    raw, _, _ = fetch_manifest(src.api_host, src.repository, src.reference, credentials)
    doc = json.loads(raw)
    reader = _Registry(src.api_host, credentials, f"repository:{src.repository}:pull")
    writer = _Registry(dst.api_host, credentials, f"repository:{dst.repository}:pull,push")
    config = doc["config"]
    diff_ids = _config_diff_ids(reader, src.repository, config["digest"])
    layers: list[ConvertedLayer] = []
    new_layers: list[dict] = []
    with tempfile.TemporaryDirectory(dir=workdir, prefix="startbench-convert-") as tmp:
        tmpdir = Path(tmp)
        config_path = tmpdir / "config"
        with config_path.open("wb") as f:
            reader.download(src.repository, config["digest"], f)
        writer.upload(dst.repository, config["digest"], config_path)
        for i, layer in enumerate(doc["layers"]):
            have = compression_of(layer["mediaType"])
            progress(f"layer {i + 1}/{len(doc['layers'])}: {layer['size']} bytes {have} -> {to}")
            blob, out = tmpdir / f"{i}.src", tmpdir / f"{i}.out"
            with blob.open("wb") as f:
                reader.download(src.repository, layer["digest"], f)
            if have == to:
                shutil.copyfile(blob, out)
                diff_id = None
            else:
                with blob.open("rb") as f_in, out.open("wb") as f_out:
                    diff_id = recompress(f_in, have, to, level, f_out)
                if i < len(diff_ids) and diff_id != diff_ids[i]:
                    raise ConvertError(f"layer {i} of {source} changed while converting ({diff_id} is not the "
                                       f"config's diff_id {diff_ids[i]}): the converted image would not run")
            digest, size = _file_digest(out)
            writer.upload(dst.repository, digest, out)
            blob.unlink()
            out.unlink()
            media = LAYER_TYPES[to] if have != to else layer["mediaType"]
            new_layers.append({"mediaType": media, "digest": digest, "size": size})
            layers.append(ConvertedLayer(layer["digest"], layer["mediaType"], layer["size"], digest, media, size))
    new_manifest = {"schemaVersion": 2, "mediaType": manifest.OCI_MANIFEST,
                    "config": {"mediaType": OCI_CONFIG, "digest": config["digest"], "size": config["size"]},
                    "layers": new_layers}
    if doc.get("annotations"):
        new_manifest["annotations"] = doc["annotations"]
    new_raw = json.dumps(new_manifest, separators=(",", ":")).encode()
    digest = writer.put_manifest(dst.repository, dst.tag, new_raw, manifest.OCI_MANIFEST)
    progress(f"pushed {dest} ({digest}): {sum(x.bytes for x in layers)} bytes in {len(layers)} {to} layers")
    return Converted(dest, digest, to, level, tuple(layers))


def _config_diff_ids(reader: _Registry, repository: str, digest: str) -> list[str]:
    resp = reader.request("GET", f"/v2/{repository}/blobs/{digest}", f"config {digest}")
    try:
        return list(json.loads(resp.content)["rootfs"]["diff_ids"])
    except (ValueError, KeyError, TypeError):
        return []
