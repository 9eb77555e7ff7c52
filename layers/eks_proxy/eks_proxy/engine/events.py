"""Powertools Parser models of the four triggers of the dispatch function, and `parse_trigger(event)`.

The models only extract what scoping needs; everything else in the event is ignored, so new fields AWS adds never
break parsing. CloudTrail payloads are read defensively:

- EKS: `requestParameters.name` is the cluster (older records used `clusterName`), `nodegroupName` the node group.
- EC2 wraps its payloads: `requestParameters.CreateLaunchTemplateVersionRequest.LaunchTemplateId`,
  `responseElements.CreateLaunchTemplateVersionResponse.launchTemplateVersion.{launchTemplateId,versionNumber}`;
  user data shows up as `<sensitiveDataRemoved>` and is never needed: the current state is re-read instead.

>>> t = parse_trigger({"version": "0", "id": "e1", "detail-type": "Scheduled Event", "source": "aws.events",
...     "account": "1", "time": "2026-01-01T00:00:00Z", "region": "eu-west-1", "resources": [], "detail": {}})
>>> t.kind
'sweep'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from pydantic import BaseModel, ConfigDict, Field, ValidationError

TriggerKind = Literal["ssm", "nodegroup", "launch_template", "sweep"]


class EventError(ValueError):
    """An event none of the four triggers produces (one line)."""


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class SsmChangeDetail(_Lenient):
    """`detail` of an `aws.ssm` "Parameter Store Change" event (no value in it, by design)."""

    name: str
    operation: str
    type: str | None = None


class SsmChangeEvent(EventBridgeModel):
    detail: SsmChangeDetail


class SessionIssuer(_Lenient):
    arn: str | None = None
    user_name: str | None = Field(default=None, alias="userName")


class SessionContext(_Lenient):
    session_issuer: SessionIssuer | None = Field(default=None, alias="sessionIssuer")


class UserIdentity(_Lenient):
    type: str | None = None
    arn: str | None = None
    invoked_by: str | None = Field(default=None, alias="invokedBy")
    session_context: SessionContext | None = Field(default=None, alias="sessionContext")


class CloudTrailDetail(_Lenient):
    """`detail` of an "AWS API Call via CloudTrail" event; payloads stay loose dicts (parsed below)."""

    event_source: str = Field(alias="eventSource")
    event_name: str = Field(alias="eventName")
    event_id: str | None = Field(default=None, alias="eventID")
    error_code: str | None = Field(default=None, alias="errorCode")
    user_identity: UserIdentity = Field(default_factory=UserIdentity, alias="userIdentity")
    source_ip_address: str | None = Field(default=None, alias="sourceIPAddress")
    request_parameters: dict[str, Any] | None = Field(default=None, alias="requestParameters")
    response_elements: dict[str, Any] | None = Field(default=None, alias="responseElements")


class CloudTrailEvent(EventBridgeModel):
    detail: CloudTrailDetail


class ScheduleEvent(EventBridgeModel):
    detail: dict[str, Any] = Field(default_factory=dict)


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


def _caller(detail: CloudTrailDetail) -> Caller:
    identity = detail.user_identity
    issuer = identity.session_context.session_issuer if identity.session_context else None
    return Caller(
        arn=identity.arn,
        issuer_arn=issuer.arn if issuer else None,
        invoked_by=identity.invoked_by,
        source_ip=detail.source_ip_address,
    )


def _eks_trigger(event: CloudTrailEvent) -> Trigger:
    d = event.detail
    req, resp = d.request_parameters or {}, d.response_elements or {}
    node = _get(resp, "nodegroup") or {}
    lt = _get(req, "launchTemplate") or _get(node, "launchTemplate") or {}
    return Trigger(
        kind="nodegroup",
        event_id=event.id,
        event_name=d.event_name,
        cluster=_str(_get(req, "name")) or _str(_get(req, "clusterName")) or _str(_get(node, "clusterName")),
        nodegroup=_str(_get(req, "nodegroupName")) or _str(_get(node, "nodegroupName")),
        launch_template_id=_str(_get(lt, "id")),
        launch_template_name=_str(_get(lt, "name")),
        launch_template_version=_int(_get(lt, "version")),
        error_code=d.error_code,
        caller=_caller(d),
    )


def _ec2_trigger(event: CloudTrailEvent) -> Trigger:
    d = event.detail
    name = d.event_name
    req = _get(d.request_parameters, f"{name}Request") or d.request_parameters or {}
    resp = _get(d.response_elements, f"{name}Response") or d.response_elements or {}
    created = _get(resp, "launchTemplateVersion") or _get(resp, "launchTemplate") or {}
    return Trigger(
        kind="launch_template",
        event_id=event.id,
        event_name=name,
        launch_template_id=_str(_get(created, "launchTemplateId")) or _str(_get(req, "LaunchTemplateId")),
        launch_template_name=_str(_get(created, "launchTemplateName")) or _str(_get(req, "LaunchTemplateName")),
        launch_template_version=_int(_get(created, "versionNumber")),
        launch_template_tags=_tags(_get(req, "TagSpecification")) or _tags(_get(created, "tags")),
        error_code=d.error_code,
        caller=_caller(d),
    )


def parse_trigger(event: dict[str, Any]) -> Trigger:
    """Parse one EventBridge event of the dispatch rules; raise `EventError` for anything else."""
    source, detail_type = event.get("source"), event.get("detail-type")
    try:
        if source == "aws.ssm" and detail_type == "Parameter Store Change":
            ssm = SsmChangeEvent.model_validate(event)
            return Trigger(
                kind="ssm",
                event_id=ssm.id,
                event_name=ssm.detail.operation,
                parameter_name=ssm.detail.name,
                operation=ssm.detail.operation,
            )
        if detail_type == "Scheduled Event" and source in {"aws.events", "aws.scheduler"}:
            schedule = ScheduleEvent.model_validate(event)
            after = _str(schedule.detail.get("after"))
            return Trigger(
                kind="sweep", event_id=schedule.id, event_name="schedule", after=after[:80] if after else None
            )
        if detail_type == "AWS API Call via CloudTrail":
            trail = CloudTrailEvent.model_validate(event)
            if trail.detail.event_source == "eks.amazonaws.com":
                return _eks_trigger(trail)
            if trail.detail.event_source == "ec2.amazonaws.com":
                return _ec2_trigger(trail)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise EventError(f"malformed {detail_type!r} event: {where}: {first['msg']}") from None
    raise EventError(f"unsupported event: source={source!r} detail-type={detail_type!r}")
