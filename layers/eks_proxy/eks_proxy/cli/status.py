"""``eks-proxy status``: the latest rollouts and what each did per node group.

    eks-proxy status [--cluster NAME] [--state-machine ARN | --stack NAME] [--limit N] [--region R]

The rollouts are the executions of the rollout state machine (Step Functions ListExecutions/DescribeExecution, read
only). The state machine is `--state-machine ARN`, else the `RolloutStateMachineArn` output of the CloudFormation
stack `--stack` (default ``eks-proxy``, the stack name in samconfig.toml): CloudFormation names the state machine
itself (`RolloutStateMachine-<random>`), so the stack output is the one reliable way to find it by name.

Per node group, the outcome comes from the execution output (`results`: one record per node group, see
`eks_proxy.engine.waves.OUTCOMES`: rolled, up_to_date, skipped, gone, superseded, not_started, failed, rolled_back,
rollback_failed, moved_on); for an execution that failed or is still running, from the records its `plan_wave` and
`settle` steps returned (in its history; node groups of a wave still running show as "not reached").
`--cluster` keeps the latest rollouts that touched one cluster (and only its node groups). Exit 0; 2 with one line
when the stack or state machine does not exist.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from eks_proxy.cli.main import CliError, Subparsers
from eks_proxy.cli.plan import run_aws

DEFAULT_STACK = "eks-proxy"
STACK_OUTPUT = "RolloutStateMachineArn"
_RECORD_KEYS = {"cluster", "nodegroup", "outcome", "summary"}


@dataclass(frozen=True)
class NodegroupOutcome:
    """What the rollout's `record` step said about one node group."""

    cluster: str
    nodegroup: str
    outcome: str  # one of eks_proxy.engine.waves.OUTCOMES
    summary: str


@dataclass(frozen=True)
class Rollout:
    """One execution of the rollout state machine, as `status` shows it."""

    name: str
    status: str  # RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED
    started: datetime | None
    stopped: datetime | None
    trigger: str = ""
    change_id: str = ""
    parameter: str = ""
    targets: tuple[tuple[str, str], ...] = ()
    error: str = ""
    cause: str = ""
    nodegroups: tuple[NodegroupOutcome, ...] = field(default=())


def register(subparsers: Subparsers) -> None:
    """Add ``status``."""
    parser = subparsers.add_parser("status", help="the latest rollouts and their outcome per node group")
    parser.add_argument("--cluster", metavar="NAME", help="only rollouts and node groups of this cluster")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--state-machine", metavar="ARN", help="the rollout state machine's ARN")
    where.add_argument(
        "--stack", default=DEFAULT_STACK, metavar="NAME", help=f"the eks-proxy stack (default {DEFAULT_STACK})"
    )
    parser.add_argument("--limit", type=int, default=5, metavar="N", help="how many rollouts, newest first (5)")
    parser.add_argument("--region", help="AWS region (default: the SDK's, e.g. AWS_REGION)")
    parser.set_defaults(handler=run_status)


def state_machine_from_stack(cloudformation: Any, stack: str) -> str:
    """The `RolloutStateMachineArn` output of the stack; CliError when the stack or the output is missing."""
    from eks_proxy.aws.cloudformation import StackNotFound, stack_output

    try:
        arn = stack_output(cloudformation, stack, STACK_OUTPUT)
    except StackNotFound:
        raise CliError(f"stack {stack!r} not found: pass --stack NAME or --state-machine ARN") from None
    if arn is not None:
        return arn
    raise CliError(f"stack {stack!r} has no output {STACK_OUTPUT}: is it the eks-proxy stack?")


def _records(value: Any) -> Iterator[NodegroupOutcome]:
    """Every `record` result inside an execution output or a step result (the plan's `results`, at any depth)."""
    if isinstance(value, list):
        for item in value:
            yield from _records(item)
    elif isinstance(value, dict) and value.keys() >= _RECORD_KEYS:
        yield NodegroupOutcome(
            str(value["cluster"]), str(value["nodegroup"]), str(value["outcome"]), str(value["summary"])
        )
    elif isinstance(value, dict):
        for item in value.values():
            yield from _records(item)


def _history_records(sfn: Any, arn: str) -> list[NodegroupOutcome]:
    """The `record` step results in an execution's history (an execution without output: failed or running)."""
    from eks_proxy.aws.stepfunctions import succeeded_step_outputs

    found: list[NodegroupOutcome] = []
    for text in succeeded_step_outputs(sfn, arn):
        try:
            found.extend(_records(json.loads(text)))
        except ValueError:
            continue
    return found


