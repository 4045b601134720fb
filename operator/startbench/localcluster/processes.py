"""Start, find and stop the local cluster's processes. Each one runs detached in its own session, with its
output in <state>/logs/<name>.log and its pid in <state>/pids/<name>.pid, so `cluster down` finds every
process `cluster up` started (and nothing else), even from another shell."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class Managed:
    name: str
    state_dir: Path

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "pids" / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "logs" / f"{self.name}.log"

    def pid(self) -> int | None:
        """The pid of the running process, or None. A stale pid file (process gone, or the pid reused by an
        unrelated program) counts as not running."""
        try:
            pid = int(self.pid_file.read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None
        if not alive(pid):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            return None
        marker = self.pid_file.read_text().split(maxsplit=1)
        expected = marker[1].strip() if len(marker) > 1 else ""
        if expected and expected.encode() not in cmdline:
            return None
        return pid

    def running(self) -> bool:
        return self.pid() is not None

    def start(self, argv: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> int:
        """Start `argv` detached unless it already runs; return its pid."""
        pid = self.pid()
        if pid is not None:
            return pid
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            log.write(f"\n==== {time.strftime('%Y-%m-%dT%H:%M:%S')} starting: {' '.join(argv)}\n".encode())
            log.flush()
            proc = subprocess.Popen(list(argv), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env={**os.environ, **(env or {})}, cwd=cwd, start_new_session=True)
        # The pid file holds the pid and the program path, so a reused pid is not mistaken for ours.
        self.pid_file.write_text(f"{proc.pid} {argv[0]}\n")
        # Until the child has exec'd, /proc shows the forked Python; wait for the program itself.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and proc.poll() is None and self.pid() is None:
            time.sleep(0.01)
        return proc.pid

    def exited_early(self, seconds: float = 0.0) -> bool:
        """True when the process is gone (after waiting `seconds`): it crashed on start."""
        deadline = time.monotonic() + seconds
        while True:
            if not self.running():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop the process and its session (SIGTERM, then SIGKILL). True when something was stopped."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                break
            except PermissionError:
                os.kill(pid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and self.running():
                time.sleep(0.1)
            if not self.running():
                break
        reap(pid)
        self.pid_file.unlink(missing_ok=True)
        return True

    def log_tail(self, lines: int = 20) -> str:
        try:
            with open(self.log_file, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 64 * 1024))
                text = f.read().decode(errors="replace")
        except FileNotFoundError:
            return "(no log yet)"
        return "\n".join(text.splitlines()[-lines:])


def reap(pid: int) -> None:
    """Collect the exit status if the process was our child (started by this Python process)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def terminate(pid: int, timeout: float) -> bool:
    """SIGTERM `pid`, give it `timeout` seconds to go, then SIGKILL it. True when it took the SIGKILL."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive(pid):
        time.sleep(0.1)
    if not alive(pid):
        return False
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    reap(pid)
    return True


def alive(pid: int) -> bool:
    """True if `pid` runs: a child of ours that exited is reaped, and a zombie counts as gone."""
    reap(pid)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def command_lines() -> Iterator[tuple[int, list[bytes]]]:
    """(pid, argv) of every process this user can see; processes that vanish while being read are skipped."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0]:
            yield int(proc.name), argv


def system_path() -> str:
    """PATH with the system's sbin and bin directories added (iptables, ip and containerd live in sbin, which a
    login shell of root has and a service environment may not)."""
    extra = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
    current = os.environ.get("PATH", "").split(os.pathsep)
    return os.pathsep.join(dict.fromkeys([p for p in current if p] + extra))


def write_if_changed(path: Path, text: str) -> bool:
    """Write `text` unless the file already holds it; True when it changed (a config whose process must restart)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.read_text() == text:
        return False
    path.write_text(text)
    return True
