"""The rollout step actions: what statemachine/rollout.asl.json calls through RolloutStepFunction.

Every task sends `{"action": "<name>", ...}`; `run_step(event, step)` runs the action and returns its JSON result.
Errors the state machine reacts to are raised as named exceptions (Lambda reports the class name as the error):

- `InvalidRolloutInput`  bad execution input or an invalid proxy value: the rollout stops before any change;
- `NodegroupBusy`        EKS `ResourceInUseException` (another update runs): retried with backoff;
- `ThrottlingException`  AWS throttled us beyond the SDK's own retries: retried with backoff.

Actions (input fields read -> output):

- `validate_input`: `input` (the execution input, docs/ARCHITECTURE.md) -> the input normalised, plus `registry`,
  `verify`, `wait_seconds` and `waves` (the canary as a wave of one, then the rest);
- `refresh`: `cluster`, `nodegroup`, `parameter`, `waits`, `wait_seconds` -> `outcome`, `needs_update`,
  `launch_template`, `version_before`, `version_after`, `fingerprint`, `reason`, `remedy`, `waits`; `outcome` is
  `waiting` (with `next_wait_seconds`, nothing written) while another update of the node group runs, and
  `superseded` (nothing written) when the parameter has a newer valid version: that change has its own rollout,
  and rolling this older value would undo it;
- `start_update`: `cluster`, `nodegroup`, `refresh`, `wait_seconds` -> `{"status": "started", "update_id", "polls",
  "next_wait_seconds"}`, or
  `{"status": "waiting"}` while the node group is CREATING (the state machine waits and asks again), or
  `{"status": "current"}` when it already runs that version (nothing to roll), or
  `{"status": "stale"}` when the node group moved on since `refresh` (another update runs or ran): refresh again;
- `describe_update`: `cluster`, `nodegroup`, `update` (`update_id`, `polls`), `wait_seconds` -> `status`
  (InProgress, Successful, Failed, Cancelled), `update_id`, `errors`, `polls`, `next_wait_seconds` (growing x1.5 per
  poll up to 300 s, so long updates stay far from the 25,000-event history limit);
- `rollback`: `cluster`, `nodegroup`, `refresh` -> `{"status": "started", "update_id", "version"}` or `skipped`;
- `record`: `cluster`, `nodegroup`, `outcome` (rolled, skipped, failed), `item` (the node group's state in the
  state machine) -> `cluster`, `nodegroup`, `outcome`, `summary`;
- `notify_failure`: `change_id`, `error` (`Error`, `Cause`), `stage` -> `notified`, `summary`.

The proxy value never travels through the state machine: `refresh` reads the pinned parameter version itself.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from eks_proxy import metrics
from eks_proxy.aws.clients import AwsClients
from eks_proxy.aws.eks import describe_nodegroup, describe_update, update_nodegroup_version
from eks_proxy.aws.errors import error_code
from eks_proxy.aws.sns import publish_alarm
from eks_proxy.aws.ssm import ParameterNotFound, ParameterValue, attach_ca_bundle, read_parameter
from eks_proxy.config import Settings
from eks_proxy.engine.contracts import (
    InvalidRolloutInput,
    NodegroupRef,
    ParameterRef,
    RefreshResult,
    TemplateRef,
    UpdateRef,
    ValidationError,
    boolean,
    choice,
    integer,
    required,
    rollout_input,
)
from eks_proxy.engine.plan import ContextCache
from eks_proxy.engine.refresh import UPDATING_STATUSES, NodegroupUpdating, refresh_launch_template
from eks_proxy.model import LaunchTemplateRef, Outcome
from eks_proxy.proxy.value import ProxyConfig, ProxyValueError, parse_proxy_value

TRIGGERS = frozenset({"ssm", "nodegroup", "launch_template", "sweep"})
_THROTTLED = {"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded"}
MAX_NODEGROUPS = 1000
MAX_CONCURRENCY = 40  # the inline Map's own limit
MAX_POLL_SECONDS = 300
POLL_BACKOFF = 1.5
MAX_WAITS = 300  # refreshes waiting for someone else's update of a node group (~24 h at 300 s)


class NodegroupBusy(RuntimeError):
    """EKS refused the update because another one is in progress (ResourceInUseException)."""


class ThrottlingException(RuntimeError):
    """AWS kept throttling after the SDK's retries."""


def _noop_metric(name: str, value: float, **dimensions: str) -> None:
    return None


logger = logging.getLogger(__name__)


def _info(message: str, fields: Mapping[str, Any]) -> None:
    logger.info(message, extra=dict(fields))


def _warning(message: str, fields: Mapping[str, Any]) -> None:
    logger.warning(message, extra=dict(fields))


