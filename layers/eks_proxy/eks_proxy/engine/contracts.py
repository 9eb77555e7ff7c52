"""Every boundary's input and output as one typed model, checked strictly: the one place to look for a shape.

Boundaries: the preflight and verify task inputs (`PreflightTask`, `VerifyTask`), and the rollout step's building
blocks (`NodegroupRef`, `ParameterRef`, `RefreshResult`, `UpdateRef`): the rollout step function's actions parse
their input with these and return their ``to_output()``, so a shape is written once.

Plain frozen dataclasses with explicit checks instead of pydantic models (importing pydantic and the Powertools
parser cost a cold start more than all the rest of a handler). Unknown keys are ignored, a missing optional key or
``null`` means "use the default", and anything else wrong raises `ValidationError` with one line naming the field.
Types are strict: ``"3"``, ``3.0`` and ``true`` are not integers (the state machine's ``validate_input`` step
already emits JSON integers).

Rules for a new model (so the module stays one way of doing things):

- read fields with the validators below (`document`, `string`, `integer`, `boolean`, `choice`, `required`,
  `eks_name`): one integer validator, one EKS name pattern (`EKS_NAME`: clusters up to 100 characters, node groups
  up to 63), one error format ``<field> must ..., got <value>``;
- a model the rollout step reads raises `InvalidRolloutInput` (the error name the state machine stops on): decorate
  its ``from_event`` with `rollout_input`, or call the step-side constructors (`NodegroupRef.from_step`);
- a model the step returns has ONE ``to_output()`` building its JSON; never hand-build the same dict twice.

>>> PreflightTask.from_event({"parameter": {"name": "/eks-proxy/config", "version": 3}, "registry": None})
PreflightTask(parameter=ParameterRef(name='/eks-proxy/config', version=3), registry=None, attempt=None, retries=None)
>>> VerifyTask.from_event({"cluster": "prod", "nodegroup": "ng a"})
Traceback (most recent call last):
...
eks_proxy.engine.contracts.ValidationError: nodegroup must match ^[0-9A-Za-z][A-Za-z0-9_-]*$, got 'ng a'
>>> NodegroupRef.from_step({"cluster": "prod", "nodegroup": "ng a"})
Traceback (most recent call last):
...
eks_proxy.engine.contracts.InvalidRolloutInput: invalid node group name: nodegroup must match ^[0-9A-Za-z][A-Za-z0-9_-]*$, got 'ng a'
"""  # noqa: E501

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, ParamSpec, TypeVar, overload

_PARAMETER_NAME = re.compile(r"/?[A-Za-z0-9_.\-/]+")
# EKS cluster and node group names: a letter or digit, then letters, digits, - and _ (lengths: see below).
EKS_NAME = re.compile(r"[0-9A-Za-z][A-Za-z0-9_-]*")
CLUSTER_NAME_MAX = 100
NODEGROUP_NAME_MAX = 63
_NAMESPACE = re.compile(r"([a-z0-9]([-a-z0-9]*[a-z0-9])?)?")  # empty: the function's default namespace
MAX_VERSION = 10**9  # a launch template or parameter version the step accepts

T = TypeVar("T")
P = ParamSpec("P")


class ValidationError(ValueError):
    """An input breaks its contract. Named like pydantic's error so the state machine sees the same name."""


class InvalidRolloutInput(ValidationError):
    """The rollout's execution input, a step input or the proxy value is invalid: the rollout changes nothing.

    The state machine stops on this error name (Lambda reports the class name), so every step-side model raises it.
    """


def rollout_input(parse: Callable[P, T]) -> Callable[P, T]:
    """Decorate a step-side ``from_event``: any `ValidationError` it raises becomes `InvalidRolloutInput`."""

    @functools.wraps(parse)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return parse(*args, **kwargs)
        except InvalidRolloutInput:
            raise
        except ValidationError as error:
            raise InvalidRolloutInput(str(error)) from None

    return wrapper


# --- validators: each takes the value and the field's name, returns the checked value (None when absent/null) ---


def document(value: Any, where: str) -> Mapping[str, Any]:
    """``value`` as a JSON object."""
    if not isinstance(value, Mapping):
        raise ValidationError(f"{where} must be a JSON object, got {type(value).__name__}")
    return value


def required(value: T | None, where: str) -> T:
    """``value`` unless it is ``None``."""
    if value is None:
        raise ValidationError(f"{where} is required")
    return value


