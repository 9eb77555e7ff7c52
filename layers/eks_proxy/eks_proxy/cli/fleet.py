"""``eks-proxy fleet``: which node groups carry the proxy parameter's current value right now, which don't, and why.

    eks-proxy fleet [--cluster NAME]... [--format table|json] [--parameter NAME]
                    [--state-machine ARN | --stack NAME] [--rollouts N] [--region R]
                    [--opt-out-tag-key KEY] [--os-hint-tag-key KEY]

Read-only, against AWS or ``AWS_ENDPOINT_URL`` (the same credentials and endpoint rules as ``plan``). One row per
managed node group of the clusters (``--cluster``; default: the stack's ``ClusterNames`` parameter, or with
``--state-machine`` every cluster in the region): cluster, node group, OS, the launch template and version it runs,
the configuration that version carries (fingerprint, and the parameter version it was made from when eks-proxy made
it: read back from the version's description), whether that is the parameter's current value, the last rollout's
outcome for it and when (the newest ``--rollouts`` executions of the rollout state machine, as ``status`` reads
them), and for every node group not current, why (eks_proxy/engine/fleet.py). Then one summary line.

Exit codes (a CI gate): 0 every node group is current, 3 some are not, 2 bad input (one line: unknown cluster,
parameter, stack; an invalid value), 1 AWS could not be asked.

``--format json`` prints one JSON document (schema version 1, stable: fields are only ever added):

    {"schema_version": 1, "region": str, "parameter": {"name": str, "version": int},
     "state_machine": str, "clusters": [str],
     "nodegroups": [{"cluster", "nodegroup", "nodegroup_status", "os", "launch_template": {"id", "name"} | null,
                     "version", "fingerprint", "parameter_version", "desired_fingerprint", "current": bool,
                     "state": "current|out_of_scope|waiting|failed|rolled_back|rollback_failed|moved_on|gone|drift",
                     "why", "remedy",
                     "last_rollout": {"execution", "execution_status", "outcome", "summary", "at"} | null}],
     "summary": {"total", "current", "out_of_scope", "waiting", "failed", "rolled_back", "rollback_failed",
                 "moved_on", "gone", "drift"},
     "summary_line": str}

Absent values are ``null``; ``at`` is ISO 8601 with its offset.
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from eks_proxy.cli.main import CliError, Subparsers
from eks_proxy.cli.plan import DEFAULT_PARAMETER, EXIT_CHANGES, run_aws
from eks_proxy.cli.status import DEFAULT_STACK

if TYPE_CHECKING:
    from eks_proxy.cli.status import Rollout
    from eks_proxy.engine.fleet import FleetRow

EXIT_NOT_CURRENT = EXIT_CHANGES  # 3, as `plan`'s "something would change"
READ_WORKERS = 8  # concurrent DescribeExecution/GetExecutionHistory reads


def register(subparsers: Subparsers) -> None:
    """Add ``fleet``."""
    parser = subparsers.add_parser(
        "fleet", help="which node groups carry the current proxy value, which don't and why (read-only)"
    )
    parser.add_argument(
        "--cluster", action="append", metavar="NAME", help="EKS cluster (repeatable; default: the stack's)"
    )
    parser.add_argument("--format", choices=["table", "json"], default="table", help="output format (table)")
    parser.add_argument(
        "--parameter", metavar="NAME", default=DEFAULT_PARAMETER, help=f"the proxy parameter ({DEFAULT_PARAMETER})"
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--state-machine", metavar="ARN", help="the rollout state machine's ARN")
    where.add_argument(
        "--stack", default=DEFAULT_STACK, metavar="NAME", help=f"the eks-proxy stack (default {DEFAULT_STACK})"
    )
    parser.add_argument(
        "--rollouts",
        type=int,
        default=20,
        metavar="N",
        help="how many of the newest rollouts to read outcomes from (20)",
    )
    parser.add_argument("--region", help="AWS region (default: the SDK's, e.g. AWS_REGION)")
    parser.add_argument("--opt-out-tag-key", default="eks-proxy/skip", metavar="KEY", help="as OptOutTagKey")
    parser.add_argument("--os-hint-tag-key", default="eks-proxy/os", metavar="KEY", help="as OsHintTagKey")
    parser.set_defaults(handler=run_fleet)


def _stack_clusters(cloudformation: Any, stack: str) -> tuple[str, ...]:
    """The stack's ClusterNames parameter (the clusters eks-proxy manages)."""
    from eks_proxy.aws.cloudformation import stack_parameter

    names = stack_parameter(cloudformation, stack, "ClusterNames") or ""
    return tuple(name.strip() for name in names.split(",") if name.strip())


def recent_rollouts(sfn: Any, state_machine_arn: str, limit: int) -> list[Rollout]:
    """The `limit` newest executions with their per-node-group outcomes, read `READ_WORKERS` at a time."""
    from eks_proxy.aws.stepfunctions import StateMachineNotFound, list_executions
    from eks_proxy.cli.status import _rollout

    listed: list[dict[str, Any]] = []
    token: str | None = None
    while len(listed) < limit:
        try:
            page, token = list_executions(sfn, state_machine_arn, min(limit - len(listed), 1000), token)
        except StateMachineNotFound as missing:
            raise CliError(str(missing)) from None
        listed.extend(page)
        if not token:
            break
    newest = sorted(listed, key=lambda e: e.get("startDate") or 0, reverse=True)[:limit]
    with ThreadPoolExecutor(max_workers=READ_WORKERS) as pool:
        return [r for r in pool.map(lambda e: _rollout(sfn, e), newest) if r is not None]


