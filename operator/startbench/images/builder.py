"""Build, tag and push a framework image with the docker SDK, then record its sizes from the registry.

build_and_push() is what `startbench images build` and the operator (a Benchmark that asks for images to be
built first) call. It streams the build log and per-layer push progress to `progress`, retries transient
registry errors, and records an ImageRecord only once build, push and manifest read have all succeeded.
Credentials come from the caller (e.g. a Kubernetes Secret, see credentials.from_secret) or the Docker
config file; they are passed to the engine per call and never printed or logged.
"""

from __future__ import annotations

import collections
import datetime
import io
import time
from collections.abc import Callable
from pathlib import Path

from startbench.images import catalog, manifest, store
from startbench.images.context import build_context
from startbench.images.credentials import Credentials, load_docker_config, registry_host
from startbench.images.errors import (BuildFailed, CredentialsRefused, ImageBuildError, PushRefused,
                                      RegistryUnavailable)
from startbench.images.records import ImageRecord
from startbench.images.registry_api import RegistryAPIError, fetch_manifest

Progress = Callable[[str], None]
LOG_TAIL_LINES = 25
PUSH_RETRIES = 3
# Push errors worth another try: the network or the registry had a bad moment.
TRANSIENT = ("connection reset", "connection refused", "broken pipe", "eof", "timeout", "timed out",
             "tls handshake", "temporarily", "503", "502", "504", "500 internal", "429", "too many requests",
             "no such host", "i/o")
# Push errors that another try cannot fix: the registry said no to who we are or what we sent.
REFUSED = ("unauthorized", "authentication required", "no basic auth credentials", "denied", "forbidden",
           "name unknown", "name invalid", "manifest invalid", "blob unknown", "unsupported")


def _quiet(_message: str) -> None:
    pass


def _client(docker_host: str | None):
    import docker

    return docker.DockerClient(base_url=docker_host, timeout=3600) if docker_host else docker.from_env(timeout=3600)


def build(client, spec: catalog.ImageSpec, tag: str, build_args: dict[str, str], ca_bundle: Path | None,
          progress: Progress) -> str:
    """Build spec's Dockerfile, tag it `tag`; return the image id. Raises BuildFailed with the log's tail."""
    import docker

    context, dockerfile = build_context(spec.dockerfile, spec.framework_dir, ca_bundle=ca_bundle,
                                        include_package=spec.framework == "operator")
    tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
    image_id = None
    try:
        stream = client.api.build(fileobj=io.BytesIO(context), custom_context=True,
                                  dockerfile=dockerfile, tag=tag, buildargs=build_args, rm=True, forcerm=True,
                                  decode=True, pull=False)
        for chunk in stream:
            if "stream" in chunk:
                for line in chunk["stream"].splitlines():
                    if line.strip():
                        tail.append(line)
                        progress(f"build: {line}")
            if "aux" in chunk and "ID" in chunk["aux"]:
                image_id = chunk["aux"]["ID"]
            if "error" in chunk:
                tail.append(chunk["error"].strip())
                raise BuildFailed(
                    f"building {spec.dockerfile} ({tag}) failed: {chunk['error'].strip()}\n"
                    f"last lines of the build log:\n" + "\n".join(tail) +
                    "\nfix the Dockerfile or the step above, then build again", list(tail))
    except docker.errors.APIError as exc:
        raise BuildFailed(f"the Docker engine refused to build {spec.dockerfile} ({tag}): {exc.explanation}",
                          list(tail)) from None
    if image_id is None:
        image_id = client.images.get(tag).id
    return image_id


def _classify(message: str) -> str:
    low = message.lower()
    if any(word in low for word in REFUSED):
        return "refused"
    if any(word in low for word in TRANSIENT):
        return "transient"
    return "other"


def push(client, reference: str, credentials: Credentials | None, progress: Progress,
         retries: int | None = None, backoff_s: float = 1.0) -> str:
    """Push `reference` with per-layer progress; return the pushed manifest digest."""
    retries = PUSH_RETRIES if retries is None else retries
    repository, _, tag = reference.rpartition(":")
    auth = credentials.auth_config() if credentials else None
    attempt = 0
    while True:
        attempt += 1
        error, digest, last = None, None, {}
        for chunk in client.api.push(repository, tag=tag, stream=True, decode=True, auth_config=auth):
            if "error" in chunk:
                error = (chunk.get("errorDetail") or {}).get("message") or chunk["error"]
                break
            if chunk.get("aux", {}).get("Digest"):
                digest = chunk["aux"]["Digest"]
            layer, status = chunk.get("id"), chunk.get("status", "")
            if layer and status:
                detail = chunk.get("progressDetail") or {}
                # One line per layer per state change, and every quarter of an upload.
                quarter = int(4 * detail["current"] / detail["total"]) if detail.get("total") else -1
                if last.get(layer) != (status, quarter):
                    last[layer] = (status, quarter)
                    size = f" {detail['current'] / 1e6:.1f}/{detail['total'] / 1e6:.1f} MB" if quarter >= 0 else ""
                    progress(f"push {layer}: {status}{size}")
        if error is None:
            if digest is None:
                raise PushRefused(f"pushing {reference} ended without a digest from the engine; push it again")
            return digest
        kind = _classify(error)
        who = f" as {credentials}" if credentials else " without credentials"
        if kind == "refused":
            low = error.lower()
            if credentials is None and ("auth" in low or "unauthorized" in low):
                raise PushRefused(
                    f"{registry_host(reference)} refused the push of {reference}{who}: {error}; "
                    "it needs credentials: `docker login` to it, or give a Kubernetes Secret "
                    "(kubernetes.io/dockerconfigjson) for it"
                )
            raise PushRefused(f"{registry_host(reference)} refused the push of {reference}{who}: {error}; "
                              "check the repository name and that this user may push to it")
        if kind == "transient" and attempt <= retries:
            wait = backoff_s * 2 ** (attempt - 1)
            progress(f"push: transient error ({error}); retry {attempt}/{retries} in {wait:.0f}s")
            time.sleep(wait)
            continue
        raise RegistryUnavailable(f"pushing {reference} failed after {attempt} attempt(s): {error}; "
                                  "check that the registry runs and is reachable from the Docker engine")


