"""Which node OS a managed node group runs, from its EKS ``amiType`` (and an OS hint for custom AMIs).

Mapped by prefix so future variants (a new ``AL2023_*`` or ``BOTTLEROCKET_*`` type) keep working; anything we do
not understand is out of scope and never touched.
"""

from __future__ import annotations

from enum import StrEnum


class NodeOS(StrEnum):
    """The node operating systems eks-proxy renders user data for."""

    AL2023 = "al2023"
    AL2 = "al2"
    BOTTLEROCKET = "bottlerocket"


# Longest prefix first: "AL2023_" must win over "AL2_".
_PREFIXES: tuple[tuple[str, NodeOS], ...] = (
    ("AL2023_", NodeOS.AL2023),
    ("AL2_", NodeOS.AL2),
    ("BOTTLEROCKET_", NodeOS.BOTTLEROCKET),
)


def node_os_for(ami_type: str | None, os_hint: str | None = None) -> tuple[NodeOS | None, str]:
    """The node OS for an EKS ``amiType``, or None with the reason the node group is out of scope.

    >>> node_os_for("AL2023_ARM_64_STANDARD", None)
    (<NodeOS.AL2023: 'al2023'>, 'amiType AL2023_ARM_64_STANDARD')
    >>> node_os_for("CUSTOM", None)[1]
    'custom AMI (amiType CUSTOM) without an OS hint: give al2023, al2 or bottlerocket to manage it'
    """
    ami = (ami_type or "").strip().upper()
    hint = (os_hint or "").strip().lower() or None
    if ami.startswith("WINDOWS_"):
        return None, f"Windows node group (amiType {ami}): out of scope"
    if ami == "CUSTOM":
        if hint is None:
            return None, "custom AMI (amiType CUSTOM) without an OS hint: give al2023, al2 or bottlerocket to manage it"
        try:
            return NodeOS(hint), f"custom AMI with OS hint {hint}"
        except ValueError:
            shown = hint if hint.isascii() and hint.replace("-", "").replace("_", "").isalnum() else "?"
            return None, f"custom AMI with unknown OS hint {shown!r}: expected al2023, al2 or bottlerocket"
    for prefix, node_os in _PREFIXES:
        if ami.startswith(prefix):
            return node_os, f"amiType {ami}"
    if not ami:
        return None, "no amiType: out of scope"
    shown = ami if ami.replace("_", "").isalnum() and len(ami) <= 64 else "?"
    return None, f"unknown amiType {shown}: out of scope (never touched)"
