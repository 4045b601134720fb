"""The local base image: Debian bookworm (minbase + python3, python3-venv, ca-certificates), built offline
from Debian's apt repositories with debootstrap, since this machine cannot reach Docker Hub.

`ensure()` bootstraps into a temporary directory under the cache, imports the tree with the docker SDK
(what `tar -C dir -c . | docker import - TAG` does), and pushes it to the no-auth local registry as
`127.0.0.1:5000/startbench/base:bookworm` so cluster nodes and builds can pull it. It skips every step
already done: an existing image is not rebuilt, a manifest already in the registry is not pushed again.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from startbench.localcluster.docker_engine import cache_dir

DEFAULT_TAG = "startbench/base:bookworm"
REGISTRY = "127.0.0.1:5000"
SUITE = "bookworm"
PACKAGES = ("python3", "python3-venv", "ca-certificates")
# A general-purpose base like the public python:3.11 image (buildpack-deps: compilers, headers, VCS, curl):
# what the naive framework images are built on in bench/images_sizes.py.
FULL_TAG = "startbench/base-full:bookworm"
FULL_PACKAGES = PACKAGES + ("python3-dev", "python3-pip", "build-essential", "git", "curl", "wget", "procps",
                            "openssh-client", "unzip", "xz-utils", "libssl-dev", "libffi-dev", "zlib1g-dev")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# Removed from the tree before import: caches, package lists, docs, man pages, translations and logs.
PRUNE = (
    "var/cache/apt/archives/*.deb", "var/cache/apt/*.bin", "var/lib/apt/lists/*", "var/log/*",
    "usr/share/doc/*", "usr/share/man/*", "usr/share/info/*", "usr/share/locale/*", "usr/share/lintian/*",
)
CHANGES = ('ENV LANG=C.UTF-8', 'CMD ["/bin/bash"]')


class BaseImageError(RuntimeError):
    """The base image could not be built or pushed; the message says what to change."""


def registry_ref(tag: str = DEFAULT_TAG) -> str:
    return f"{REGISTRY}/{tag}"


def _client(docker_host: str | None):
    import docker

    return docker.DockerClient(base_url=docker_host) if docker_host else docker.from_env()


def _image_exists(client, ref: str) -> bool:
    import docker

    try:
        client.images.get(ref)
        return True
    except docker.errors.ImageNotFound:
        return False


def _in_registry(ref: str) -> bool:
    import http.client

    host, _, rest = ref.partition("/")
    repo, _, tag = rest.rpartition(":")
    conn = http.client.HTTPConnection(host, timeout=5)
    try:
        conn.request("HEAD", f"/v2/{repo}/manifests/{tag}", headers={
            "Accept": "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"
        })
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def _bootstrap(target: Path, progress, packages: tuple[str, ...] = PACKAGES) -> None:
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        raise BaseImageError("`debootstrap` is not installed; install it (hack/ci/setup-10-docker.sh does)")
    if os.geteuid() != 0:
        raise BaseImageError("debootstrap needs root; run `startbench cluster up` as root")
    mirror = os.environ.get("STARTBENCH_DEBIAN_MIRROR", DEFAULT_MIRROR)
    log = cache_dir() / "baseimage" / "debootstrap.log"
    progress(f"base image: debootstrap {SUITE} (minbase + {', '.join(packages)}) from {mirror}; log {log}")
    cmd = [debootstrap, "--variant=minbase", f"--include={','.join(packages)}", SUITE, str(target), mirror]
    with open(log, "wb") as out:
        rc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise BaseImageError(
            f"debootstrap failed (exit {rc}); last lines of {log}:\n{tail}\n"
            f"check that {mirror} is reachable, or set STARTBENCH_DEBIAN_MIRROR to a Debian mirror that is"
        )
    for pattern in PRUNE:
        for path in target.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


def ensure(tag: str = DEFAULT_TAG, docker_host: str | None = None, push: bool = True, progress=print,
           packages: tuple[str, ...] | None = None) -> str:
    """Build (once) and push (once) the local base image. Returns the registry reference.

    packages: what debootstrap includes (default PACKAGES; FULL_PACKAGES for FULL_TAG).
    """
    if packages is None:
        packages = FULL_PACKAGES if tag == FULL_TAG else PACKAGES
    client = _client(docker_host)
    ref = registry_ref(tag)
    try:
        if _image_exists(client, tag):
            progress(f"base image: {tag} is present")
        else:
            work = cache_dir() / "baseimage"
            work.mkdir(parents=True, exist_ok=True)
            t0 = time.monotonic()
            with tempfile.TemporaryDirectory(dir=work, prefix="rootfs-") as tmp:
                rootfs, tarball = Path(tmp) / "rootfs", Path(tmp) / "rootfs.tar"
                _bootstrap(rootfs, progress, packages)
                subprocess.run(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(tarball), "."], check=True)
                repo, _, version = tag.rpartition(":")
                progress(f"base image: importing {tarball.stat().st_size / 1e6:.0f} MB as {tag}")
                client.api.import_image_from_file(str(tarball), repository=repo, tag=version, changes=list(CHANGES))
            progress(f"base image: built {tag} in {time.monotonic() - t0:.0f}s")
        if not push:
            return tag
        if _in_registry(ref):
            progress(f"base image: {ref} is in the registry")
            return ref
        client.images.get(tag).tag(ref)
        progress(f"base image: pushing {ref}")
        for line in client.api.push(ref, stream=True, decode=True):
            if "error" in line:
                raise BaseImageError(
                    f"pushing {ref} failed: {line['error']}; check that the local registry runs "
                    "(startbench cluster up starts it)"
                )
        if not _in_registry(ref):
            raise BaseImageError(f"pushed {ref} but the registry does not serve its manifest; see the registry log")
        progress(f"base image: pushed {ref}")
        return ref
    finally:
        client.close()


def run_python(tag: str = DEFAULT_TAG, code: str = "print(1)", docker_host: str | None = None) -> str:
    """Run `python3 -c CODE` in the image and return its output (a smoke test of the base)."""
    client = _client(docker_host)
    try:
        return client.containers.run(tag, ["python3", "-c", code], remove=True, network_disabled=True).decode()
    finally:
        client.close()


def status_problem(tag: str = DEFAULT_TAG) -> str | None:
    """None when the base image is in the local registry, else what is wrong (for `startbench cluster status`)."""
    if _in_registry(registry_ref(tag)):
        return None
    return f"{registry_ref(tag)} is not in the local registry; run `startbench cluster up` to build and push it"