def _rollout(sfn: Any, listed: dict[str, Any], cluster: str | None = None) -> Rollout | None:
    """The rollout of one listed execution; None when `cluster` is given and the rollout did not touch it."""
    from eks_proxy.aws.stepfunctions import describe_execution

    execution = describe_execution(sfn, listed["executionArn"])
    try:
        document = json.loads(execution.get("input") or "{}")
    except ValueError:
        document = {}
    document = document if isinstance(document, dict) else {}
    targets = [document.get("canary"), *(document.get("rest") or [])]
    parameter = document.get("parameter") or {}
    if cluster is not None and not any(isinstance(t, dict) and t.get("cluster") == cluster for t in targets):
        return None  # before reading its history: with --cluster, most executions may be other clusters'
    output_text = execution.get("output")
    records = list(_records(json.loads(output_text).get("results"))) if output_text else []
    if not output_text:
        records = _history_records(sfn, listed["executionArn"])
    unique = list(dict.fromkeys(records))
    return Rollout(
        name=str(execution.get("name") or listed.get("name")),
        status=str(execution.get("status")),
        started=execution.get("startDate"),
        stopped=execution.get("stopDate"),
        trigger=str(document.get("trigger") or ""),
        change_id=str(document.get("change_id") or ""),
        parameter=f"{parameter.get('name')}:{parameter.get('version')}" if parameter else "",
        targets=tuple((str(t.get("cluster")), str(t.get("nodegroup"))) for t in targets if isinstance(t, dict)),
        error=str(execution.get("error") or ""),
        cause=str(execution.get("cause") or ""),
        nodegroups=tuple(unique),
    )


# With --cluster, how many of the newest executions are looked at, at most, to find that cluster's rollouts.
CLUSTER_SCAN_LIMIT = 200


def find_rollouts(sfn: Any, state_machine_arn: str, limit: int = 5, cluster: str | None = None) -> list[Rollout]:
    """The `limit` newest rollouts (of `cluster`, when given) with their per-node-group outcomes (read-only).

    One state machine serves every cluster, so with `cluster` the executions are read newest first until `limit` of
    them touched it (at most CLUSTER_SCAN_LIMIT executions are looked at).
    """
    from eks_proxy.aws.stepfunctions import StateMachineNotFound, list_executions

    scan = limit if cluster is None else CLUSTER_SCAN_LIMIT
    found: list[Rollout] = []
    seen = 0
    token: str | None = None
    while True:
        try:
            page, token = list_executions(sfn, state_machine_arn, max(1, min(scan - seen, 1000)), token)
        except StateMachineNotFound as missing:
            raise CliError(str(missing)) from None
        executions = sorted(page, key=lambda e: e.get("startDate") or 0, reverse=True)
        for listed_execution in executions[: scan - seen]:
            rollout = _rollout(sfn, listed_execution, cluster)
            if rollout is not None:
                found.append(rollout)
                if len(found) == limit:
                    return found
        seen += min(len(executions), scan - seen)
        if not token or seen >= scan or not executions:
            return found


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z").strip() if moment else "-"


def render_rollouts(rollouts: list[Rollout], cluster: str | None) -> list[str]:
    """The lines `status` prints: one block per rollout, one line per node group."""
    lines: list[str] = []
    shown = [r for r in rollouts if cluster is None or any(c == cluster for c, _ in r.targets)]
    if not shown:
        return [f"no rollouts{f' for cluster {cluster}' if cluster else ''}"]
    for rollout in shown:
        lines.append(f"{_when(rollout.started)}  {rollout.status:<9}  {rollout.name}")
        about = f"trigger {rollout.trigger or '?'}, parameter {rollout.parameter or '?'}"
        lines.append(f"  {about}, change {rollout.change_id or '?'}")
        outcomes = {(n.cluster, n.nodegroup): n for n in rollout.nodegroups}
        width = max(len(f"{c}/{n}") for c, n in rollout.targets) if rollout.targets else 0
        for index, target in enumerate(rollout.targets):
            if cluster is not None and target[0] != cluster:
                continue
            label = f"{target[0]}/{target[1]}"
            found = outcomes.get(target)
            # The record summary starts with "<cluster>/<nodegroup> ": shown once, in the first column.
            text = f"{found.outcome:<15} {found.summary.removeprefix(label).strip()}" if found else "not reached"
            lines.append(f"  {label:<{width}}  {text}{'  (canary)' if index == 0 else ''}")
        if rollout.error:
            lines.append(f"  error {rollout.error}: {' '.join(rollout.cause.split())[:300]}")
    return lines


def _run(args: argparse.Namespace) -> int:
    from eks_proxy.aws.clients import AwsClients

    if args.limit < 1:
        raise CliError("--limit must be at least 1")
    clients = AwsClients(region=args.region)
    if args.state_machine:
        arn, source = args.state_machine, "--state-machine"
    else:
        arn = state_machine_from_stack(clients.cloudformation, args.stack)
        source = f"stack {args.stack} output {STACK_OUTPUT}"
    rollouts = find_rollouts(clients.sfn, arn, args.limit, args.cluster)
    print(f"eks-proxy status: {arn} ({source})\n")
    print("\n".join(render_rollouts(rollouts, args.cluster)))
    return 0


run_status = run_aws(_run)