@dataclass
class StepContext:
    """What an action needs: the clients, the settings, where metrics go; logs go to this module's logger."""

    clients: AwsClients
    settings: Settings
    metric: Callable[..., None] = _noop_metric  # (name, value, **dimensions): names from eks_proxy.metrics
    log: Callable[[str, Mapping[str, Any]], None] = _info
    warn: Callable[[str, Mapping[str, Any]], None] = _warning
    cache: ContextCache = field(default_factory=ContextCache)


def _aws(error: ClientError, cluster: str, nodegroup: str) -> Exception:
    """Map AWS errors the state machine retries to named errors; anything else propagates unchanged."""
    code = error_code(error)
    if code == "ResourceInUseException":
        return NodegroupBusy(f"{cluster}/{nodegroup}: another update is in progress")
    if code in _THROTTLED:
        return ThrottlingException(f"{cluster}/{nodegroup}: throttled ({code})")
    unchanged: Exception = error
    return unchanged


def _target(event: Mapping[str, Any]) -> tuple[str, str]:
    ref = NodegroupRef.from_step(event)
    return ref.cluster, ref.nodegroup


def _pinned(step: StepContext, parameter: Mapping[str, Any]) -> tuple[str, int]:
    pinned = ParameterRef.pinned(parameter, step.settings.proxy_parameter_name)
    return pinned.name, required(pinned.version, "parameter.version")


def _read(step: StepContext, name: str, version: int | None) -> ParameterValue:
    try:
        return read_parameter(step.clients.ssm, name, version)
    except ClientError as error:
        raise _aws(error, "ssm", name) from None
    except ParameterNotFound as missing:
        raise InvalidRolloutInput(str(missing)) from None


def _parse(step: StepContext, value: ParameterValue) -> ProxyConfig:
    """The value parsed, with the CA bundle it names (read at its latest version: a rotation during a rollout goes
    to the node groups refreshed after it, and has its own rollout for the others)."""
    try:
        config = parse_proxy_value(value.value)
        with _ssm_errors(str(config.ca_bundle_parameter)):
            return attach_ca_bundle(step.clients.ssm, config, allowed=step.settings.ca_bundle_parameter_name)
    except ProxyValueError as invalid:
        raise InvalidRolloutInput(f"invalid proxy value in {value.name}:{value.version}: {invalid}") from None


@contextmanager
def _ssm_errors(name: str) -> Iterator[None]:
    try:
        yield
    except ClientError as error:
        raise _aws(error, "ssm", name) from None


def _proxy_config(step: StepContext, parameter: Mapping[str, Any]) -> ProxyConfig:
    """Read and parse the pinned parameter version; a missing or invalid value is an InvalidRolloutInput."""
    name, version = _pinned(step, parameter)
    return _parse(step, _read(step, name, version))


def _config_unless_superseded(step: StepContext, parameter: Mapping[str, Any]) -> ProxyConfig | ParameterValue:
    """The pinned version's config, or the newer valid version that supersedes it (one read when not superseded).

    A newer version that is invalid never got a rollout (dispatch refused it), so it does not stop this one.
    """
    name, version = _pinned(step, parameter)
    latest = _read(step, name, None)
    if latest.version == version:
        return _parse(step, latest)
    if latest.version > version:
        try:
            _parse(step, latest)  # with the CA bundle it names: a newer value naming a bad bundle got no rollout
            return latest
        except InvalidRolloutInput:
            pass
    return _parse(step, _read(step, name, version))