def string(
    value: Any, where: str, *, max_length: int, min_length: int = 0, pattern: re.Pattern[str] | None = None
) -> str | None:
    """``value`` as a string within bounds (and matching ``pattern`` as a whole); ``None`` when null.

    >>> string("abc", "name", max_length=2)
    Traceback (most recent call last):
    ...
    eks_proxy.engine.contracts.ValidationError: name must have 0 to 2 characters, got 3
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{where} must be a string, got {type(value).__name__}")
    if not min_length <= len(value) <= max_length:
        raise ValidationError(f"{where} must have {min_length} to {max_length} characters, got {len(value)}")
    if pattern is not None and not pattern.fullmatch(value):  # fullmatch: a trailing newline does not pass
        raise ValidationError(f"{where} must match ^{pattern.pattern}$, got {value[:100]!r}")
    return value


@overload
def integer(value: Any, where: str, *, low: int, high: int | None = None, default: int) -> int: ...
@overload
def integer(value: Any, where: str, *, low: int, high: int | None = None, default: None = None) -> int | None: ...
def integer(value: Any, where: str, *, low: int, high: int | None = None, default: int | None = None) -> int | None:
    """``value`` as an integer from ``low`` to ``high`` (no upper bound: None); ``default`` when null.

    The only integer check of the inputs: ``"3"``, ``3.0`` and ``true`` are refused.

    >>> integer(None, "waits", low=0, default=0), integer(5, "waits", low=0, high=9)
    (0, 5)
    >>> integer(True, "waits", low=0, high=9)
    Traceback (most recent call last):
    ...
    eks_proxy.engine.contracts.ValidationError: waits must be an integer from 0 to 9, got 'True'
    """
    if value is None:
        return default
    bounds = f"from {low} to {high}" if high is not None else f">= {low}"
    if isinstance(value, bool) or not isinstance(value, int):  # bool is an int subclass in Python
        raise ValidationError(f"{where} must be an integer {bounds}, got {str(value)[:40]!r}")
    if value < low or (high is not None and value > high):
        raise ValidationError(f"{where} must be an integer {bounds}, got {value}")
    return value


def boolean(value: Any, where: str, *, default: bool) -> bool:
    """``value`` as a JSON boolean; ``default`` when null."""
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ValidationError(f"{where} must be true or false")
    return value


def choice(value: Any, where: str, choices: Collection[str]) -> str:
    """``value`` as one of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ValidationError(f"{where} must be one of {sorted(choices)}, got {str(value)[:40]!r}")
    return value


def eks_name(value: Any, where: str, *, max_length: int) -> str:
    """A required EKS cluster (``max_length`` 100) or node group (63) name."""
    name = string(value, where, min_length=1, max_length=max_length, pattern=EKS_NAME)
    return required(name, where)


# --- dispatch: the EventBridge events of the four triggers ---------------------------------------------------------
#
# Only what scoping needs is extracted; everything else in an event is ignored, so new fields AWS adds never break
# parsing. CloudTrail payloads are read defensively:
#
# - EKS: `requestParameters.name` is the cluster (older records used `clusterName`), `nodegroupName` the node group.
# - EC2 wraps its payloads: `requestParameters.CreateLaunchTemplateVersionRequest.LaunchTemplateId`,
#   `responseElements.CreateLaunchTemplateVersionResponse.launchTemplateVersion.{launchTemplateId,versionNumber}`;
#   user data shows up as `<sensitiveDataRemoved>` and is never needed: the current state is re-read instead.

TriggerKind = Literal["ssm", "nodegroup", "launch_template", "sweep"]
_SCHEDULE_SOURCES = frozenset({"aws.events", "aws.scheduler"})


class EventError(ValidationError):
    """An event none of the four triggers produces (one line)."""


@dataclass(frozen=True)
class Caller:
    """Who made a CloudTrail call: enough to drop our own calls and those of EKS itself."""

    arn: str | None = None
    issuer_arn: str | None = None
    invoked_by: str | None = None
    source_ip: str | None = None


