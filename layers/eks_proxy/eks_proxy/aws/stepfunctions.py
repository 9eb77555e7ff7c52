"""Step Functions: an execution of the rollout state machine looked up by its (deterministic) name."""

from __future__ import annotations

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
