"""Which node groups are in scope, from every EKS amiType (and the OS hint for custom AMIs)."""

from __future__ import annotations

import pytest
from eks_proxy.userdata.node_os import NodeOS, node_os_for


@pytest.mark.parametrize(
    ("ami_type", "expected"),
    [
        ("AL2_x86_64", NodeOS.AL2),
        ("AL2_x86_64_GPU", NodeOS.AL2),
        ("AL2_ARM_64", NodeOS.AL2),
        ("AL2023_x86_64_STANDARD", NodeOS.AL2023),
        ("AL2023_ARM_64_STANDARD", NodeOS.AL2023),
        ("AL2023_x86_64_NEURON", NodeOS.AL2023),
        ("AL2023_x86_64_NVIDIA", NodeOS.AL2023),
        ("AL2023_ARM_64_NVIDIA", NodeOS.AL2023),
        ("AL2023_x86_64_FUTURE_VARIANT", NodeOS.AL2023),
        ("BOTTLEROCKET_ARM_64", NodeOS.BOTTLEROCKET),
        ("BOTTLEROCKET_x86_64", NodeOS.BOTTLEROCKET),
        ("BOTTLEROCKET_ARM_64_FIPS", NodeOS.BOTTLEROCKET),
        ("BOTTLEROCKET_x86_64_FIPS", NodeOS.BOTTLEROCKET),
        ("BOTTLEROCKET_ARM_64_NVIDIA", NodeOS.BOTTLEROCKET),
        ("BOTTLEROCKET_x86_64_NVIDIA", NodeOS.BOTTLEROCKET),
    ],
)
def test_linux_ami_types(ami_type: str, expected: NodeOS) -> None:
    node_os, reason = node_os_for(ami_type, None)
    assert node_os is expected and ami_type.upper() in reason


@pytest.mark.parametrize(
    "ami_type",
    ["WINDOWS_CORE_2019_x86_64", "WINDOWS_FULL_2019_x86_64", "WINDOWS_CORE_2022_x86_64", "WINDOWS_FULL_2022_x86_64"],
)
def test_windows_is_out_of_scope_even_with_a_hint(ami_type: str) -> None:
    node_os, reason = node_os_for(ami_type, "al2023")
    assert node_os is None and "Windows" in reason


@pytest.mark.parametrize(
    ("hint", "expected"), [("al2023", NodeOS.AL2023), ("AL2", NodeOS.AL2), (" bottlerocket ", NodeOS.BOTTLEROCKET)]
)
def test_custom_with_hint(hint: str, expected: NodeOS) -> None:
    assert node_os_for("CUSTOM", hint)[0] is expected


@pytest.mark.parametrize("hint", [None, "", "ubuntu", "al2023;rm"])
def test_custom_without_usable_hint_is_out_of_scope(hint: str | None) -> None:
    node_os, reason = node_os_for("CUSTOM", hint)
    assert node_os is None and "custom AMI" in reason and "\n" not in reason


@pytest.mark.parametrize("ami_type", ["", None, "UBUNTU_x86_64", "AL2023", "al3_x86_64"])
def test_unknown_types_are_never_touched(ami_type: str | None) -> None:
    node_os, reason = node_os_for(ami_type, "al2023")
    assert node_os is None and "out of scope" in reason


def test_enum_values_are_the_cli_names() -> None:
    assert [o.value for o in NodeOS] == ["al2023", "al2", "bottlerocket"]
    assert NodeOS("al2023") == "al2023"
