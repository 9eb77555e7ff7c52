"""The proxy parameter, always read at a pinned version (`name:version`), decrypted."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from eks_proxy.aws.errors import error_code


@dataclass(frozen=True)
class ParameterValue:
    """The proxy value at one version. `value` is secret-ish (may hold credentials): never log it."""

    name: str
    version: int
    value: str = field(repr=False)


class ParameterNotFound(LookupError):
    """The parameter (or that version of it) does not exist."""


def read_parameter(ssm: Any, name: str, version: int | None = None) -> ParameterValue:
    """The parameter's value at `version` (latest when None); SecureString values are decrypted."""
    selector = f"{name}:{version}" if version is not None else name
    try:
        parameter = ssm.get_parameter(Name=selector, WithDecryption=True)["Parameter"]
    except ClientError as error:
        if error_code(error) in {"ParameterNotFound", "ParameterVersionNotFound"}:
            raise ParameterNotFound(f"parameter {selector} not found") from None
        raise
    return ParameterValue(name=name, version=int(parameter["Version"]), value=str(parameter["Value"]))
