"""Two local image registries (Debian's docker-registry, CNCF distribution 2.8) for the local cluster.

* 127.0.0.1:5000 without auth: the base image and test images; cluster nodes pull from it.
* 127.0.0.1:5001 with htpasswd auth: user `startbench`, a password generated once and kept in
  `<cache>/registry/credentials/password` (mode 0600); the credentials path of the builder is tested against it.

Each registry has its own config file, storage (`delete: enabled: true`), pidfile and log under
`<cache>/registry/<name>/`, and runs detached. Plain HTTP on loopback only.
"""

from __future__ import annotations

import http.client
import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import yaml

from startbench.localcluster.docker_engine import cache_dir
from startbench.localcluster.processes import terminate

USERNAME = "startbench"
HOST = "127.0.0.1"
REGISTRIES = {"noauth": 5000, "auth": 5001}
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0


class RegistryError(RuntimeError):
    """A local registry could not be started or stopped; the message says what to change."""


def state_dir() -> Path:
    return cache_dir() / "registry"


def password_file() -> Path:
    return state_dir() / "credentials" / "password"


def htpasswd_file() -> Path:
    return state_dir() / "credentials" / "htpasswd"


def endpoints() -> dict:
    """Addresses of both registries and where the auth registry's credentials are kept."""
    return {
        "noauth": f"{HOST}:{REGISTRIES['noauth']}",
        "auth": f"{HOST}:{REGISTRIES['auth']}",
        "username": USERNAME,
        "password_file": str(password_file()),
    }


def password() -> str:
    """The auth registry's password (created by ensure())."""
    return password_file().read_text().strip()


def probe(port: int, timeout: float = 2.0) -> int | None:
    """HTTP status of GET /v2/ on 127.0.0.1:port if a registry answers there, else None.

    200 means open, 401 means auth required. Something on the port that is not a registry
    (no Docker-Distribution-Api-Version header) gives -1.
    """
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", "/v2/")
        resp = conn.getresponse()
        resp.read()
        if resp.getheader("Docker-Distribution-Api-Version") is None:
            return -1
        return resp.status
    except OSError:
        return None
    finally:
        conn.close()


def _paths(name: str) -> dict[str, Path]:
    root = state_dir() / name
    return {
        "root": root,
        "config": root / "config.yml",
        "storage": root / "storage",
        "pidfile": root / "registry.pid",
        "log": root / "registry.log",
    }


def _config(name: str) -> dict:
    paths = _paths(name)
    config = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}, "fields": {"service": f"registry-{name}"}},
        "storage": {
            "filesystem": {"rootdirectory": str(paths["storage"])},
            "delete": {"enabled": True},
            "cache": {"blobdescriptor": "inmemory"},
        },
        "http": {
            "addr": f"{HOST}:{REGISTRIES[name]}",
            "secret": _http_secret(),
            "headers": {"X-Content-Type-Options": ["nosniff"]},
        },
        "health": {"storagedriver": {"enabled": True, "interval": "10s", "threshold": 3}},
    }
    if name == "auth":
        config["auth"] = {"htpasswd": {"realm": "startbench-registry", "path": str(htpasswd_file())}}
    return config


def _http_secret() -> str:
    path = state_dir() / "http-secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_private(path, secrets.token_hex(32))
    return path.read_text().strip()


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")
    os.chmod(path, 0o600)


def _ensure_credentials() -> None:
    pw_file, ht_file = password_file(), htpasswd_file()
    pw_file.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(pw_file.parent, 0o700)
    if not pw_file.exists():
        _write_private(pw_file, secrets.token_urlsafe(24))
        ht_file.unlink(missing_ok=True)
    if ht_file.exists():
        return
    htpasswd = shutil.which("htpasswd")
    if htpasswd is None:
        raise RegistryError(
            "`htpasswd` is not installed; install apache2-utils (hack/ci/setup-10-docker.sh does)"
        )
    # -i reads the password from stdin, so it never appears on a command line.
    out = subprocess.run(
        [htpasswd, "-niB", USERNAME], input=password(), capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise RegistryError(f"htpasswd failed to hash the registry password: {out.stderr.strip()}")
    _write_private(ht_file, out.stdout.strip())


def _read_pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().strip())
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if b"registry" in cmd and b"serve" in cmd else None


def _start(name: str, progress) -> None:
    binary = shutil.which("docker-registry") or shutil.which("registry")
    if binary is None:
        raise RegistryError(
            "`docker-registry` is not installed; install Debian's docker-registry package "
            "(hack/ci/setup-10-docker.sh does)"
        )
    paths = _paths(name)
    paths["storage"].mkdir(parents=True, exist_ok=True)
    paths["config"].write_text(yaml.safe_dump(_config(name), sort_keys=False))
    os.chmod(paths["config"], 0o600)  # it holds the http secret
    progress(f"registry: starting {name} registry on {HOST}:{REGISTRIES[name]} (log {paths['log']})")
    with open(paths["log"], "ab") as log:
        proc = subprocess.Popen(
            [binary, "serve", str(paths["config"])],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    paths["pidfile"].write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if probe(REGISTRIES[name], timeout=1.0) in (200, 401):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    tail = "\n".join(paths["log"].read_text(errors="replace").splitlines()[-10:])
    raise RegistryError(f"the {name} registry did not start on {HOST}:{REGISTRIES[name]}; its log:\n{tail}")


def ensure(progress=print) -> dict:
    """Start both registries unless they already answer. Returns endpoints(). Idempotent."""
    _ensure_credentials()
    for name, port in REGISTRIES.items():
        code = probe(port)
        expected = 401 if name == "auth" else 200
        if code == expected:
            progress(f"registry: {name} registry answers on {HOST}:{port}")
            continue
        if code is not None:
            raise RegistryError(
                f"port {HOST}:{port} is taken by something that is not the {name} startbench registry "
                f"(GET /v2/ gave {code}, expected {expected}); stop it or free the port"
            )
        _start(name, progress)
    return endpoints()


def status() -> dict:
    """Per registry: address, whether it answers, whether it asks for auth, and our pid if we started it."""
    out = {}
    for name, port in REGISTRIES.items():
        code = probe(port)
        out[name] = {
            "address": f"{HOST}:{port}",
            "answers": code in (200, 401),
            "auth": code == 401,
            "pid": _read_pid(_paths(name)["pidfile"]),
        }
    return out


def stop(progress=print) -> list[str]:
    """Stop the registries that ensure() started (never others). Returns the names stopped."""
    stopped = []
    for name in REGISTRIES:
        pidfile = _paths(name)["pidfile"]
        pid = _read_pid(pidfile)
        if pid is None:
            continue
        progress(f"registry: stopping {name} registry (pid {pid})")
        terminate(pid, STOP_TIMEOUT_S)
        pidfile.unlink(missing_ok=True)
        stopped.append(name)
    return stopped




def status_problem() -> str | None:
    """None when both registries answer as expected, else what is wrong (for `startbench cluster status`)."""
    problems = []
    for name, row in status().items():
        if not row["answers"]:
            problems.append(f"the {name} registry does not answer on {row['address']} "
                            f"(log {_paths(name)['log']}); run `startbench cluster up`")
        elif row["auth"] != (name == "auth"):
            problems.append(f"{row['address']} answers {'with' if row['auth'] else 'without'} auth, which is not "
                            f"the {name} startbench registry; free the port")
    return "; ".join(problems) or None
