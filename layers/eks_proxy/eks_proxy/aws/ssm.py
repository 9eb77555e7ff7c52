"""The proxy parameter, always read at a pinned version (`name:version`), decrypted; and the CA bundle it names."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from eks_proxy.aws.errors import error_code
from eks_proxy.proxy.ca_bundle import resolve_ca_bundle
from eks_proxy.proxy.value import ProxyConfig


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


def attach_ca_bundle(ssm: Any, config: ProxyConfig, allowed: str | None = None) -> ProxyConfig:
    """``config`` with the CA bundle its value names: read (latest version, decrypted) and validated.

    Unchanged when the value names none. ``allowed`` is the one bundle parameter the installation may read
    (CaBundleParameterName). A missing or invalid bundle raises CaBundleError (a ProxyValueError: every reader of
    the value already turns that into "invalid value, nothing changed").
    """
    name = config.ca_bundle_parameter
    if name is None:
        return config
    return config.with_ca_bundle(resolve_ca_bundle(name, lambda n: read_parameter(ssm, n).value, allowed=allowed))
