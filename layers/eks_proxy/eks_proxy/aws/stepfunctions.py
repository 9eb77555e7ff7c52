"""Step Functions: start a rollout execution (dispatch), look one up by its deterministic name (the sweep's retries),
read executions back (`eks-proxy status` and `fleet`)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from eks_proxy.aws.errors import error_code


@dataclass(frozen=True)
class ExecutionState:
    """What DescribeExecution says about one execution (no input or output: they are not needed here)."""

    name: str
    status: str  # RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED (PENDING_REDRIVE counts as ended)
    started_at: datetime | None = None
    stopped_at: datetime | None = None

    @property
    def running(self) -> bool:
        return self.status == "RUNNING"


def execution_arn(state_machine_arn: str, name: str) -> str:
    """The ARN an execution of `state_machine_arn` named `name` has (StartExecution's documented form).

    >>> execution_arn("arn:aws:states:eu-west-1:123456789012:stateMachine:eks-proxy-rollout", "sweep-1a")
    'arn:aws:states:eu-west-1:123456789012:execution:eks-proxy-rollout:sweep-1a'
    """
    prefix, _, machine = state_machine_arn.rpartition(":stateMachine:")
    return f"{prefix}:execution:{machine}:{name}"


def find_execution(sfn: Any, state_machine_arn: str, name: str) -> ExecutionState | None:
    """DescribeExecution of the execution named `name`; None when there is none."""
    try:
        found = sfn.describe_execution(executionArn=execution_arn(state_machine_arn, name))
    except ClientError as error:
        if error_code(error) == "ExecutionDoesNotExist":
            return None
        raise
    return ExecutionState(
        name=name, status=str(found["status"]), started_at=found.get("startDate"), stopped_at=found.get("stopDate")
    )


class StateMachineNotFound(LookupError):
    """The state machine ARN names nothing (or is malformed)."""


def start_execution(sfn: Any, state_machine_arn: str, name: str, document: Mapping[str, Any]) -> str | None:
    """Start `name` with `document` as its input; its ARN, or None when an execution of that name already exists
    (the name is the dedup key: a duplicate change finds its rollout already started)."""
    try:
        started = sfn.start_execution(stateMachineArn=state_machine_arn, name=name, input=json.dumps(document))
    except ClientError as error:
        if error_code(error) == "ExecutionAlreadyExists":
            return None
        raise
    return str(started["executionArn"])


def list_executions(
    sfn: Any, state_machine_arn: str, max_results: int, token: str | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of executions (ListExecutions' items) and the next page's token; `StateMachineNotFound`."""
    page_args = {"nextToken": token} if token else {}
    try:
        listed = sfn.list_executions(stateMachineArn=state_machine_arn, maxResults=max_results, **page_args)
    except ClientError as error:
        if error_code(error) in {"StateMachineDoesNotExist", "InvalidArn"}:
            raise StateMachineNotFound(f"state machine {state_machine_arn} not found") from None
        raise
    return list(listed.get("executions", [])), listed.get("nextToken") or None


def describe_execution(sfn: Any, execution_arn: str) -> dict[str, Any]:
    """DescribeExecution's answer (name, status, input, output, dates, error, cause)."""
    return dict(sfn.describe_execution(executionArn=execution_arn))


def succeeded_step_outputs(sfn: Any, execution_arn: str) -> Iterator[str]:
    """The output text of every Lambda or service task that succeeded in an execution's history (paginated)."""
    for page in sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn):
        for event in page.get("events", []):
            for key in ("lambdaFunctionSucceededEventDetails", "taskSucceededEventDetails"):
                text = (event.get(key) or {}).get("output")
                if text:
                    yield str(text)


def execution_status(sfn: Any, arn: str) -> str | None:
    """The status of the execution `arn` (RUNNING, SUCCEEDED, ...); `GONE` when it does not exist; None when unknown
    (no permission, throttled): the lease's caller then relies on the lease's expiry."""
    try:
        return str(sfn.describe_execution(executionArn=arn)["status"])
    except ClientError as error:
        if error_code(error) in {"ExecutionDoesNotExist", "InvalidArn"}:
            return "GONE"
        return None