def validate_input(event: Mapping[str, Any], step: StepContext) -> dict[str, Any]:
    """Check the execution input and the proxy value it pins; return it normalised for the next states."""
    doc = event.get("input")
    if not isinstance(doc, dict):
        raise InvalidRolloutInput("execution input must be a JSON object")
    change_id = doc.get("change_id")
    if not isinstance(change_id, str) or not 0 < len(change_id) <= 128:
        raise InvalidRolloutInput("change_id must be a non-empty string of at most 128 characters")
    trigger = choice(doc.get("trigger"), "trigger", TRIGGERS)
    parameter = doc.get("parameter")
    if not isinstance(parameter, dict):
        raise InvalidRolloutInput("parameter must be an object with name and version")
    canary = doc.get("canary")
    rest = doc.get("rest", [])
    if not isinstance(canary, dict) or not isinstance(rest, list):
        raise InvalidRolloutInput("canary must be an object and rest a list of {cluster, nodegroup}")
    if len(rest) >= MAX_NODEGROUPS:
        raise InvalidRolloutInput(f"at most {MAX_NODEGROUPS} node groups per rollout")
    targets: list[dict[str, str]] = []
    for item in [canary, *rest]:
        cluster, nodegroup = _target(item)
        if cluster not in step.settings.cluster_names:
            raise InvalidRolloutInput(f"cluster {cluster!r} is not in CLUSTER_NAMES")
        if {"cluster": cluster, "nodegroup": nodegroup} in targets:
            raise InvalidRolloutInput(f"node group {cluster}/{nodegroup} is listed twice")
        targets.append({"cluster": cluster, "nodegroup": nodegroup})
    rollback = boolean(doc.get("rollback_on_failure"), "rollback_on_failure", default=step.settings.rollback_on_failure)
    concurrency = integer(
        doc.get("max_concurrency"),
        "max_concurrency",
        low=1,
        high=MAX_CONCURRENCY,
        default=step.settings.max_concurrency,
    )
    wait_seconds = integer(
        doc.get("wait_seconds"), "wait_seconds", low=0, high=3600, default=step.settings.rollout_wait_seconds
    )
    _proxy_config(step, parameter)  # an invalid value stops the rollout here, before any change
    pinned = {"name": parameter["name"], "version": parameter["version"]}
    return {
        "change_id": change_id,
        "trigger": trigger,
        "parameter": pinned,
        "max_concurrency": concurrency,
        "rollback_on_failure": rollback,
        "wait_seconds": wait_seconds,
        "canary": targets[0],
        "rest": targets[1:],
        "registry": step.settings.registry_probe,
        "verify": {
            "image": step.settings.verify_image,
            "namespace": step.settings.verify_namespace,
            "timeout_seconds": step.settings.verify_timeout_seconds,
        },
        # The canary is a wave of one; the rest follow with bounded concurrency (one ItemProcessor for both).
        "waves": [
            {"wave": "canary", "items": targets[:1], "max_concurrency": 1},
            {"wave": "rest", "items": targets[1:], "max_concurrency": concurrency},
        ],
    }


def refresh(event: Mapping[str, Any], step: StepContext) -> dict[str, Any]:
    """Re-read the node group; create (or reuse) the launch template version with the desired configuration."""
    cluster, nodegroup = _target(event)
    waits = integer(event.get("waits"), "waits", low=0, high=10**6, default=0)
    config = _config_unless_superseded(step, event.get("parameter") or {})
    if isinstance(config, ParameterValue):
        reason = f"superseded by {config.name}:{config.version} (the newer change has its own rollout)"
        step.log("refresh", {"cluster": cluster, "nodegroup": nodegroup, "outcome": "superseded", "reason": reason})
        return RefreshResult.not_refreshed("superseded", reason, waits=waits).to_output()
    try:
        _, pinned_version = _pinned(step, event.get("parameter") or {})
        decision = refresh_launch_template(
            step.clients, step.settings, cluster, nodegroup, config, step.cache, parameter_version=pinned_version
        )
    except ClientError as error:
        raise _aws(error, cluster, nodegroup) from None
    except NodegroupUpdating as updating:
        if waits >= MAX_WAITS:
            raise NodegroupBusy(f"{updating} (still, after {waits} checks)") from None
        step.log("refresh", {"cluster": cluster, "nodegroup": nodegroup, "outcome": "waiting", "reason": str(updating)})
        wait = min(MAX_POLL_SECONDS, round(_base_wait(event, step) * POLL_BACKOFF**waits))
        return RefreshResult.not_refreshed(
            "waiting", str(updating), waits=waits + 1, next_wait_seconds=wait
        ).to_output()
    lt = decision.launch_template
    if decision.outcome is Outcome.CREATE_VERSION:
        step.metric(metrics.NODEGROUPS_REFRESHED, 1, cluster=cluster)
    fields = decision.to_log()
    (step.warn if decision.outcome is Outcome.OUT_OF_SCOPE else step.log)("refresh", fields)
    return RefreshResult(
        outcome=decision.outcome.value,
        needs_update=decision.needs_rollout,
        reason=decision.reason,
        remedy=decision.remedy,
        node_os=decision.node_os,
        launch_template=TemplateRef(lt.id, lt.name) if lt else None,
        version_before=decision.current_version,
        version_after=decision.target_version,
        fingerprint=decision.desired_fingerprint,
        waits=waits,
    ).to_output()


def _ref(refreshed: RefreshResult) -> LaunchTemplateRef:
    lt = refreshed.launch_template
    if lt is None:
        raise InvalidRolloutInput("refresh result names no launch template")
    return LaunchTemplateRef(id=lt.id, name=lt.name)


