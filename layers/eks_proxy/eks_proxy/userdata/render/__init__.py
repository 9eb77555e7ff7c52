"""Renderers: the proxy configuration written in each node OS's own terms.

Each renderer is pure text in, text out. What they share lives here: the environment values, the marker that
identifies everything eks-proxy writes, and the renderer version that goes into every fingerprint.

Marker (chosen so we can find, compare and replace our parts and nothing else, and so it survives EC2, which
stores user data verbatim):

- MIME parts (al2023, al2): the body's first comment line (second line after a shebang)
  ``# eks-proxy fingerprint=<fingerprint> (managed, do not edit)``. It lives in content we own, which EC2 and any
  MIME tool pass through untouched (unlike extra MIME headers, which a re-serializing tool may drop, and which would
  cost bytes EC2's user-data limit can ill afford).
- Bottlerocket TOML: the same comment, trailing on the ``https-proxy = ...`` line of ``[settings.network]``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from eks_proxy.proxy.no_proxy import NodeContext, compute_no_proxy
from eks_proxy.proxy.value import ProxyConfig

# Bump when anything we write changes: every node group then gets a refresh (the fingerprint covers it).
# 2: Bottlerocket's https-proxy always carries its scheme (released Bottlerocket cannot boot with a scheme-less
#    IP); AL2023's boothook reads the values from our NodeConfig instead of repeating them.
RENDERER_VERSION = "2"
MARKER_RE = re.compile(r"# eks-proxy fingerprint=([0-9a-f]{16})\b")


def marker_comment(fingerprint: str) -> str:
    """The comment line carried by everything we write."""
    return f"# {marker_text(fingerprint)}"


def marker_text(fingerprint: str) -> str:
    """The marker without the leading ``# `` (tomlkit adds it for trailing comments)."""
    return f"eks-proxy fingerprint={fingerprint} (managed, do not edit)"


@dataclass(frozen=True)
class ProxyEnvironment:
    """The three values every renderer writes (in upper and lower case).

    ``read_vpc_cidrs``: the boothooks read the VPC CIDRs from IMDS at boot (only when none were known at render
    time: the engine always knows them, and a CIDR associated later changes the fingerprint, so the next sweep
    refreshes the nodes).
    """

    http_proxy: str
    https_proxy: str
    no_proxy: tuple[str, ...]
    read_vpc_cidrs: bool = True
    ca_bundle_pem: str = ""  # a TLS-inspecting proxy's CA certificates (validated, normalized PEM), or none

    @property
    def no_proxy_csv(self) -> str:
        return ",".join(self.no_proxy)


def proxy_environment(config: ProxyConfig, context: NodeContext) -> ProxyEnvironment:
    """The environment values for a node, NO_PROXY computed from the cluster context."""
    return ProxyEnvironment(
        config.http_proxy,
        config.https_proxy,
        compute_no_proxy(config, context),
        read_vpc_cidrs=not context.vpc_cidrs,
        ca_bundle_pem=config.ca_bundle.pem if config.ca_bundle else "",
    )


@dataclass(frozen=True)
class RenderedPart:
    """One MIME part we own: its content type and body (LF line endings, ends with a newline)."""

    content_type: str
    body: str
