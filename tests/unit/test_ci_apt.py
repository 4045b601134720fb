"""hack/ci/apt.sh, the "install what is missing" helper the CI setup scripts share.

dpkg-query is this machine's real one, reading its real package database. apt-get is replaced by a script on PATH
that records its arguments: installing packages for real would change the machine, and needs the network.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APT_SH = ROOT / "hack" / "ci" / "apt.sh"

pytestmark = pytest.mark.tools("dpkg-query")

# Installed on any Debian machine that runs this suite (the setup scripts need them), and a name no archive has.
PRESENT = ("bash", "coreutils")
ABSENT = "startbench-no-such-package"


def run_apt_ensure(tmp_path: Path, *packages: str, apt_get_exit: int = 0) -> tuple[subprocess.CompletedProcess, list]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    calls = tmp_path / "apt-get.calls"
    fake = bin_dir / "apt-get"
    fake.write_text(f'#!/bin/sh\necho "$*" >> {calls}\nexit {apt_get_exit}\n')
    fake.chmod(0o755)
    script = f'set -euo pipefail; source {APT_SH}; apt_ensure "$@"; echo "APT_INSTALLED=${{APT_INSTALLED[*]}}"'
    proc = subprocess.run(["bash", "-c", script, "apt_ensure", *packages], capture_output=True, text=True,
                          env={"PATH": f"{bin_dir}:/usr/bin:/bin"}, timeout=60)
    return proc, (calls.read_text().splitlines() if calls.exists() else [])


def test_nothing_is_installed_when_every_package_is_there(tmp_path):
    proc, calls = run_apt_ensure(tmp_path, *PRESENT)
    assert proc.returncode == 0, proc.stderr
    assert calls == []
    assert proc.stdout.strip().endswith("APT_INSTALLED=")


def test_only_the_missing_packages_are_installed_after_one_update(tmp_path):
    proc, calls = run_apt_ensure(tmp_path, PRESENT[0], ABSENT, PRESENT[1])
    assert proc.returncode == 0, proc.stderr
    assert calls == ["update -qq", f"install -y -qq --no-install-recommends {ABSENT}"]
    assert f"installing: {ABSENT}" in proc.stdout
    assert proc.stdout.strip().endswith(f"APT_INSTALLED={ABSENT}")


def test_a_failing_install_fails_the_setup_script(tmp_path):
    proc, calls = run_apt_ensure(tmp_path, ABSENT, apt_get_exit=100)
    assert proc.returncode == 100
    assert calls == ["update -qq"]  # set -e stops at the failing update: no install on a stale index
    assert "APT_INSTALLED" not in proc.stdout


@pytest.mark.parametrize("script", sorted((ROOT / "hack" / "ci").glob("setup-*.sh")), ids=lambda p: p.name)
def test_setup_scripts_install_packages_only_through_the_helper(script):
    text = script.read_text()
    if "apt-get" in text or "dpkg -s" in text:
        pytest.fail(f"{script.name} installs Debian packages itself: use apt_ensure from hack/ci/apt.sh")
