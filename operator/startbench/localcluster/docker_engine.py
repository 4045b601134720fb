"""A Docker engine for the local cluster and the image builds.

`ensure()` uses an engine that already answers (at DOCKER_HOST, else at /var/run/docker.sock); if none
does, it starts Debian's `dockerd` (package docker.io) detached, with its data root, pidfile and log under
the startbench cache directory (`~/.cache/startbench/docker/`, or `$STARTBENCH_CACHE/docker/`). It listens
on a unix socket only, never TCP. `stop()` stops only a dockerd that `ensure()` started.

The local registries on 127.0.0.1:5000 and :5001 speak plain HTTP. Docker trusts 127.0.0.0/8 as an
insecure registry range by default; we pass both addresses with --insecure-registry anyway so the intent
is explicit and survives a changed default.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from startbench.localcluster.processes import alive, terminate

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
INSECURE_REGISTRIES = ("127.0.0.1:5000", "127.0.0.1:5001")
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


class DockerEngineError(RuntimeError):
    """The Docker engine could not be found, started or stopped; the message says what to change."""


def cache_dir() -> Path:
    """The startbench cache root: $STARTBENCH_CACHE, else ~/.cache/startbench."""
    return Path(os.environ.get("STARTBENCH_CACHE") or Path.home() / ".cache" / "startbench")


def state_dir() -> Path:
    return cache_dir() / "docker"


def _paths() -> dict[str, Path]:
    root = state_dir()
    return {
        "data_root": root / "data",
        "exec_root": root / "exec",
        "pidfile": root / "dockerd.pid",  # written by dockerd itself
        "started": root / "started.pid",  # written by us: the dockerd we started
        "log": root / "dockerd.log",
        "host_file": root / "docker-host",
    }


def answers(host: str, timeout: float = 3.0) -> bool:
    """True if a Docker engine answers a ping at `host` (a DOCKER_HOST value)."""
    import docker  # imported here so that `import startbench.localcluster` needs no docker SDK

    try:
        client = docker.DockerClient(base_url=host, timeout=timeout)
    except docker.errors.DockerException:
        return False
    try:
        return bool(client.ping())
    except Exception:  # noqa: BLE001 - any failure to ping means "does not answer"
        return False
    finally:
        client.close()


def _read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def _our_dockerd_pid() -> int | None:
    """The pid of the dockerd we started, if it still runs (checked against its command line)."""
    paths = _paths()
    pid = _read_pid(paths["started"])
    if pid is None:
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    if not cmdline or not cmdline[0].endswith(b"dockerd"):
        return None
    if str(paths["data_root"]).encode() not in cmdline:
        return None
    return pid


def _socket_path(host: str) -> Path | None:
    return Path(host[len("unix://"):]) if host.startswith("unix://") else None


def _wait_for(host: str, pid: int, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if answers(host, timeout=2.0):
            return
        if not alive(pid):
            raise DockerEngineError(
                f"dockerd (pid {pid}) exited during start-up; its last log lines:\n{_tail(log)}\n"
                f"fix the cause above, or point DOCKER_HOST at a running engine"
            )
        time.sleep(0.3)
    raise DockerEngineError(
        f"dockerd (pid {pid}) did not answer at {host} within {START_TIMEOUT_S:.0f}s; see {log}:\n{_tail(log)}"
    )


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def ensure(progress=print) -> str:
    """Make sure a Docker engine answers; return the DOCKER_HOST to use. Idempotent and fast when done."""
    env_host = os.environ.get("DOCKER_HOST", "")
    if env_host and answers(env_host):
        progress(f"docker: engine answers at {env_host} (DOCKER_HOST)")
        return env_host
    if answers(DEFAULT_SOCKET):
        progress(f"docker: engine answers at {DEFAULT_SOCKET}")
        return DEFAULT_SOCKET
    if env_host and not env_host.startswith("unix://"):
        raise DockerEngineError(
            f"DOCKER_HOST={env_host} does not answer and is not a unix socket startbench could start an "
            f"engine on; start that engine, or unset DOCKER_HOST to let startbench start dockerd locally"
        )
    host = env_host or DEFAULT_SOCKET
    paths = _paths()
    pid = _our_dockerd_pid()
    if pid is not None:
        progress(f"docker: waiting for our dockerd (pid {pid}) at {host}")
        _wait_for(host, pid, paths["log"])
        return host
    return _start(host, progress)


def _start(host: str, progress) -> str:
    paths = _paths()
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise DockerEngineError(
            "no Docker engine answers and `dockerd` is not installed; install Debian's docker.io "
            "(apt-get install docker.io, see hack/ci/setup-10-docker.sh) or set DOCKER_HOST to a running engine"
        )
    if os.geteuid() != 0:
        raise DockerEngineError(
            "no Docker engine answers and starting dockerd needs root; run `startbench cluster up` as root, "
            "or start Docker yourself and set DOCKER_HOST"
        )
    sock = _socket_path(host)
    if sock is not None:
        sock.parent.mkdir(parents=True, exist_ok=True)
        if sock.exists() or sock.is_symlink():
            # Nothing answered on it above: a stale socket left by an engine that is gone.
            sock.unlink()
    for key in ("data_root", "exec_root"):
        paths[key].mkdir(parents=True, exist_ok=True)
    cmd = [
        dockerd,
        "--host", host,
        "--data-root", str(paths["data_root"]),
        "--exec-root", str(paths["exec_root"]),
        "--pidfile", str(paths["pidfile"]),
        "--log-level", "warn",
    ]
    for registry in INSECURE_REGISTRIES:
        cmd += ["--insecure-registry", registry]
    progress(f"docker: starting dockerd at {host} (data {paths['data_root']}, log {paths['log']})")
    with open(paths["log"], "ab") as log:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    # Our own record (dockerd's pidfile appears only once it runs), so stop() finds one still starting.
    paths["started"].write_text(f"{proc.pid}\n")
    paths["host_file"].write_text(host + "\n")
    t0 = time.monotonic()
    _wait_for(host, proc.pid, paths["log"])
    progress(f"docker: dockerd (pid {proc.pid}) answers at {host} after {time.monotonic() - t0:.1f}s")
    return host


def status() -> dict:
    """Where the engine stands: the host that answers (or None) and whether we started it."""
    pid = _our_dockerd_pid()
    host_file = _paths()["host_file"]
    ours_host = host_file.read_text().strip() if pid is not None and host_file.exists() else None
    for host in filter(None, (os.environ.get("DOCKER_HOST"), DEFAULT_SOCKET, ours_host)):
        if answers(host):
            return {"host": host, "answers": True, "started_by_startbench": pid is not None, "pid": pid}
    return {"host": None, "answers": False, "started_by_startbench": pid is not None, "pid": pid}


def stop(progress=print) -> bool:
    """Stop the dockerd that ensure() started (never any other). Returns True if one was stopped."""
    pid = _our_dockerd_pid()
    if pid is None:
        progress("docker: no dockerd started by startbench is running")
        return False
    progress(f"docker: stopping dockerd (pid {pid})")
    if terminate(pid, STOP_TIMEOUT_S):
        progress(f"docker: dockerd (pid {pid}) ignored SIGTERM for {STOP_TIMEOUT_S:.0f}s; killed it")
    _paths()["started"].unlink(missing_ok=True)
    return True


def status_problem() -> str | None:
    """None when an engine answers, else what is wrong (for `startbench cluster status`)."""
    st = status()
    if st["answers"]:
        return None
    hint = f"see {_paths()['log']}" if st["started_by_startbench"] else "run `startbench cluster up`"
    return f"no Docker engine answers at DOCKER_HOST or {DEFAULT_SOCKET}; {hint}"