def _cell(value: object) -> str:
    return "-" if value is None or value == "" else str(value)


def render_table(rows: list[FleetRow]) -> list[str]:
    """The table (one line per node group), then one `why` block per node group that is not current."""
    header = ("NODE GROUP", "OS", "LAUNCH TEMPLATE", "FINGERPRINT", "PARAM", "CURRENT", "LAST ROLLOUT")
    table: list[tuple[str, ...]] = [header]
    for row in rows:
        d = row.decision
        lt = d.launch_template
        version = d.current_version if d.current_version is not None else lt.version if lt else None
        template = (f"{lt.label()} v{version}" if version is not None else lt.label()) if lt else "none"
        last = row.last
        when = last.at.strftime("%Y-%m-%d %H:%M") if last and last.at else ""
        table.append(
            (
                f"{d.cluster}/{d.nodegroup}",
                _cell(d.node_os),
                template,
                _cell(d.current_fingerprint),
                f"v{d.current_parameter_version}" if d.current_parameter_version else "-",
                "yes" if row.current else f"no: {row.state.replace('_', ' ')}",
                f"{last.outcome} {when}".strip() if last else "-",
            )
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in table]
    not_current = [row for row in rows if not row.current]
    if not_current:
        lines.append("")
    for row in not_current:
        lines.append(f"{row.decision.cluster}/{row.decision.nodegroup}: {row.state.replace('_', ' ')}")
        lines.append(f"  why:    {row.why}")
        if row.remedy:
            lines.append(f"  remedy: {row.remedy}")
    return lines


def _run(args: argparse.Namespace) -> int:
    from eks_proxy.aws.clients import AwsClients
    from eks_proxy.aws.eks import list_clusters
    from eks_proxy.aws.ssm import ParameterNotFound, attach_ca_bundle, read_parameter
    from eks_proxy.cli.plan import _check_clusters
    from eks_proxy.cli.report import redact
    from eks_proxy.cli.status import STACK_OUTPUT, state_machine_from_stack
    from eks_proxy.config import Settings
    from eks_proxy.engine.fleet import SCHEMA_VERSION, counts, fleet_rows, newest_outcomes, summary_line
    from eks_proxy.engine.plan import ContextCache, plan_scope
    from eks_proxy.engine.scope import Scope
    from eks_proxy.proxy.value import ProxyValueError, parse_proxy_value

    if args.rollouts < 1:
        raise CliError("--rollouts must be at least 1")
    clients = AwsClients(region=args.region)
    try:
        parameter = read_parameter(clients.ssm, args.parameter)
    except ParameterNotFound:
        raise CliError(f"parameter {args.parameter} not found in {clients.region}") from None
    try:
        config = attach_ca_bundle(clients.ssm, parse_proxy_value(parameter.value))  # the CA bundle it names, if any
    except ProxyValueError as invalid:
        raise CliError(f"the value of {parameter.name} version {parameter.version} is invalid: {invalid}") from None
    clusters: tuple[str, ...] = tuple(dict.fromkeys(args.cluster or ()))
    if args.state_machine:
        arn, source = args.state_machine, "--state-machine"
    else:
        arn = state_machine_from_stack(clients.cloudformation, args.stack)
        source = f"stack {args.stack} output {STACK_OUTPUT}"
        clusters = clusters or _stack_clusters(clients.cloudformation, args.stack)
    clusters = clusters or tuple(list_clusters(clients.eks))
    _check_clusters(clients, clusters)
    settings = Settings(
        cluster_names=clusters,
        alarm_topic_arn="",
        opt_out_tag_key=args.opt_out_tag_key,
        os_hint_tag_key=args.os_hint_tag_key,
    )
    decisions = plan_scope(clients, settings, Scope(kind="all", clusters=clusters), config, ContextCache())
    rows = fleet_rows(decisions, newest_outcomes(recent_rollouts(clients.sfn, arn, args.rollouts)))
    line = summary_line(rows)
    if args.format == "json":
        document = {
            "schema_version": SCHEMA_VERSION,
            "region": clients.region,
            "parameter": {"name": parameter.name, "version": parameter.version},
            "state_machine": arn,
            "clusters": list(clusters),
            "nodegroups": [row.to_json() for row in rows],
            "summary": counts(rows),
            "summary_line": line,
        }
        print(json.dumps(document, indent=2))
    else:
        head = f"eks-proxy fleet: {', '.join(clusters) or 'no clusters'} in {clients.region}"
        print(f"{head}, current value {parameter.name} version {parameter.version}, rollouts from {source}\n")
        body = render_table(rows) if rows else ["no node groups found"]
        print(redact("\n".join(body)))
        print(f"\n{line}")
    return 0 if all(row.current for row in rows) else EXIT_NOT_CURRENT


run_fleet = run_aws(_run)
