"""CloudFormation: read what the eks-proxy stack says (an output, a parameter) for the CLI."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from eks_proxy.aws.errors import error_code


class StackNotFound(LookupError):
    """The stack does not exist."""


def _stack(cloudformation: Any, stack: str) -> dict[str, Any]:
    try:
        stacks = cloudformation.describe_stacks(StackName=stack).get("Stacks") or []
    except ClientError as error:
        if error_code(error) == "ValidationError":  # CloudFormation's answer for a stack that does not exist
            raise StackNotFound(f"stack {stack!r} not found") from None
        raise
    return dict(stacks[0]) if stacks else {}


def stack_output(cloudformation: Any, stack: str, key: str) -> str | None:
    """The value of the stack's output `key` (None when it has none); `StackNotFound`."""
    for output in _stack(cloudformation, stack).get("Outputs") or []:
        if output.get("OutputKey") == key:
            return str(output["OutputValue"])
    return None


def stack_parameter(cloudformation: Any, stack: str, key: str) -> str | None:
    """The value of the stack's parameter `key` (None when it has none); `StackNotFound`."""
    for parameter in _stack(cloudformation, stack).get("Parameters") or []:
        if parameter.get("ParameterKey") == key:
            return str(parameter.get("ParameterValue", ""))
    return None