def start_update(event: Mapping[str, Any], step: StepContext) -> dict[str, Any]:
    """UpdateNodegroupVersion to the refreshed version; `waiting` while the node group is still CREATING."""
    cluster, nodegroup = _target(event)
    result = RefreshResult.from_event(event.get("refresh"))
    version = required(result.version_after, "refresh.version_after")
    try:
        state = describe_nodegroup(step.clients.eks, cluster, nodegroup)
        if state.status == "CREATING":
            return {"status": "waiting", "reason": "node group is CREATING"}
        running = state.launch_template.version if state.launch_template else None
        before = result.version_before
        if state.status in UPDATING_STATUSES or (running not in (before, version) and before is not None):
            # Someone else updates (or updated) it since our refresh: our version is built on the one it replaces,
            # rolling it would revert theirs. The state machine refreshes again (which waits for their update).
            return {"status": "stale", "reason": f"node group is {state.status} on version {running} since refresh"}
        if running == version:
            # Another rollout of the same change got there first (it held the node group while we retried).
            return {"status": "current", "reason": f"node group already runs version {version}"}
        update_id = update_nodegroup_version(
            step.clients.eks, cluster, nodegroup, _ref(result), version, force=step.settings.force_update
        )
    except ClientError as error:
        raise _aws(error, cluster, nodegroup) from None
    step.log("update started", {"cluster": cluster, "nodegroup": nodegroup, "update_id": update_id, "version": version})
    return {"status": "started", "update_id": update_id, "polls": 0, "next_wait_seconds": _base_wait(event, step)}


def _base_wait(event: Mapping[str, Any], step: StepContext) -> int:
    """The execution's ``wait_seconds`` (validated by ``validate_input``); the setting when absent or not valid."""
    try:
        return integer(event.get("wait_seconds"), "wait_seconds", low=0, default=step.settings.rollout_wait_seconds)
    except ValidationError:
        return step.settings.rollout_wait_seconds


def describe_update_step(event: Mapping[str, Any], step: StepContext) -> dict[str, Any]:
    """The status of the node group update started by `start_update`."""
    cluster, nodegroup = _target(event)
    update = UpdateRef.from_event(event.get("update"))
    update_id = update.update_id
    try:
        status = describe_update(step.clients.eks, cluster, nodegroup, update_id)
    except ClientError as error:
        raise _aws(error, cluster, nodegroup) from None
    polls = update.polls + 1
    # Poll less often as the update goes on: an update takes minutes to hours and every poll adds ~9 events to
    # the execution history (a Standard workflow holds 25,000); 30 s, 45 s, 68 s ... capped at 5 minutes.
    next_wait = min(MAX_POLL_SECONDS, round(_base_wait(event, step) * POLL_BACKOFF**polls))
    return {
        "status": status.status,
        "update_id": update_id,
        "errors": list(status.errors),
        "polls": polls,
        "next_wait_seconds": next_wait,
    }


def rollback(event: Mapping[str, Any], step: StepContext) -> dict[str, Any]:
    """Roll a failed node group back to the launch template version it ran before this rollout."""
    cluster, nodegroup = _target(event)
    result = RefreshResult.from_event(event.get("refresh"))
    before, after = result.version_before, result.version_after
    if before is None or before == after:
        return {"status": "skipped", "reason": "no earlier version to return to"}
    try:
        update_id = update_nodegroup_version(
            step.clients.eks, cluster, nodegroup, _ref(result), before, force=step.settings.force_update
        )
    except ClientError as error:
        raise _aws(error, cluster, nodegroup) from None
    step.warn("rollback started", {"cluster": cluster, "nodegroup": nodegroup, "version": before})
    return {"status": "started", "update_id": update_id, "version": before}


_OUTCOME_METRIC = {
    "rolled": metrics.NODEGROUPS_ROLLED,
    "skipped": metrics.NODEGROUPS_SKIPPED,
    "failed": metrics.NODEGROUPS_FAILED,
}


def _verification_summary(item: Mapping[str, Any]) -> str:
    verification = item.get("verification")
    if isinstance(verification, dict):
        return str(verification.get("summary") or ("ok" if verification.get("ok") else "failed"))
    return ""


