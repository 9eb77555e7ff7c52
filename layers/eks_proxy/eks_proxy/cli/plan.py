"""``eks-proxy plan``: what a proxy value would change, per node group, before anything changes.

    eks-proxy plan --cluster NAME [--cluster NAME]... [--nodegroup NAME]
                   [--value VALUE | --parameter NAME] [--ca-bundle FILE] [--region R]

Read-only (Describe*/List*/GetParameter only), against AWS or ``AWS_ENDPOINT_URL``. Per node group: in scope or why
not (with the remedy), the launch template versions, current vs desired fingerprint, what would be created, and a
unified diff of the user data. Exit 0 when nothing would change, 3 when something would (a CI gate), 2 with one
line on bad input (an invalid value, an unknown cluster or parameter), 1 with one line when AWS cannot be asked.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING

from eks_proxy.cli.main import PROG, CliError, Subparsers, add_ca_bundle_option, ca_bundle_from_file
from eks_proxy.config import DEFAULTS

if TYPE_CHECKING:  # the AWS side is imported when a command runs: `eks-proxy render` starts without botocore
    from eks_proxy.aws.clients import AwsClients
    from eks_proxy.cli.report import PlannedChange
    from eks_proxy.model import Decision
    from eks_proxy.proxy.value import ProxyConfig

DEFAULT_PARAMETER = DEFAULTS.proxy_parameter_name
EXIT_CHANGES = 3
EXIT_AWS = 1


def register(subparsers: Subparsers) -> None:
    """Add ``plan``."""
    parser = subparsers.add_parser("plan", help="show what a proxy value would change, per node group (read-only)")
    parser.add_argument("--cluster", action="append", required=True, metavar="NAME", help="EKS cluster (repeatable)")
    parser.add_argument("--nodegroup", metavar="NAME", help="only this node group (with one --cluster)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--value", help="a proxy value to try, exactly as it would be stored in the parameter")
    source.add_argument(
        "--parameter", metavar="NAME", help=f"read the value from this SSM parameter (default {DEFAULT_PARAMETER})"
    )
    add_ca_bundle_option(parser)
    parser.add_argument("--region", help="AWS region (default: the SDK's, e.g. AWS_REGION)")
    parser.add_argument("--opt-out-tag-key", default=DEFAULTS.opt_out_tag_key, metavar="KEY", help="as OptOutTagKey")
    parser.add_argument("--os-hint-tag-key", default=DEFAULTS.os_hint_tag_key, metavar="KEY", help="as OsHintTagKey")
    parser.set_defaults(handler=run_plan)


@contextmanager
def aws_errors() -> Iterator[None]:
    """Turn SDK failures into one-line messages: `AwsUnavailable` (exit 1), or CliError when no region is set."""
    from eks_proxy.aws.errors import NoRegion, sdk_errors

    try:
        with sdk_errors():
            yield
    except NoRegion:
        raise CliError("no AWS region: pass --region or set AWS_REGION") from None


def run_aws(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Wrap a command handler: `AwsUnavailable` becomes one ``eks-proxy: error: ...`` line and exit 1."""

    def wrapped(args: argparse.Namespace) -> int:
        from eks_proxy.aws.errors import AwsUnavailable

        try:
            with aws_errors():
                return handler(args)
        except AwsUnavailable as error:
            print(f"{PROG}: error: {' '.join(str(error).split())}", file=sys.stderr)
            return EXIT_AWS

    return wrapped


def decode_user_data(user_data: str) -> bytes:
    """Raw bytes of base64 launch template user data, for the diff (text that is not base64 is shown as it is).

    >>> decode_user_data("IyEvYmluL2Jhc2gK"), decode_user_data("#!/bin/bash")
    (b'#!/bin/bash\\n', b'#!/bin/bash')
    """
    try:
        return base64.b64decode(user_data, validate=True)
    except (binascii.Error, ValueError):
        return user_data.encode()


def _user_data(clients: AwsClients, decision: Decision, version: int | None) -> bytes | None:
    from eks_proxy.aws.ec2 import get_template_version

    lt = decision.launch_template
    if lt is None or version is None:
        return None
    found = get_template_version(clients.ec2, lt, version)
    return decode_user_data(found.user_data) if found and found.user_data else b""


