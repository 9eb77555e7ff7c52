"""scripts/ensure_tools.py as `make test` runs it first: a process, on a PATH the test controls.

Every command it may call (apt-get, apt-cache, systemctl, pkill, the tools themselves) is a stub in a directory that
is the whole PATH, so nothing is installed or stopped on this machine; the stubs record how they were called.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from testkit.repo import REPO
from testkit.tools import DEBIAN_PACKAGES, require_root

SCRIPT = REPO / "scripts" / "ensure_tools.py"
EVERY_PACKAGE = sorted(set(DEBIAN_PACKAGES.values()))


def stub(directory: Path, name: str, body: str = "exit 0") -> None:
    path = directory / name
    path.write_text(f'#!/bin/sh\necho "{name} $*" >> {directory / "calls.log"}\n{body}\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def calls(directory: Path) -> list[str]:
    log = directory / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def run(path: Path, python: str = sys.executable, user: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": str(path), "HOME": str(path)}  # HOME: no ~/.pyenv Python 3.13 found by accident
    return subprocess.run([*(user or []), python, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "bin"
    directory.mkdir()
    return directory


def test_everything_present_is_one_line_and_touches_nothing(bin_dir: Path) -> None:
    for command in [*DEBIAN_PACKAGES, "python3.13", "apt-get", "apt-cache", "systemctl", "pkill"]:
        stub(bin_dir, command)
    done = run(bin_dir)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("test tools: all present (") and done.stdout.count("\n") == 1
    assert [c for c in calls(bin_dir) if not c.startswith("python3.13")] == []


def test_without_apt_get_it_stops_with_the_exact_command(bin_dir: Path) -> None:
    stub(bin_dir, "python3.13")
    done = run(bin_dir)
    assert done.returncode == 2
    command = "apt-get install -y --no-install-recommends " + " ".join(EVERY_PACKAGE)
    assert command in done.stderr, done.stderr
    assert "no apt-get" in done.stderr or os.geteuid() != 0


def test_as_root_it_installs_the_missing_packages_and_stops_their_services(bin_dir: Path) -> None:
    require_root()
    # apt-get "installs" by creating the missing commands; tinyproxy is already there.
    made = " ".join(f"{bin_dir}/{c}" for c in DEBIAN_PACKAGES if c != "tinyproxy")
    body = f'if [ "$1" = install ]; then for f in {made}; do echo "#!/bin/sh" > "$f"; /bin/chmod +x "$f"; done; fi'
    stub(bin_dir, "apt-get", body)
    stub(bin_dir, "apt-cache", 'echo "  Candidate: (none)"')
    for command in ("tinyproxy", "python3.13", "systemctl", "pkill"):
        stub(bin_dir, command)
    done = run(bin_dir)
    assert done.returncode == 0, done.stdout + done.stderr
    packages = [p for p in EVERY_PACKAGE if p != "tinyproxy"]
    assert "installing them: apt-get update && apt-get install -y --no-install-recommends " + " ".join(packages) in (
        done.stdout
    )
    logged = [c for c in calls(bin_dir) if not c.startswith("python3.13")]
    assert logged[:2] == ["apt-get update -qq", "apt-get install -y -qq --no-install-recommends " + " ".join(packages)]
    assert "systemctl stop docker-registry squid" in logged
    assert {"pkill -x docker-registry", "pkill -x squid"} <= set(logged)
    assert not any("tinyproxy" in c for c in logged if c.startswith(("systemctl", "pkill")))  # it was there before


def test_not_root_it_stops_with_the_sudo_command_and_runs_nothing(bin_dir: Path) -> None:
    for command in ("apt-get", "apt-cache", "python3.13", "systemctl", "pkill"):
        stub(bin_dir, command)
    user: list[str] = []
    python = sys.executable
    if os.geteuid() == 0:  # become nobody; the system Python (ours may live under /root) runs the script
        bin_dir.parent.chmod(0o755)
        bin_dir.chmod(0o777)
        (bin_dir / "calls.log").touch(mode=0o666)
        (bin_dir / "calls.log").chmod(0o666)
        user, python = ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"], "/usr/bin/python3"
    done = run(bin_dir, python=python, user=user)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "(not root)" in done.stderr
    command = "sudo apt-get update && sudo apt-get install -y --no-install-recommends " + " ".join(EVERY_PACKAGE)
    assert command in done.stderr, done.stderr
    assert [c for c in calls(bin_dir) if not c.startswith("python3.13")] == []
