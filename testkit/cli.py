"""The `eks-proxy` CLI as users run it: a process, its exit code and its one-line refusals."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CONSOLE_SCRIPT = Path(sys.executable).parent / "eks-proxy"
COMMAND = [str(CONSOLE_SCRIPT)] if CONSOLE_SCRIPT.exists() else [sys.executable, "-m", "eks_proxy.cli.main"]


def assert_refused(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    """Bad input: exit 2, nothing on stdout, exactly one `eks-proxy: error: ...` line on stderr naming `fragment`."""
    assert result.returncode == 2, result
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("eks-proxy: error: "), result.stderr
    assert fragment in result.stderr, result.stderr