def planned_changes(clients: AwsClients, decisions: list[Decision]) -> list[PlannedChange]:
    """Each decision with the user data before and after (read only for node groups that would change)."""
    from eks_proxy.cli.report import PlannedChange
    from eks_proxy.model import Outcome

    changes = []
    for d in decisions:
        if not d.needs_rollout:
            changes.append(PlannedChange(d))
            continue
        # The decision carries the current user data as read; the version to roll to is read (it is what would run).
        before = (
            decode_user_data(d.current_user_data) if d.current_user_data else _user_data(clients, d, d.current_version)
        )
        if d.outcome is Outcome.CREATE_VERSION:
            after = decode_user_data(d.new_user_data) if d.new_user_data else None
        else:
            after = _user_data(clients, d, d.target_version)
        changes.append(PlannedChange(d, before, after))
    return changes


def _check_clusters(clients: AwsClients, clusters: tuple[str, ...]) -> None:
    from eks_proxy.aws.eks import cluster_exists

    for cluster in clusters:
        if not cluster_exists(clients.eks, cluster):
            raise CliError(f"cluster {cluster!r} not found in {clients.region}")


def _check_nodegroup(clients: AwsClients, cluster: str, nodegroup: str) -> None:
    from eks_proxy.aws.eks import NodegroupNotFound, describe_nodegroup

    try:
        describe_nodegroup(clients.eks, cluster, nodegroup)
    except NodegroupNotFound:
        raise CliError(f"node group {nodegroup!r} not found in cluster {cluster!r}") from None


def _with_ca_bundle(clients: AwsClients, config: ProxyConfig, path: str | None) -> ProxyConfig:
    """The CA bundle the value names: ``--ca-bundle FILE`` (a rotation to try) or else the parameter itself."""
    from eks_proxy.aws.ssm import attach_ca_bundle

    if path is None:
        return attach_ca_bundle(clients.ssm, config)
    if config.ca_bundle_parameter is None:
        raise CliError('--ca-bundle is used only when the proxy value names a "ca_bundle" parameter')
    return config.with_ca_bundle(ca_bundle_from_file(path))


def _run(args: argparse.Namespace) -> int:
    from eks_proxy.aws.clients import AwsClients
    from eks_proxy.aws.ssm import ParameterNotFound, read_parameter
    from eks_proxy.cli.report import describe, summary
    from eks_proxy.engine.plan import ContextCache, plan_scope
    from eks_proxy.engine.scope import Scope
    from eks_proxy.proxy.value import parse_proxy_value

    clusters = tuple(dict.fromkeys(args.cluster))
    if args.nodegroup and len(clusters) != 1:
        raise CliError("--nodegroup needs exactly one --cluster")
    clients = AwsClients(region=args.region)
    if args.value is not None:
        config = parse_proxy_value(args.value)
        source = "the value given with --value"
    else:
        name = args.parameter or DEFAULT_PARAMETER
        try:
            parameter = read_parameter(clients.ssm, name)
        except ParameterNotFound:
            raise CliError(f"parameter {name} not found in {clients.region}") from None
        config = parse_proxy_value(parameter.value)
        source = f"{parameter.name} version {parameter.version}"
    config = _with_ca_bundle(clients, config, args.ca_bundle)
    if config.ca_bundle is not None:
        source += f", CA bundle from {args.ca_bundle or config.ca_bundle_parameter}"
    _check_clusters(clients, clusters)
    if args.nodegroup:
        _check_nodegroup(clients, clusters[0], args.nodegroup)
    settings = replace(
        DEFAULTS,
        cluster_names=clusters,
        opt_out_tag_key=args.opt_out_tag_key,
        os_hint_tag_key=args.os_hint_tag_key,
    )
    scope = (
        Scope(kind="nodegroup", clusters=clusters, nodegroup=args.nodegroup)
        if args.nodegroup
        else Scope(kind="all", clusters=clusters)
    )
    decisions = plan_scope(clients, settings, scope, config, ContextCache())
    changes = planned_changes(clients, decisions)
    out = [f"eks-proxy plan: {', '.join(clusters)} in {clients.region}, proxy from {source} (read-only)", ""]
    for change in changes:
        out.extend([*describe(change), ""])
    if not changes:
        out.extend(["no node groups found", ""])
    out.append(summary(decisions))
    print("\n".join(out))
    return EXIT_CHANGES if any(c.would_change for c in changes) else 0


run_plan = run_aws(_run)
