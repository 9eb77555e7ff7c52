"""The tools the suite needs beyond Python: skipped on a developer machine without them, a failure under CI.

`make test` checks them first (scripts/ensure_tools.py installs the missing Debian packages), so a full run never
skips; `require_tool` only matters when pytest is run directly. Importing this module needs nothing but the standard
library (scripts/ensure_tools.py runs before anything else is known to work).
"""

from __future__ import annotations

import os
import shutil

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
NODESIM_TOOLS = ("tinyproxy", "docker-registry", "skopeo", "ip", "unshare", "openssl", "curl")
# Every command the suite runs -> the Debian package that provides it.
DEBIAN_PACKAGES = {
    "tinyproxy": "tinyproxy",
    "docker-registry": "docker-registry",
    "skopeo": "skopeo",
    "ip": "iproute2",
    "unshare": "util-linux",
    "openssl": "openssl",
    "curl": "curl",
    "squid": "squid-openssl",  # a TLS-inspecting (ssl-bump) proxy
}
# Packages whose installation starts a system service the tests do not want listening (they start their own).
SERVICES = {"tinyproxy": "tinyproxy", "docker-registry": "docker-registry", "squid-openssl": "squid"}


def require_tool(*names: str) -> None:
    """Skip when a tool is missing on a developer machine; fail under CI, where `make test` must have installed it."""
    import pytest

    missing = [n for n in names if shutil.which(n) is None]
    if not missing:
        return
    message = f"required tool(s) not installed: {', '.join(missing)}"
    if IN_CI:
        pytest.fail(message + " (make test installs them first: scripts/ensure_tools.py)")
    pytest.skip(message + " (make tools installs them)")


def require_root() -> None:
    import pytest

    if os.geteuid() == 0:
        return
    if IN_CI:
        pytest.fail("the node simulation needs root (network namespaces)")
    pytest.skip("needs root for network namespaces")
