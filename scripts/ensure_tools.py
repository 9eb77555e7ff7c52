"""`make test` runs this first: every command the suite needs (testkit/tools.py) must be on PATH.

Missing ones are installed from Debian when it can (root and apt-get): it says which packages it installs, then
stops the system services those packages start (the tests run their own instances on free ports). When it cannot, it
stops at once with the exact command to run. Nothing missing: one line, exit 0.

Python 3.13 (the Lambda runtime's version, to run the built layer as Lambda does) is installed the same way where the
Debian release packages it (trixie and later); elsewhere a warning says which tests cannot run without it.

    python scripts/ensure_tools.py          # exit 0: all present (or installed); 2: missing and cannot install
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from testkit.tools import DEBIAN_PACKAGES, SERVICES

LAMBDA_PYTHON = "python3.13"


def missing_packages() -> dict[str, str]:
    """Debian package -> the first missing command it provides."""
    found: dict[str, str] = {}
    for command, package in DEBIAN_PACKAGES.items():
        if shutil.which(command) is None:
            found.setdefault(package, command)
    return found


def has_lambda_python() -> bool:
    pyenv = glob.glob(os.path.expanduser(f"~/.pyenv/versions/3.13*/bin/{LAMBDA_PYTHON}"))
    for candidate in [shutil.which(LAMBDA_PYTHON), *pyenv]:
        if candidate and subprocess.run([candidate, "-c", "pass"], capture_output=True, check=False).returncode == 0:
            return True
    return False


def debian_has(package: str) -> bool:
    """Whether this machine's apt sources offer `package` (a local apt-cache lookup)."""
    if shutil.which("apt-cache") is None:
        return False
    done = subprocess.run(["apt-cache", "policy", package], capture_output=True, text=True, check=False)
    return "Candidate:" in done.stdout and "Candidate: (none)" not in done.stdout


def install(packages: list[str]) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages], check=True, env=env)
    # The packages start system services (a tinyproxy on 8888, a registry on 5000, a squid on 3128): stop them.
    services = [SERVICES[p] for p in packages if p in SERVICES]
    if services:
        if shutil.which("systemctl"):
            subprocess.run(["systemctl", "stop", *services], capture_output=True, check=False)
        for daemon in services:  # without systemd the init scripts started them directly
            subprocess.run(["pkill", "-x", daemon], capture_output=True, check=False)


def main() -> int:
    missing = missing_packages()
    lambda_python = has_lambda_python()
    if not lambda_python and debian_has(LAMBDA_PYTHON):
        missing[LAMBDA_PYTHON] = LAMBDA_PYTHON
    elif not lambda_python:
        print(
            f"warning: no {LAMBDA_PYTHON} and this Debian release does not package it: the tests that run the built "
            "layer as the Lambda runtime does will skip (fail under CI=true); pyenv install 3.13 provides it",
            file=sys.stderr,
        )
    if not missing:
        print("test tools: all present (" + ", ".join(DEBIAN_PACKAGES) + ")")
        return 0
    packages = sorted(missing)
    what = ", ".join(f"{command} ({package})" for package, command in sorted(missing.items()))
    install_command = "apt-get install -y --no-install-recommends " + " ".join(packages)
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        if os.geteuid() != 0:
            why, run = "not root", f"sudo apt-get update && sudo {install_command}"
        else:
            why, run = "no apt-get on this machine", f"apt-get update && {install_command}   (Debian package names)"
        print(f"test tools missing: {what}; cannot install them here ({why}). Run:", file=sys.stderr)
        print(f"  {run}", file=sys.stderr)
        return 2
    print(f"test tools missing: {what}; installing them: apt-get update && {install_command}", flush=True)
    try:
        install(packages)
    except subprocess.CalledProcessError as failed:
        print(f"apt-get failed (exit {failed.returncode}); run it yourself: {install_command}", file=sys.stderr)
        return 2
    still = missing_packages()
    if still:
        print(f"still missing after apt-get: {', '.join(sorted(still))}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