def _check_credentials(client, credentials: Credentials) -> None:
    import docker

    try:
        client.api.login(username=credentials.username, password=credentials.password,
                         registry=credentials.registry, reauth=True)
    except docker.errors.APIError as exc:
        explanation = str(exc.explanation or "")
        if credentials.password and credentials.password in explanation:
            explanation = explanation.replace(credentials.password, "***")
        raise CredentialsRefused(
            f"{credentials.registry} refused the credentials of {credentials}: {explanation}; "
            "fix the user or password there"
        ) from None


def build_and_push(framework: str, variant: str, flavour: str = "cpu", registry: str = "127.0.0.1:5000",
                   credentials: Credentials | None = None, progress: Progress | None = None, *,
                   base_image: str | None = None, ca_bundle: Path | str | None = None,
                   docker_host: str | None = None, dockerfiles: Path | None = None,
                   record: bool = True, store_path: Path | None = None) -> ImageRecord:
    """Build dockerfiles/<framework>/<variant>.Dockerfile for `flavour`, push it to `registry`
    (host[:port][/namespace]) as <registry>/startbench-<framework>:<variant>-<flavour>, and return its record.

    credentials: None looks in the Docker config file. base_image: the BASE_IMAGE build argument (default: the
    Dockerfile's own). ca_bundle: a CA file for the pip step only (see dockerfiles/build-ca/README.md).
    record: add the record to the store that `startbench images sizes` reads, once everything succeeded.
    """
    progress = progress or _quiet
    spec = catalog.resolve(framework, variant, flavour, dockerfiles)
    reference = catalog.reference(registry, framework, variant, flavour)
    host = registry_host(reference)
    if credentials is None:
        credentials = load_docker_config(host)
    if ca_bundle is not None and not Path(ca_bundle).is_file():
        raise ImageBuildError(f"--ca-bundle {ca_bundle} is not a file; give the path of a PEM bundle or leave it out")
    build_args = {"FLAVOUR": flavour}
    if base_image:
        build_args["BASE_IMAGE"] = base_image
    client = _client(docker_host)
    try:
        if credentials is not None:
            _check_credentials(client, credentials)
        progress(f"building {reference} from {spec.dockerfile}")
        t0 = time.monotonic()
        image_id = build(client, spec, reference, build_args, Path(ca_bundle) if ca_bundle else None, progress)
        build_s = time.monotonic() - t0
        image = client.images.get(image_id)
        progress(f"built {reference} ({image.attrs['Size'] / 1e6:.0f} MB) in {build_s:.0f}s; pushing")
        t0 = time.monotonic()
        digest = push(client, reference, credentials, progress)
        push_s = time.monotonic() - t0
    finally:
        client.close()
    repository, _, tag = reference.rpartition(":")
    path = repository.split("/", 1)[1]
    try:
        raw, media_type, served = fetch_manifest(host, path, tag, credentials)
    except RegistryAPIError as exc:
        raise RegistryUnavailable(f"pushed {reference}, but reading its manifest back failed: {exc}") from None
    if served != digest:
        raise RegistryUnavailable(f"pushed {reference} as {digest} but the registry serves {served} for the tag; "
                                  "another push raced this one: build again")
    sizes = manifest.sizes(raw, media_type)
    rec = ImageRecord(
        repository=repository, tag=tag, framework=framework, variant=variant, flavour=flavour, digest=digest,
        image_id=image_id, media_type=sizes.media_type, uncompressed_bytes=int(image.attrs["Size"]),
        compressed_bytes=sizes.compressed_bytes, config_bytes=sizes.config_size, layers=sizes.layers,
        build_s=round(build_s, 3), push_s=round(push_s, 3), base_image=base_image or spec.default_base,
        built_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )
    if record:
        store.add(rec, store_path)
    progress(f"pushed {reference}@{digest}: {sizes.compressed_bytes / 1e6:.0f} MB compressed, "
             f"{sizes.layer_count} layers")
    return rec
