"""The local cluster's Docker-in-Docker image, for the Helm chart's builder (`builder.enabled`), since this machine
cannot pull `docker:27-dind` from Docker Hub: Debian's Docker engine (docker.io, with iptables) on the local base
image, whose entry point is `dockerd` itself, so the chart's builder arguments (`--host=tcp://127.0.0.1:2375`,
`--insecure-registry=...`) reach it as they reach the official image's.

`ensure()` builds it once through the machine's Docker engine (apt downloads from Debian's mirror) and pushes it
as `127.0.0.1:5000/startbench/dind:bookworm`; it skips both when the registry already serves it. Nothing starts
it but a chart install that names it (`--set builder.image.repository=127.0.0.1:5000/startbench/dind
--set builder.image.tag=bookworm`).
"""

from __future__ import annotations

import io
import tarfile
import time

from startbench.localcluster import baseimage

REFERENCE = f"{baseimage.REGISTRY}/startbench/dind:bookworm"
REPOSITORY, _, TAG = REFERENCE.rpartition(":")
DOCKERFILE = f"""# The local cluster's Docker-in-Docker (operator/startbench/localcluster/dindimage.py).
FROM {baseimage.registry_ref()}
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends docker.io iptables ca-certificates \\
 && rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/*
VOLUME /var/lib/docker
ENTRYPOINT ["dockerd"]
"""


class DindImageError(RuntimeError):
    """The dind image could not be built or pushed; the message says what to change."""


def ensure(docker_host: str | None = None, progress=print) -> str:
    """Build (once) and push (once) the dind image; return its registry reference."""
    if baseimage._in_registry(REFERENCE):
        return REFERENCE
    baseimage.ensure(docker_host=docker_host, progress=progress)
    import docker

    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        data = DOCKERFILE.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    client = baseimage._client(docker_host)
    t0 = time.monotonic()
    progress(f"dind image: building {REFERENCE} (Debian's docker.io on the base image)")
    try:
        try:
            client.images.build(fileobj=context, custom_context=True, tag=REFERENCE, rm=True, forcerm=True)
        except docker.errors.BuildError as err:
            tail = "\n".join(str(c.get("stream", c.get("error", ""))).rstrip() for c in list(err.build_log)[-15:])
            raise DindImageError(f"building {REFERENCE} failed: {err.msg}\n{tail}\ncheck that Debian's mirror is "
                                 "reachable from the Docker engine's containers") from None
        progress(f"dind image: built in {time.monotonic() - t0:.0f}s; pushing")
        for line in client.api.push(REPOSITORY, tag=TAG, stream=True, decode=True):
            if "error" in line:
                raise DindImageError(f"pushing {REFERENCE} failed: {line['error']}; is the local registry up?")
    finally:
        client.close()
    if not baseimage._in_registry(REFERENCE):
        raise DindImageError(f"pushed {REFERENCE} but the registry does not serve it; see the registry log")
    return REFERENCE