@dataclass(frozen=True)
class Trigger:
    """One parsed event, normalised for scoping. Fields not relevant to `kind` are None."""

    kind: TriggerKind
    event_id: str
    event_name: str = ""
    parameter_name: str | None = None
    operation: str | None = None
    cluster: str | None = None
    nodegroup: str | None = None
    launch_template_id: str | None = None
    launch_template_name: str | None = None
    launch_template_version: int | None = None
    launch_template_tags: dict[str, str] = field(default_factory=dict)
    error_code: str | None = None
    caller: Caller = field(default_factory=Caller)
    after: str | None = None  # sweep only: the execution whose success started it (the next batch of a large scope)


@dataclass(frozen=True)
class _Envelope:
    """The EventBridge envelope every trigger arrives in (`detail` left to the trigger's own parser)."""

    id: str
    detail: Mapping[str, Any]

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> _Envelope:
        for key in ("version", "source", "account", "region", "detail-type"):
            required(string(event.get(key), key, max_length=256), key)
        event_id = required(string(event.get("id"), "id", max_length=256), "id")
        when = required(string(event.get("time"), "time", max_length=64), "time")
        try:
            datetime.fromisoformat(when)
        except ValueError:
            raise ValidationError(f"time must be an ISO 8601 date and time, got {when[:40]!r}") from None
        resources = event.get("resources")
        if not isinstance(resources, list) or not all(isinstance(r, str) for r in resources):
            raise ValidationError("resources must be a list of strings")
        return cls(id=event_id, detail=document(required(event.get("detail"), "detail"), "detail"))


def _text(doc: Mapping[str, Any], key: str, where: str, *, needed: bool = False) -> str | None:
    """An optional (or ``needed``) string field of a CloudTrail record."""
    value = string(doc.get(key), f"{where}.{key}", max_length=100_000)
    return required(value, f"{where}.{key}") if needed else value


