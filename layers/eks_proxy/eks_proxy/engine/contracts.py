"""The task inputs the rollout state machine sends the preflight and verify functions, checked strictly.

Plain frozen dataclasses with explicit checks instead of pydantic models: importing pydantic and the Powertools
parser cost a cold start ~60 ms for two tiny documents (issue 3). Unknown keys are ignored, a missing optional
key or ``null`` means "use the function's default", and anything else wrong raises `ValidationError` with one
line naming the field. Types are strict: ``"3"``, ``3.0`` and ``true`` are not integers (the state machine's
``validate_input`` step already emits JSON integers).

>>> PreflightTask.from_event({"parameter": {"name": "/eks-proxy/config", "version": 3}, "registry": None})
PreflightTask(parameter=ParameterRef(name='/eks-proxy/config', version=3), registry=None)
>>> VerifyTask.from_event({"cluster": "prod", "nodegroup": "ng a"})
Traceback (most recent call last):
...
eks_proxy.engine.contracts.ValidationError: nodegroup must match ^[0-9A-Za-z][A-Za-z0-9_-]*$, got 'ng a'
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_PARAMETER_NAME = re.compile(r"/?[A-Za-z0-9_.\-/]+")
_NODEGROUP = re.compile(r"[0-9A-Za-z][A-Za-z0-9_-]*")
_NAMESPACE = re.compile(r"([a-z0-9]([-a-z0-9]*[a-z0-9])?)?")  # empty: the function's default namespace


class ValidationError(ValueError):
    """A task input breaks its contract. Named like pydantic's error so the state machine sees the same name."""


def _document(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValidationError(f"{where} must be a JSON object, got {type(value).__name__}")
    return value


def _string(
    doc: Mapping[str, Any],
    key: str,
    where: str,
    *,
    max_length: int,
    min_length: int = 0,
    pattern: re.Pattern[str] | None = None,
) -> str | None:
    """``doc[key]`` as a string within bounds; ``None`` when absent or null."""
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{where} must be a string, got {type(value).__name__}")
    if not min_length <= len(value) <= max_length:
        raise ValidationError(f"{where} must have {min_length} to {max_length} characters, got {len(value)}")
    if pattern is not None and not pattern.fullmatch(value):  # fullmatch: a trailing newline does not pass
        raise ValidationError(f"{where} must match ^{pattern.pattern}$, got {value[:100]!r}")
    return value


def _required(value: str | None, where: str) -> str:
    if value is None:
        raise ValidationError(f"{where} is required")
    return value


def _integer(doc: Mapping[str, Any], key: str, where: str, *, low: int, high: int | None = None) -> int | None:
    """``doc[key]`` as an integer from ``low`` to ``high``; ``None`` when absent or null."""
    value = doc.get(key)
    if value is None:
        return None
    bounds = f"from {low} to {high}" if high is not None else f">= {low}"
    if isinstance(value, bool) or not isinstance(value, int):  # bool is an int subclass in Python
        raise ValidationError(f"{where} must be an integer {bounds}, got {str(value)[:40]!r}")
    if value < low or (high is not None and value > high):
        raise ValidationError(f"{where} must be an integer {bounds}, got {value}")
    return value


@dataclass(frozen=True)
class ParameterRef:
    """The proxy parameter at a pinned version (``None``: the latest)."""

    name: str
    version: int | None = None

    @classmethod
    def from_event(cls, event: Any, where: str = "parameter") -> ParameterRef:
        """``{"name": "/eks-proxy/config", "version": 3}``; ``where`` prefixes the field names in errors."""
        doc = _document(event, where)
        name = _string(doc, "name", f"{where}.name", min_length=1, max_length=2048, pattern=_PARAMETER_NAME)
        return cls(name=_required(name, f"{where}.name"), version=_integer(doc, "version", f"{where}.version", low=1))


@dataclass(frozen=True)
class PreflightTask:
    """Preflight input: ``{"parameter": {"name", "version"}, "registry": "host:port"}``.

    ``registry`` ``None`` or ``""``: the function's ``REGISTRY_PROBE``.
    """

    parameter: ParameterRef
    registry: str | None = None

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> PreflightTask:
        """The checked task, or `ValidationError` naming the first field that breaks the contract."""
        doc = _document(event, "task input")
        if doc.get("parameter") is None:
            raise ValidationError("parameter is required")
        return cls(
            parameter=ParameterRef.from_event(doc["parameter"]),
            registry=_string(doc, "registry", "registry", max_length=300),
        )


@dataclass(frozen=True)
class VerifyTask:
    """Verify input: ``{"cluster", "nodegroup", "image", "namespace", "timeout_seconds"}``.

    ``image``, ``namespace``, ``timeout_seconds`` ``None`` (or empty, or 0): ``VERIFY_IMAGE``, ``VERIFY_NAMESPACE``,
    ``VERIFY_TIMEOUT_SECONDS``.
    """

    cluster: str
    nodegroup: str
    image: str | None = None
    namespace: str | None = None
    timeout_seconds: int | None = None

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> VerifyTask:
        """The checked task, or `ValidationError` naming the first field that breaks the contract."""
        doc = _document(event, "task input")
        cluster = _string(doc, "cluster", "cluster", min_length=1, max_length=100)
        nodegroup = _string(doc, "nodegroup", "nodegroup", min_length=1, max_length=63, pattern=_NODEGROUP)
        return cls(
            cluster=_required(cluster, "cluster"),
            nodegroup=_required(nodegroup, "nodegroup"),
            image=_string(doc, "image", "image", max_length=512),
            namespace=_string(doc, "namespace", "namespace", max_length=63, pattern=_NAMESPACE),
            timeout_seconds=_integer(doc, "timeout_seconds", "timeout_seconds", low=0, high=840),
        )
