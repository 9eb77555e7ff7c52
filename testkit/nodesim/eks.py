"""How users and EKS touch a node's user data: the `eks-proxy` CLI run as a process, and the part EKS appends.

The cluster a simulated node joins (region, service CIDR, API endpoint) and what EKS adds after our user data when it
launches a node: its own NodeConfig part (AL2023), a stand-in for `/etc/eks/bootstrap.sh` (AL2) that records which
drop-ins exist when it runs, or its `[settings.kubernetes]` (Bottlerocket).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from . import samples
from .boot import NODECONFIG, parse_user_data

REGION = "eu-west-1"
SERVICE_CIDR = "172.20.0.0/16"
CLUSTER_ENDPOINT = "https://0123456789ABCDEF0123456789ABCDEF.gr7.eu-west-1.eks.amazonaws.com"
API_HOST = "0123456789abcdef0123456789abcdef.gr7.eu-west-1.eks.amazonaws.com"


def eks_proxy_cli() -> str:
    """The installed `eks-proxy` console script (beside this Python, else on PATH)."""
    beside_python = Path(sys.executable).with_name("eks-proxy")
    found = str(beside_python) if beside_python.exists() else shutil.which("eks-proxy")
    assert found, "the eks-proxy console script is not installed (make install)"
    return found


def context_args(vpc_cidrs: tuple[str, ...]) -> list[str]:
    """The cluster context flags of `eks-proxy render|inject` for this cluster."""
    args = ["--region", REGION, "--service-cidr", SERVICE_CIDR, "--cluster-endpoint", CLUSTER_ENDPOINT]
    for cidr in vpc_cidrs:
        args += ["--vpc-cidr", cidr]
    return args


EKS_NODECONFIG = f"""---
apiVersion: node.eks.aws/v1alpha1
kind: NodeConfig
spec:
  cluster:
    name: demo
    apiServerEndpoint: {CLUSTER_ENDPOINT}
    certificateAuthority: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t
    cidr: {SERVICE_CIDR}
"""
# Stands in for EKS's `/etc/eks/bootstrap.sh <cluster>` part: it records which drop-ins exist when it runs
# (bootstrap.sh starts containerd and kubelet, so ours must already be there).
EKS_BOOTSTRAP = """#!/bin/bash
set -e
mkdir -p /var/lib/nodesim-eks
ls /etc/systemd/system/containerd.service.d/ > /var/lib/nodesim-eks/containerd-dropins-at-bootstrap
"""
EKS_BOTTLEROCKET = f"""
[settings.kubernetes]
cluster-name = "demo"
api-server = "{CLUSTER_ENDPOINT}"
cluster-certificate = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t"
"""


def as_launched_by_eks(user_data: bytes, node_os: str) -> bytes:
    """What the node really receives: EKS appends its own part after ours (MIME) or its settings (TOML)."""
    if node_os == "bottlerocket":
        return user_data + EKS_BOTTLEROCKET.encode()
    parts = [(p.content_type, p.payload.decode()) for p in parse_user_data(user_data)]
    eks_part = (NODECONFIG, EKS_NODECONFIG) if node_os == "al2023" else ("text/x-shellscript", EKS_BOOTSTRAP)
    return samples.mime(*parts, eks_part)