def record(event: Mapping[str, Any], step: StepContext) -> dict[str, Any]:
    """One structured log line and one metric per node group: what happened, versions before -> after.

    `item` is the node group's whole state in the state machine (fields it never reached are simply absent).
    """
    cluster, nodegroup = _target(event)
    outcome = event.get("outcome")
    if outcome not in _OUTCOME_METRIC:
        raise InvalidRolloutInput(f"outcome must be one of {sorted(_OUTCOME_METRIC)}, got {str(outcome)[:40]!r}")
    raw_item = event.get("item")
    item: Mapping[str, Any] = raw_item if isinstance(raw_item, dict) else event
    refreshed = item.get("refresh") or {}
    update = item.get("update") or {}
    error = item.get("error") or {}
    lt = refreshed.get("launch_template") or {}
    fields = {
        "cluster": cluster,
        "nodegroup": nodegroup,
        "wave": item.get("wave"),
        "outcome": outcome,
        "decision": refreshed.get("outcome"),
        "reason": refreshed.get("reason"),
        "launch_template": lt.get("id") or lt.get("name"),
        "version_before": refreshed.get("version_before"),
        "version_after": refreshed.get("version_after"),
        "fingerprint": refreshed.get("fingerprint"),
        "update_id": update.get("update_id"),
        "update_status": update.get("status"),
        "update_errors": update.get("errors"),
        "verification": _verification_summary(item),
        "rollback": (item.get("rollback") or {}).get("status") or (item.get("rollback") or {}).get("Error"),
        "error": error.get("Error"),
    }
    step.metric(_OUTCOME_METRIC[outcome], 1, cluster=cluster)
    if fields["rollback"] == "started":
        step.metric(metrics.NODEGROUPS_ROLLED_BACK, 1, cluster=cluster)
    (step.warn if outcome == "failed" else step.log)("nodegroup " + outcome, fields)
    if outcome == "failed":
        why = (
            (error and f"{error.get('Error')}: {_cause(error)}")
            or "; ".join(fields["update_errors"] or [])
            or (fields["verification"] and f"verification: {fields['verification']}")
            or f"update {update.get('status') or 'failed'}"
        )
        rolled_back = fields["rollback"] == "started"
        back = f" (rolled back to version {refreshed.get('version_before')})" if rolled_back else ""
        summary = f"{cluster}/{nodegroup} failed: {why}{back}"
    elif outcome == "skipped" and update.get("status") == "current":
        summary = f"{cluster}/{nodegroup} skipped: already on version {refreshed.get('version_after')}"
    elif outcome == "skipped":
        summary = f"{cluster}/{nodegroup} skipped: {refreshed.get('outcome')}: {refreshed.get('reason') or ''}".strip()
    else:
        summary = (
            f"{cluster}/{nodegroup} rolled from version {refreshed.get('version_before')} "
            f"to {refreshed.get('version_after')}"
        )
    return {"cluster": cluster, "nodegroup": nodegroup, "outcome": outcome, "summary": summary}


def _cause(error: Mapping[str, Any]) -> str:
    """The human part of a Step Functions error cause (a Lambda error cause is JSON with errorMessage)."""
    cause = str(error.get("Cause") or "")
    try:
        parsed = json.loads(cause)
    except ValueError:
        return cause[:500]
    if isinstance(parsed, dict) and "errorMessage" in parsed:
        return str(parsed["errorMessage"])[:500]
    return cause[:500]


def notify_failure(event: Mapping[str, Any], step: StepContext) -> dict[str, Any]:
    """Publish the failure to the alarm topic and count it (metric RolloutFailed); the state machine then fails."""
    error = event.get("error") or {}
    stage = str(event.get("stage") or "rollout")
    summary = f"eks-proxy {stage} failed ({error.get('Error', 'unknown')}): {_cause(error)}"
    change_id = str(event.get("change_id") or "?")
    step.metric(metrics.ROLLOUT_FAILED, 1)
    step.warn(
        "rollout failed", {"change_id": change_id, "stage": stage, "error": error.get("Error"), "summary": summary}
    )
    message = {"change_id": change_id, "stage": stage, "error": error.get("Error"), "summary": summary}
    publish_alarm(step.clients.sns, step.settings.alarm_topic_arn, "eks-proxy rollout failed", message)
    return {"notified": True, "summary": summary}


ACTIONS: dict[str, Callable[[Mapping[str, Any], StepContext], dict[str, Any]]] = {
    "validate_input": validate_input,
    "refresh": refresh,
    "start_update": start_update,
    "describe_update": describe_update_step,
    "rollback": rollback,
    "record": record,
    "notify_failure": notify_failure,
}


def run_step(event: Mapping[str, Any], step: StepContext) -> dict[str, Any]:
    """Run the action named by `event["action"]`."""
    action = event.get("action")
    handler = ACTIONS.get(action) if isinstance(action, str) else None
    if handler is None:
        raise InvalidRolloutInput(f"unknown action {str(action)[:40]!r}; expected one of {sorted(ACTIONS)}")
    # Contract errors of any action reach the state machine as InvalidRolloutInput (it stops on that name).
    return rollout_input(handler)(event, step)
