"""What Bottlerocket would give containerd from its TOML user data (SIMULATED: we cannot boot Bottlerocket).

Bottlerocket renders /etc/network/proxy.env (an EnvironmentFile of containerd, kubelet and host-containerd) from
a template in its source tree (packages/os/proxy-env):

    HTTPS_PROXY={{settings.network.https-proxy}}          (and https_proxy; only when set; there is NO http-proxy)
    NO_PROXY={{#each no-proxy}}{{this}},{{/each}}localhost,127.0.0.1[,{{host settings.kubernetes.api-server}}]
             [,.{{settings.kubernetes.cluster-domain}}]    (and no_proxy)

The value is used verbatim: ``host:port`` works because Go treats a scheme-less proxy as http://.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any
from urllib.parse import urlsplit

_PROXY = re.compile(r"(https?://)?[A-Za-z0-9.\-\[\]:]+:\d{1,5}/?\Z")


class BottlerocketSettingsError(ValueError):
    """Settings Bottlerocket's API server would reject at boot (the node would not come up)."""


def settings(user_data: bytes) -> dict[str, Any]:
    try:
        doc = tomllib.loads(user_data.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BottlerocketSettingsError(f"user data is not TOML: {exc}") from exc
    found = doc.get("settings", {})
    if not isinstance(found, dict):
        raise BottlerocketSettingsError("[settings] must be a table")
    return found


def containerd_environment(user_data: bytes) -> dict[str, str]:
    """The proxy variables containerd would run with on a Bottlerocket node booted with ``user_data``."""
    s = settings(user_data)
    network = s.get("network", {})
    kubernetes = s.get("kubernetes", {})
    https_proxy = network.get("https-proxy")
    if "http-proxy" in network:
        raise BottlerocketSettingsError("settings.network.http-proxy does not exist (only https-proxy)")
    no_proxy = network.get("no-proxy", [])
    if not isinstance(no_proxy, list) or not all(isinstance(e, str) and e and "," not in e for e in no_proxy):
        raise BottlerocketSettingsError("settings.network.no-proxy must be a list of non-empty strings")
    env: dict[str, str] = {}
    if https_proxy is not None:
        if not isinstance(https_proxy, str) or not _PROXY.match(https_proxy):
            raise BottlerocketSettingsError(f"settings.network.https-proxy is not host:port or a URL: {https_proxy!r}")
        env["HTTPS_PROXY"] = env["https_proxy"] = https_proxy
    entries = [*no_proxy, "localhost", "127.0.0.1"]
    api_server = kubernetes.get("api-server")
    if api_server:
        entries.append(urlsplit(api_server).hostname or api_server)
    if kubernetes.get("cluster-domain"):
        entries.append("." + kubernetes["cluster-domain"])
    env["NO_PROXY"] = env["no_proxy"] = ",".join(entries)
    return env