def _payload(doc: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """`requestParameters` / `responseElements`: an object, or empty when null."""
    value = doc.get(key)
    return {} if value is None else document(value, f"detail.{key}")


def _get(data: Any, *keys: str) -> Any:
    """Follow `keys` through nested dicts, each key matched case-insensitively; None when any step is missing."""
    for key in keys:
        if not isinstance(data, dict):
            return None
        if key in data:
            data = data[key]
            continue
        lowered = key.lower()
        data = next((v for k, v in data.items() if isinstance(k, str) and k.lower() == lowered), None)
    return data


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _items(value: Any) -> list[Any]:
    """CloudTrail renders EC2 lists as a list, as {"item": [...]}, or as the single element itself."""
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        inner = _get(value, "item")
        return _items(inner) if inner is not None else [value]
    return []


def _tags(spec: Any) -> dict[str, str]:
    """Tags from a request TagSpecification (specs holding `Tag` lists) or a response `tags` list (Key/Value)."""
    tags: dict[str, str] = {}
    for one in _items(spec):
        key = _str(_get(one, "Key"))
        if key:
            tags[key] = str(_get(one, "Value") or "")
        else:
            tags |= _tags(_get(one, "Tag"))
    return tags


def _caller(detail: Mapping[str, Any]) -> Caller:
    identity = document(detail.get("userIdentity") or {}, "detail.userIdentity")
    context = document(identity.get("sessionContext") or {}, "detail.userIdentity.sessionContext")
    issuer = document(context.get("sessionIssuer") or {}, "detail.userIdentity.sessionContext.sessionIssuer")
    return Caller(
        arn=_text(identity, "arn", "detail.userIdentity"),
        issuer_arn=_text(issuer, "arn", "detail.userIdentity.sessionContext.sessionIssuer"),
        invoked_by=_text(identity, "invokedBy", "detail.userIdentity"),
        source_ip=_text(detail, "sourceIPAddress", "detail"),
    )


def _eks_trigger(event_id: str, detail: Mapping[str, Any]) -> Trigger:
    req, resp = _payload(detail, "requestParameters"), _payload(detail, "responseElements")
    node = _get(resp, "nodegroup") or {}
    lt = _get(req, "launchTemplate") or _get(node, "launchTemplate") or {}
    return Trigger(
        kind="nodegroup",
        event_id=event_id,
        event_name=_text(detail, "eventName", "detail", needed=True) or "",
        cluster=_str(_get(req, "name")) or _str(_get(req, "clusterName")) or _str(_get(node, "clusterName")),
        nodegroup=_str(_get(req, "nodegroupName")) or _str(_get(node, "nodegroupName")),
        launch_template_id=_str(_get(lt, "id")),
        launch_template_name=_str(_get(lt, "name")),
        launch_template_version=_int(_get(lt, "version")),
        error_code=_text(detail, "errorCode", "detail"),
        caller=_caller(detail),
    )


def _ec2_trigger(event_id: str, detail: Mapping[str, Any]) -> Trigger:
    name = _text(detail, "eventName", "detail", needed=True) or ""
    request, response = _payload(detail, "requestParameters"), _payload(detail, "responseElements")
    req = _get(request, f"{name}Request") or request
    resp = _get(response, f"{name}Response") or response
    created = _get(resp, "launchTemplateVersion") or _get(resp, "launchTemplate") or {}
    return Trigger(
        kind="launch_template",
        event_id=event_id,
        event_name=name,
        launch_template_id=_str(_get(created, "launchTemplateId")) or _str(_get(req, "LaunchTemplateId")),
        launch_template_name=_str(_get(created, "launchTemplateName")) or _str(_get(req, "LaunchTemplateName")),
        launch_template_version=_int(_get(created, "versionNumber")),
        launch_template_tags=_tags(_get(req, "TagSpecification")) or _tags(_get(created, "tags")),
        error_code=_text(detail, "errorCode", "detail"),
        caller=_caller(detail),
    )


def parse_trigger(event: Mapping[str, Any]) -> Trigger:
    """Parse one EventBridge event of the dispatch rules; raise `EventError` (one line) for anything else.

    >>> t = parse_trigger({"version": "0", "id": "e1", "detail-type": "Scheduled Event", "source": "aws.events",
    ...     "account": "1", "time": "2026-01-01T00:00:00Z", "region": "eu-west-1", "resources": [], "detail": {}})
    >>> t.kind
    'sweep'
    """
    if not isinstance(event, Mapping):
        raise EventError(f"unsupported event: a {type(event).__name__}, not a JSON object")
    source, detail_type = event.get("source"), event.get("detail-type")
    try:
        if source == "aws.ssm" and detail_type == "Parameter Store Change":
            envelope = _Envelope.from_event(event)
            operation = _text(envelope.detail, "operation", "detail", needed=True)
            _text(envelope.detail, "type", "detail")
            return Trigger(
                kind="ssm",
                event_id=envelope.id,
                event_name=operation or "",
                parameter_name=_text(envelope.detail, "name", "detail", needed=True),
                operation=operation,
            )
        if detail_type == "Scheduled Event" and source in _SCHEDULE_SOURCES:
            envelope = _Envelope.from_event({**event, "detail": event.get("detail") or {}})
            after = _str(envelope.detail.get("after"))
            return Trigger(
                kind="sweep", event_id=envelope.id, event_name="schedule", after=after[:80] if after else None
            )
        if detail_type == "AWS API Call via CloudTrail":
            envelope = _Envelope.from_event(event)
            event_source = _text(envelope.detail, "eventSource", "detail", needed=True)
            _text(envelope.detail, "eventName", "detail", needed=True)
            _text(envelope.detail, "eventID", "detail")
            if event_source == "eks.amazonaws.com":
                return _eks_trigger(envelope.id, envelope.detail)
            if event_source == "ec2.amazonaws.com":
                return _ec2_trigger(envelope.id, envelope.detail)
    except ValidationError as error:
        raise EventError(f"malformed {detail_type!r} event: {error}") from None
    raise EventError(f"unsupported event: source={source!r} detail-type={detail_type!r}")


# --- models ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParameterRef:
    """The proxy parameter at a pinned version (``None``: the latest)."""

    name: str
    version: int | None = None

    @classmethod
    def from_event(cls, event: Any, where: str = "parameter") -> ParameterRef:
        """``{"name": "/eks-proxy/config", "version": 3}``; ``where`` prefixes the field names in errors."""
        doc = document(event, where)
        name = string(doc.get("name"), f"{where}.name", min_length=1, max_length=2048, pattern=_PARAMETER_NAME)
        return cls(
            name=required(name, f"{where}.name"),
            version=integer(doc.get("version"), f"{where}.version", low=1),
        )

    @classmethod
    @rollout_input
    def pinned(cls, event: Any, expected_name: str, where: str = "parameter") -> ParameterRef:
        """Step side: the configured parameter (``expected_name``) at a required version; else InvalidRolloutInput."""
        doc = document(event, where)
        name = doc.get("name")
        if name != expected_name:
            raise ValidationError(f"{where} must be {expected_name!r}, got {str(name)[:100]!r}")
        version = integer(doc.get("version"), f"{where}.version", low=1, high=MAX_VERSION)
        return cls(name=expected_name, version=required(version, f"{where}.version"))

    def to_output(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version}


@dataclass(frozen=True)
class NodegroupRef:
    """One managed node group, ``{"cluster", "nodegroup"}``: the identity every per-node-group step carries.

    >>> NodegroupRef.from_step({"cluster": "prod", "nodegroup": "ng-a", "other": 1}).to_output()
    {'cluster': 'prod', 'nodegroup': 'ng-a'}
    """

    cluster: str
    nodegroup: str

    @classmethod
    def from_event(cls, event: Any, where: str = "") -> NodegroupRef:
        """Task side (verify): errors name the field (``nodegroup must match ...``); ``where`` prefixes them."""
        doc = document(event, where.rstrip(".") or "task input")
        return cls(
            cluster=eks_name(doc.get("cluster"), f"{where}cluster", max_length=CLUSTER_NAME_MAX),
            nodegroup=eks_name(doc.get("nodegroup"), f"{where}nodegroup", max_length=NODEGROUP_NAME_MAX),
        )

    @classmethod
    def from_step(cls, event: Any, where: str = "") -> NodegroupRef:
        """Step side: the same checks, raising `InvalidRolloutInput` ``invalid cluster name: ...`` (or node group)."""
        if not isinstance(event, Mapping):
            raise InvalidRolloutInput("every node group must be an object {cluster, nodegroup}")
        try:
            cluster = eks_name(event.get("cluster"), f"{where}cluster", max_length=CLUSTER_NAME_MAX)
        except ValidationError as error:
            raise InvalidRolloutInput(f"invalid cluster name: {error}") from None
        try:
            nodegroup = eks_name(event.get("nodegroup"), f"{where}nodegroup", max_length=NODEGROUP_NAME_MAX)
        except ValidationError as error:
            raise InvalidRolloutInput(f"invalid node group name: {error}") from None
        return cls(cluster, nodegroup)

    @property
    def label(self) -> str:
        """``cluster/nodegroup``, as logs and summaries print it."""
        return f"{self.cluster}/{self.nodegroup}"

    def to_output(self) -> dict[str, str]:
        return {"cluster": self.cluster, "nodegroup": self.nodegroup}


@dataclass(frozen=True)
class TemplateRef:
    """The launch template a refresh worked on, ``{"id", "name"}`` (either may be null, not both)."""

    id: str | None = None
    name: str | None = None

    def to_output(self) -> dict[str, str | None]:
        return {"id": self.id, "name": self.name}


@dataclass(frozen=True)
class RefreshResult:
    """The output of the ``refresh`` step, and the ``refresh`` field later steps read back (`from_event`).

    ``outcome`` is a reconcile outcome (``create_version``, ``roll_existing``, ``up_to_date``, ``out_of_scope``) or
    one of the outcomes that wrote nothing (`not_refreshed`): ``waiting`` (with ``next_wait_seconds``) and
    ``superseded``.

    >>> RefreshResult.not_refreshed("superseded", "newer version", waits=0).to_output()["needs_update"]
    False
    """

    outcome: str
    needs_update: bool = False
    reason: str = ""
    remedy: str = ""
    node_os: str | None = None
    launch_template: TemplateRef | None = None
    version_before: int | None = None
    version_after: int | None = None
    fingerprint: str | None = None
    waits: int = 0
    next_wait_seconds: int | None = None  # `waiting` only: when to refresh again

    @classmethod
    def not_refreshed(
        cls, outcome: str, reason: str, *, waits: int, next_wait_seconds: int | None = None
    ) -> RefreshResult:
        """A refresh that wrote nothing and rolls nothing (``waiting``, ``superseded``)."""
        return cls(outcome=outcome, reason=reason, waits=waits, next_wait_seconds=next_wait_seconds)

    @classmethod
    @rollout_input
    def from_event(cls, event: Any, where: str = "refresh") -> RefreshResult:
        """The ``refresh`` field of a later step's input (absent fields take their defaults; wrong types refused)."""
        doc = document({} if event is None else event, where)
        lt = doc.get("launch_template")
        template = None
        if lt is not None:
            lt = document(lt, f"{where}.launch_template")
            lt_id = string(lt.get("id"), f"{where}.launch_template.id", max_length=255)
            lt_name = string(lt.get("name"), f"{where}.launch_template.name", max_length=255)
            template = TemplateRef(lt_id, lt_name) if lt_id or lt_name else None
        return cls(
            outcome=string(doc.get("outcome"), f"{where}.outcome", max_length=40) or "",
            needs_update=boolean(doc.get("needs_update"), f"{where}.needs_update", default=False),
            reason=string(doc.get("reason"), f"{where}.reason", max_length=10_000) or "",
            remedy=string(doc.get("remedy"), f"{where}.remedy", max_length=10_000) or "",
            node_os=string(doc.get("node_os"), f"{where}.node_os", max_length=40),
            launch_template=template,
            version_before=integer(doc.get("version_before"), f"{where}.version_before", low=1, high=MAX_VERSION),
            version_after=integer(doc.get("version_after"), f"{where}.version_after", low=1, high=MAX_VERSION),
            fingerprint=string(doc.get("fingerprint"), f"{where}.fingerprint", max_length=256),
            waits=integer(doc.get("waits"), f"{where}.waits", low=0, default=0),
            next_wait_seconds=integer(doc.get("next_wait_seconds"), f"{where}.next_wait_seconds", low=0),
        )

    def to_output(self) -> dict[str, Any]:
        """The step's JSON result (``next_wait_seconds`` only when set)."""
        out: dict[str, Any] = {
            "outcome": self.outcome,
            "needs_update": self.needs_update,
            "reason": self.reason,
            "remedy": self.remedy,
            "node_os": self.node_os,
            "launch_template": self.launch_template.to_output() if self.launch_template else None,
            "version_before": self.version_before,
            "version_after": self.version_after,
            "fingerprint": self.fingerprint,
            "waits": self.waits,
        }
        if self.next_wait_seconds is not None:
            out["next_wait_seconds"] = self.next_wait_seconds
        return out


@dataclass(frozen=True)
class UpdateRef:
    """The ``update`` field a poll reads back: ``{"update_id", "polls"}`` of the update ``start_update`` started."""

    update_id: str
    polls: int = 0

    @classmethod
    @rollout_input
    def from_event(cls, event: Any, where: str = "update") -> UpdateRef:
        doc = document({} if event is None else event, where)
        update_id = string(doc.get("update_id"), f"{where}.update_id", min_length=1, max_length=200)
        if update_id is None:
            raise ValidationError(f"{where}.update_id is missing")
        return cls(update_id, integer(doc.get("polls"), f"{where}.polls", low=0, default=0))


@dataclass(frozen=True)
class PreflightTask:
    """Preflight input: ``{"parameter": {"name", "version"}, "registry": "host:port", "attempt", "retries"}``.

    ``registry`` ``None`` or ``""``: the function's ``REGISTRY_PROBE``. ``attempt`` (the state's
    ``$$.State.RetryCount``) and ``retries`` (the Retry's ``MaxAttempts`` for ``PreflightNotReady``): while
    ``attempt < retries`` a transient failure is raised for the state machine to retry; ``None``: never raised.
    """

    parameter: ParameterRef
    registry: str | None = None
    attempt: int | None = None
    retries: int | None = None

    @property
    def retry_left(self) -> bool:
        """The state machine will probe again if this attempt fails transiently."""
        return self.attempt is not None and self.retries is not None and self.attempt < self.retries

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> PreflightTask:
        """The checked task, or `ValidationError` naming the first field that breaks the contract."""
        doc = document(event, "task input")
        if doc.get("parameter") is None:
            raise ValidationError("parameter is required")
        return cls(
            parameter=ParameterRef.from_event(doc["parameter"]),
            registry=string(doc.get("registry"), "registry", max_length=300),
            attempt=integer(doc.get("attempt"), "attempt", low=0, high=100),
            retries=integer(doc.get("retries"), "retries", low=0, high=100),
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
        target = NodegroupRef.from_event(event)
        return cls(
            cluster=target.cluster,
            nodegroup=target.nodegroup,
            image=string(event.get("image"), "image", max_length=512),
            namespace=string(event.get("namespace"), "namespace", max_length=63, pattern=_NAMESPACE),
            timeout_seconds=integer(event.get("timeout_seconds"), "timeout_seconds", low=0, high=840),
        )
