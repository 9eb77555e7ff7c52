"""``eks-proxy verify-access``: print the Kubernetes objects the verify function needs in a cluster.

The template's EKS access entries map the verify function's role to the Kubernetes group ``eks-proxy:verify`` and
associate no access policy (the narrowest, ``AmazonEKSEditPolicy`` scoped to a namespace, would also grant
deployments, secrets, services, ... there). This prints the namespace (Pod Security "restricted" enforced), a Role
with exactly what verification calls (pods create/list/delete, events list) and its RoleBinding to that group::

    eks-proxy verify-access --namespace eks-proxy-verify | kubectl apply -f -

Pure: no AWS call, nothing contacted.
"""

from __future__ import annotations

import argparse
import re
import sys

from eks_proxy.checks.verify import VERIFY_GROUP, access_manifest
from eks_proxy.cli.main import Subparsers

_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def register(subparsers: Subparsers) -> None:
    """Add ``verify-access``."""
    parser = subparsers.add_parser(
        "verify-access", help="the namespace, Role and RoleBinding the verify function needs (for kubectl apply)"
    )
    parser.add_argument(
        "--namespace", default="eks-proxy-verify", help="VerifyNamespace of the stack (default eks-proxy-verify)"
    )
    parser.set_defaults(handler=run_verify_access)


def run_verify_access(args: argparse.Namespace) -> int:
    if not _NAMESPACE.fullmatch(args.namespace):
        raise ValueError(f"--namespace must be a Kubernetes namespace name (RFC 1123 label), got {args.namespace!r}")
    sys.stdout.write(access_manifest(args.namespace, VERIFY_GROUP))
    return 0
