"""The demo's AWS account: one cluster whose managed node groups show every case eks-proxy meets.

Built on a moto server with `testkit.engine_world` (the same world builder the engine tests use), so the
demo and the tests agree on what a VPC, a cluster, a launch template and a node group look like.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from testkit.engine_world import BOTTLEROCKET_USER_DATA, TEAM_USER_DATA, World, build_world

CLUSTER = "prod"
FIRST_PROXY = "http://10.0.0.10:3128"
NEW_PROXY = '{"http_proxy": "http://10.0.0.11:3128", "no_proxy": [".corp.example"]}'

# The platform team's own NodeConfig part (AL2023): eks-proxy must keep it byte for byte and add its own after it.
AL2023_USER_DATA = (
    b"MIME-Version: 1.0\n"
    b'Content-Type: multipart/mixed; boundary="//"\n'
    b"\n"
    b"--//\n"
    b"Content-Type: application/node.eks.aws\n"
    b"\n"
    b"---\n"
    b"apiVersion: node.eks.aws/v1alpha1\n"
    b"kind: NodeConfig\n"
    b"spec:\n"
    b"  kubelet:\n"
    b"    config:\n"
    b"      maxPods: 58\n"
    b"\n"
    b"--//--\n"
)


@dataclass(frozen=True)
class Case:
    """One node group of the demo and what eks-proxy is expected to decide for it."""

    nodegroup: str
    what: str
    ami_type: str
    template: str | None
    user_data: bytes | None
    expected: str  # the reconcile outcome on the first change
    tags: tuple[tuple[str, str], ...] = ()


CASES = (
    Case(
        "al2023-apps", "AL2023 with the team's NodeConfig part", "AL2023_x86_64_STANDARD", "prod-al2023-apps",
        AL2023_USER_DATA, "create_version",
    ),
    Case(
        "bottlerocket-web", "Bottlerocket with existing settings", "BOTTLEROCKET_x86_64", "prod-bottlerocket-web",
        BOTTLEROCKET_USER_DATA, "create_version",
    ),
    Case(
        "al2-legacy", "AL2 (legacy) with a team shell script", "AL2_x86_64", "prod-al2-legacy", TEAM_USER_DATA,
        "create_version",
    ),
    Case("no-template", "created without a launch template", "AL2023_x86_64_STANDARD", None, None, "out_of_scope"),
    Case(
        "opted-out", "opted out by tag eks-proxy/skip=true", "AL2023_x86_64_STANDARD", "prod-opted-out",
        AL2023_USER_DATA, "out_of_scope", (("eks-proxy/skip", "true"),),
    ),
)  # fmt: skip


def build_demo_world(server: Any) -> World:
    """VPC, the cluster, one launch template per case that has one, the node groups (each on version 1)."""
    world = build_world(server)
    world.cluster(CLUSTER)
    for case in CASES:
        if case.template is not None:
            world.template(case.template, case.user_data)
        world.nodegroup(CLUSTER, case.nodegroup, ami_type=case.ami_type, template=case.template, tags=dict(case.tags))
    return world
