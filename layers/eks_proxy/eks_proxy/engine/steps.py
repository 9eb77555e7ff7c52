"""The rollout step actions: what statemachine/rollout.asl.json calls through RolloutStepFunction.

Every task sends `{"action": "<name>", ...}`; `run_step(event, step)` runs the action and returns its JSON result.
Errors the state machine reacts to are raised as named exceptions (Lambda reports the class name as the error):

- `InvalidRolloutInput`  bad execution input, an invalid proxy value, or a version eks-proxy did not make;
- `NodegroupBusy`        EKS `ResourceInUseException` (another update runs): retried with backoff;
- `ThrottlingException`  AWS throttled us beyond the SDK's own retries: retried with backoff;
- `LeaseUnavailable`     waited too long for the cluster's lease.

Every action is idempotent when run twice (the state machine retries Lambda errors and timeouts): reads are reads,
`refresh` reuses its version (ClientToken), `start_update`/`rollback` pass a clientRequestToken so a repeated call
returns the update the first one started, `record`/`settle` only log and count (a retried `notify_failure` may
publish its alarm twice).

Actions (input fields read -> output):

- `validate_input`: `input` (the execution input, docs/ARCHITECTURE.md) -> the input normalised, plus `cluster`
  (one per rollout: the lease is per cluster), `registry`, `verify`, `wait_seconds`, `lease_waits` and `plan`
  (`eks_proxy.engine.waves`);
- `lease_clock`: -> `now`, `expires_at` (epoch seconds) for the lease's conditional write;
- `lease_holder`: `holder` (the lease item as GetItem returned it), `parameter`, `waits` -> `decision` (`wait`,
  `take_over`, `retry`, `superseded`), `holder`, `reason`, `next_wait_seconds`, `waits`;
- `plan_wave`: `plan`, `wave_results` (the last wave's records), `parameter` -> the next `plan` (`wave`,
  `wave_name`, `max_concurrency`, `done`, ...);
- `settle`: `plan` (and `superseded` when the rollout never got the lease) -> `failed`, `summary`, `counts`,
  `results` (one record per node group);
- `refresh`: `cluster`, `nodegroup`, `parameter`, `waits`, `wait_seconds` -> `outcome` (`create_version`,
  `roll_existing`, `up_to_date`, `out_of_scope`, `gone`, `waiting` with `next_wait_seconds`, `superseded`),
  `needs_update`, `launch_template`, `version_before`, `version_after`, `fingerprint`, `reason`, `remedy`, `waits`;
- `start_update`: `cluster`, `nodegroup`, `parameter`, `refresh`, `wait_seconds` -> `status`: `started` (with
  `update_id`, `version`, `polls`, `next_wait_seconds`), `waiting` (CREATING), `current` (already on it), `stale`
  (moved on since refresh: refresh again), `superseded`, `gone`;
- `describe_update`: `cluster`, `nodegroup`, `update` (`update_id`, `polls`), `wait_seconds` -> `status`
  (InProgress, Successful, Failed, Cancelled, `gone`), `update_id`, `errors`, `polls`, `next_wait_seconds`
  (60 s, 90 s, then 120 s);
- `rollback`: `cluster`, `nodegroup`, `refresh` -> `status`: `started` (awaited like an update), `not_needed`,
  `moved_on`, `gone`, `skipped`;
- `record`: `cluster`, `nodegroup`, `outcome` (`eks_proxy.engine.waves.OUTCOMES`), `item` (the node group's state in
  the state machine) -> `cluster`, `nodegroup`, `outcome`, `summary`;
- `notify_failure`: `change_id`, `execution`, `error` (`Error`, `Cause`), `stage` -> `notified`, `summary`.

The proxy value never travels through the state machine: the steps read the pinned parameter version themselves.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from eks_proxy import metrics
from eks_proxy.aws.clients import AwsClients
from eks_proxy.aws.ec2 import get_template_version
from eks_proxy.aws.eks import NodegroupNotFound, describe_nodegroup, describe_update, update_nodegroup_version
from eks_proxy.aws.errors import error_code
from eks_proxy.aws.sns import publish_alarm
from eks_proxy.aws.ssm import ParameterNotFound, ParameterValue, attach_ca_bundle, read_parameter
from eks_proxy.aws.stepfunctions import execution_status
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
from eks_proxy.engine.lease import MAX_LEASE_WAITS, holder_decision, holder_of, lease_terms, poll_wait
from eks_proxy.engine.plan import UPDATING_STATUSES, ContextCache
from eks_proxy.engine.reconcile import find_reusable_version
from eks_proxy.engine.refresh import NodegroupUpdating, refresh_launch_template
from eks_proxy.engine.waves import FAILURES, MAX_SUMMARY, initial_plan, next_wave, settle
from eks_proxy.model import LaunchTemplateRef, Outcome
from eks_proxy.proxy.value import ProxyConfig, ProxyValueError, parse_proxy_value

TRIGGERS = frozenset({"ssm", "nodegroup", "launch_template", "sweep"})
_THROTTLED = {"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded"}
MAX_NODEGROUPS = 1000
MAX_CONCURRENCY = 40
MAX_WAITS = 720  # checks while someone else updates a node group (~24 h at 120 s: outlasts a control plane upgrade)
# Error codes meaning the node group, its launch template or a version no longer exists.
_GONE_CODES = frozenset(
    {
        "ResourceNotFoundException",
        "InvalidLaunchTemplateId.NotFound",
        "InvalidLaunchTemplateName.NotFoundException",
        "InvalidLaunchTemplateId.VersionNotFound",
    }
)
# Out-of-scope reasons (eks_proxy.engine.refresh / reconcile) that mean "it disappeared", reported as `gone`.
_GONE_MARKERS = ("not found", "no longer exists", "is DELETING")


class NodegroupBusy(RuntimeError):
    """EKS refused the update because another one is in progress (ResourceInUseException)."""


class ThrottlingException(RuntimeError):
    """AWS kept throttling after the SDK's retries."""


class LeaseUnavailable(RuntimeError):
    """The cluster's lease stayed taken for longer than a rollout waits (MAX_LEASE_WAITS checks)."""


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
    clock: Callable[[], float] = time.time


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
    clusters = {t["cluster"] for t in targets}
    if len(clusters) != 1:
        raise InvalidRolloutInput(f"a rollout rolls one cluster (its lease), got {len(clusters)}: {sorted(clusters)}")
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
        "cluster": targets[0]["cluster"],
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
        "lease_waits": 0,
        "plan": initial_plan(targets, concurrency),  # eks_proxy.engine.waves: the canary first, then the rest
        "wave_results": None,
    }


def lease_clock(event: Mapping[str, Any], step: StepContext) -> dict[str, Any]:
    """`now` and `expires_at` (epoch seconds) for the lease's conditional write."""
    return lease_terms(step.clock())


def _newer_valid_version(step: StepContext, parameter: Mapping[str, Any]) -> ParameterValue | None:
    """The latest parameter version when it is newer than the pinned one and valid (an invalid one never got a
    rollout: dispatch refused it, so it supersedes nothing)."""
    name, version = _pinned(step, parameter)
    latest = _read(step, name, None)
    if latest.version <= version:
        return None
    try:
        _parse(step, latest)  # with the CA bundle it names: a newer value naming a bad bundle got no rollout
    except InvalidRolloutInput:
        return None
    return latest


def lease_holder(event: Mapping[str, Any], step: StepContext) -> dict[str, Any]:
    """The lease is taken: wait for its holder, take it over from a dead one, or stop as superseded."""
    holder = holder_of(event.get("holder"))
    newer = _newer_valid_version(step, event.get("parameter") or {})
    status = execution_status(step.clients.sfn, holder.execution_arn) if holder and holder.execution_arn else None
    waits = integer(event.get("waits"), "waits", low=0, high=10**6, default=0)
    if waits >= MAX_LEASE_WAITS and newer is None:
        raise LeaseUnavailable(f"waited {waits} times for the cluster's lease (held by {holder and holder.owner})")
    _, mine = _pinned(step, event.get("parameter") or {})
    decision = holder_decision(
        holder,
        status,
        now=step.clock(),
        mine=mine,
        newer=newer.version if newer else None,
        waits=waits,
        base_wait=_base_wait(event, step),
    )
    step.log("lease", {"decision": decision.decision, "holder": decision.holder, "reason": decision.reason})
    return decision.to_dict()


def plan_wave(event: Mapping[str, Any], step: StepContext) -> dict[str, Any]:
    """The next wave of node groups (canary first), or `done` (see `eks_proxy.engine.waves`)."""
    plan = event.get("plan")
    if not isinstance(plan, dict):
        raise InvalidRolloutInput("plan must be an object")
    newer = _newer_valid_version(step, event.get("parameter") or {}) if plan.get("pending") else None
    superseded = (
        f"superseded by {newer.name}:{newer.version} (that change has its own rollout, which runs next)"
        if newer
        else None
    )
    planned = next_wave(plan, event.get("wave_results"), superseded)
    step.log(
        "wave",
        {
            "wave": planned["wave_name"],
            "nodegroups": [t["nodegroup"] for t in planned["wave"]][:50],
            "done": planned["done"],
            "halted": planned["halted"],
            "superseded": superseded,
        },
    )
    return planned


def settle_step(event: Mapping[str, Any], step: StepContext) -> dict[str, Any]:
    """Every node group's outcome, counted; `failed` makes the state machine alarm and fail after the release."""
    plan = event.get("plan")
    if not isinstance(plan, dict):
        raise InvalidRolloutInput("plan must be an object")
    superseded = event.get("superseded")
    outcome = settle(plan, str(superseded) if superseded else None)
    if superseded:  # these node groups never reached a record step
        for record in outcome["results"]:
            step.log("nodegroup superseded", dict(record) | {"change_id": event.get("change_id")})
            step.metric(metrics.NODEGROUPS_SUPERSEDED, 1, cluster=record["cluster"])
    step.log(
        "rollout settled",
        {
            "cluster": event.get("cluster"),
            "counts": outcome["counts"],
            "failed": outcome["failed"],
            "summary": outcome["summary"],
        },
    )
    return outcome


def _gone(reason: str) -> bool:
    return any(marker in reason for marker in _GONE_MARKERS)


def refresh(event: Mapping[str, Any], step: StepContext) -> dict[str, Any]:
    """Re-read the node group; create (or reuse) the launch template version with the desired configuration."""
    cluster, nodegroup = _target(event)
    waits = integer(event.get("waits"), "waits", low=0, high=10**6, default=0)
    newer = _newer_valid_version(step, event.get("parameter") or {})
    if newer is not None:
        reason = f"superseded by {newer.name}:{newer.version} (that change has its own rollout)"
        step.log("refresh", {"cluster": cluster, "nodegroup": nodegroup, "outcome": "superseded", "reason": reason})
        return RefreshResult.not_refreshed("superseded", reason, waits=waits).to_output()
    config = _proxy_config(step, event.get("parameter") or {})
    try:
        _, pinned_version = _pinned(step, event.get("parameter") or {})
        decision = refresh_launch_template(
            step.clients, step.settings, cluster, nodegroup, config, step.cache, parameter_version=pinned_version
        )
    except ClientError as error:
        if error_code(error) in _GONE_CODES:
            reason = f"{cluster}/{nodegroup}: launch template or version no longer exists ({error_code(error)})"
            step.log("refresh", {"cluster": cluster, "nodegroup": nodegroup, "outcome": "gone", "reason": reason})
            return RefreshResult.not_refreshed("gone", reason, waits=waits).to_output()
        raise _aws(error, cluster, nodegroup) from None
    except NodegroupUpdating as updating:
        if waits >= MAX_WAITS:
            raise NodegroupBusy(f"{updating} (still, after {waits} checks)") from None
        step.log("refresh", {"cluster": cluster, "nodegroup": nodegroup, "outcome": "waiting", "reason": str(updating)})
        wait = poll_wait(_base_wait(event, step), waits)
        return RefreshResult.not_refreshed(
            "waiting", str(updating), waits=waits + 1, next_wait_seconds=wait
        ).to_output()
    lt = decision.launch_template
    if decision.outcome is Outcome.CREATE_VERSION:
        step.metric(metrics.NODEGROUPS_REFRESHED, 1, cluster=cluster)
    outcome = decision.outcome.value
    if decision.outcome is Outcome.OUT_OF_SCOPE and _gone(decision.reason):
        outcome = "gone"  # it disappeared since dispatch planned it: nothing left to roll, no alarm
    (step.warn if outcome == Outcome.OUT_OF_SCOPE.value else step.log)(
        "refresh", decision.to_log() | {"outcome": outcome}
    )
    return RefreshResult(
        outcome=outcome,
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


def _same_template(a: TemplateRef | None, b: LaunchTemplateRef | None) -> bool:
    if a is None or b is None:
        return False
    return (a.id is not None and a.id == b.id) or (a.name is not None and a.name == b.name)


def _token(*parts: Any) -> str:
    """clientRequestToken for UpdateNodegroupVersion: the same step run twice starts one update."""
    return hashlib.sha256(json.dumps([str(p) for p in parts]).encode()).hexdigest()[:40]


def _ours_from(step: StepContext, ref: LaunchTemplateRef, version: int, source: int, fingerprint: str | None) -> bool:
    """Is `version` a version eks-proxy made from `source` (its description, and the fingerprint in its user data)?"""
    made = get_template_version(step.clients.ec2, ref, version)
    if made is None or fingerprint is None:
        return False
    return find_reusable_version([made], source, fingerprint) == version


def start_update(event: Mapping[str, Any], step: StepContext) -> dict[str, Any]:
    """UpdateNodegroupVersion to the refreshed version, after checking it is still wanted and really ours.

    Returns `started` (with the update id), `waiting` (CREATING), `current` (already on it: our own earlier update
    landed), `stale` (the node group moved on since refresh: refresh again), `superseded` or `gone`. Raises
    `InvalidRolloutInput` when the version was not made by eks-proxy from the version the node group runs.
    """
    cluster, nodegroup = _target(event)
    result = RefreshResult.from_event(event.get("refresh"))
    version = required(result.version_after, "refresh.version_after")
    newer = _newer_valid_version(step, event.get("parameter") or {})
    if newer is not None:
        return {"status": "superseded", "reason": f"superseded by {newer.name}:{newer.version} before its update"}
    try:
        state = describe_nodegroup(step.clients.eks, cluster, nodegroup)
    except NodegroupNotFound as missing:
        return {"status": "gone", "reason": str(missing)}
    except ClientError as error:
        raise _aws(error, cluster, nodegroup) from None
    if state.status == "CREATING":
        return {"status": "waiting", "reason": "node group is CREATING"}
    lt = state.launch_template
    if lt is None or not _same_template(result.launch_template, lt):
        return {"status": "stale", "reason": "the node group uses another launch template since refresh"}
    running = lt.version
    if running == version and state.status not in UPDATING_STATUSES:
        return {"status": "current", "reason": f"node group already runs version {version}"}
    if running is None or running != result.version_before:
        return {"status": "stale", "reason": f"node group is {state.status} on version {running} since refresh"}
    try:
        if not _ours_from(step, lt, version, running, result.fingerprint):
            raise InvalidRolloutInput(
                f"{cluster}/{nodegroup}: launch template version {version} was not made by eks-proxy from the "
                f"running version {running}: refusing to roll it"
            )
        update_id = update_nodegroup_version(
            step.clients.eks,
            cluster,
            nodegroup,
            lt,
            version,
            force=step.settings.force_update,
            token=_token("update", event.get("change_id"), cluster, nodegroup, lt.label(), running, version),
        )
    except ClientError as error:
        if error_code(error) in _GONE_CODES:
            return {"status": "gone", "reason": f"{cluster}/{nodegroup}: {error_code(error)}"}
        if error_code(error) == "ResourceInUseException" and state.status in UPDATING_STATUSES:
            # Someone else's update runs (ours would have come back for our token): decide again once it landed.
            return {"status": "stale", "reason": f"node group is {state.status}: another update is in progress"}
        raise _aws(error, cluster, nodegroup) from None
    step.log("update started", {"cluster": cluster, "nodegroup": nodegroup, "update_id": update_id, "version": version})
    wait = poll_wait(_base_wait(event, step), 0)
    return {"status": "started", "update_id": update_id, "version": version, "polls": 0, "next_wait_seconds": wait}


def _base_wait(event: Mapping[str, Any], step: StepContext) -> int:
    """The execution's ``wait_seconds`` (validated by ``validate_input``); the setting when absent or not valid."""
    try:
        return integer(event.get("wait_seconds"), "wait_seconds", low=0, default=step.settings.rollout_wait_seconds)
    except ValidationError:
        return step.settings.rollout_wait_seconds


def describe_update_step(event: Mapping[str, Any], step: StepContext) -> dict[str, Any]:
    """The status of a node group update started by `start_update` or `rollback` (`gone` when the node group is)."""
    cluster, nodegroup = _target(event)
    update = UpdateRef.from_event(event.get("update"))
    version = (event.get("update") or {}).get("version")  # echoed: which version this update goes to
    polls = update.polls + 1
    try:
        status = describe_update(step.clients.eks, cluster, nodegroup, update.update_id)
    except ClientError as error:
        if error_code(error) == "ResourceNotFoundException":
            reason = f"{cluster}/{nodegroup} or its update no longer exists"
            return {"status": "gone", "update_id": update.update_id, "version": version, "errors": [],
                    "polls": polls, "next_wait_seconds": 0, "reason": reason}  # fmt: skip
        raise _aws(error, cluster, nodegroup) from None
    # Every poll adds ~9 events to the node group's own child execution history: 60 s, 90 s, then every 120 s.
    return {
        "status": status.status,
        "update_id": update.update_id,
        "version": version,
        "errors": list(status.errors),
        "polls": polls,
        "next_wait_seconds": poll_wait(_base_wait(event, step), polls),
    }


def rollback(event: Mapping[str, Any], step: StepContext) -> dict[str, Any]:
    """Roll a failed node group back to the version ours was made from, only if nothing else touched it since.

    `started` (await it like an update), `not_needed` (it never left the version before), `moved_on` (it runs
    another version or another update runs: someone else's change, left alone), `gone`, or `skipped` (no earlier
    version). Raises `InvalidRolloutInput` when the version it runs is not one eks-proxy made from `version_before`.
    """
    cluster, nodegroup = _target(event)
    result = RefreshResult.from_event(event.get("refresh"))
    before, after = result.version_before, result.version_after
    if before is None or after is None or before == after:
        return {"status": "skipped", "reason": "no earlier version to return to"}
    try:
        state = describe_nodegroup(step.clients.eks, cluster, nodegroup)
    except NodegroupNotFound as missing:
        return {"status": "gone", "reason": str(missing)}
    except ClientError as error:
        raise _aws(error, cluster, nodegroup) from None
    lt = state.launch_template
    running = lt.version if lt else None
    if lt is None or not _same_template(result.launch_template, lt):
        return {"status": "moved_on", "reason": "the node group uses another launch template now"}
    if state.status in UPDATING_STATUSES:
        return {"status": "moved_on", "reason": f"another update of the node group is in progress (on v{running})"}
    if running == before:
        return {"status": "not_needed", "reason": f"the node group stayed on version {before}"}
    if running != after:
        return {"status": "moved_on", "reason": f"the node group runs version {running} now (someone else's)"}
    try:
        if not _ours_from(step, lt, after, before, result.fingerprint):
            raise InvalidRolloutInput(
                f"{cluster}/{nodegroup}: version {after} was not made by eks-proxy from version {before}: "
                "refusing to roll back to it"
            )
        update_id = update_nodegroup_version(
            step.clients.eks,
            cluster,
            nodegroup,
            lt,
            before,
            force=step.settings.force_update,
            token=_token("rollback", event.get("change_id"), cluster, nodegroup, lt.label(), after, before),
        )
    except ClientError as error:
        if error_code(error) == "ResourceInUseException":
            return {"status": "moved_on", "reason": "another update of the node group started meanwhile"}
        if error_code(error) in _GONE_CODES:
            return {"status": "gone", "reason": f"{cluster}/{nodegroup}: {error_code(error)}"}
        raise _aws(error, cluster, nodegroup) from None
    step.warn("rollback started", {"cluster": cluster, "nodegroup": nodegroup, "version": before})
    wait = poll_wait(_base_wait(event, step), 0)
    return {"status": "started", "update_id": update_id, "version": before, "polls": 0, "next_wait_seconds": wait}


# outcome -> the metrics it counts (each 1, per cluster; names from eks_proxy.metrics).
_OUTCOME_METRICS: dict[str, tuple[str, ...]] = {
    "rolled": (metrics.NODEGROUPS_ROLLED,),
    "up_to_date": (metrics.NODEGROUPS_SKIPPED,),
    "skipped": (metrics.NODEGROUPS_SKIPPED,),
    "gone": (metrics.NODEGROUPS_GONE,),
    "superseded": (metrics.NODEGROUPS_SUPERSEDED,),
    "not_started": (metrics.NODEGROUPS_NOT_STARTED,),
    "failed": (metrics.NODEGROUPS_FAILED,),
    "rolled_back": (metrics.NODEGROUPS_FAILED, metrics.NODEGROUPS_ROLLED_BACK),
    "rollback_failed": (metrics.NODEGROUPS_FAILED, metrics.ROLLBACK_FAILED),
    "moved_on": (metrics.NODEGROUPS_FAILED, metrics.NODEGROUPS_MOVED_ON),
}


def _verification_summary(item: Mapping[str, Any]) -> str:
    verification = item.get("verification")
    if isinstance(verification, dict):
        return str(verification.get("summary") or ("ok" if verification.get("ok") else "failed"))
    return ""


def _why_failed(item: Mapping[str, Any]) -> str:
    error = item.get("error") or {}
    update = item.get("update") or {}
    if error:
        return f"{error.get('Error')}: {_cause(error)}"
    if update.get("errors"):
        return "; ".join(str(e) for e in update["errors"])
    verification = _verification_summary(item)
    if verification:
        return f"verification: {verification}"
    return f"update {update.get('status') or 'failed'}"


def record(event: Mapping[str, Any], step: StepContext) -> dict[str, Any]:
    """One structured log line and the metrics of one node group's outcome: what happened, versions before -> after.

    `item` is the node group's whole state in the state machine (fields it never reached are simply absent).
    """
    cluster, nodegroup = _target(event)
    outcome = event.get("outcome")
    if outcome not in _OUTCOME_METRICS:
        raise InvalidRolloutInput(f"outcome must be one of {sorted(_OUTCOME_METRICS)}, got {str(outcome)[:40]!r}")
    raw_item = event.get("item")
    item: Mapping[str, Any] = raw_item if isinstance(raw_item, dict) else event
    refreshed = item.get("refresh") or {}
    update = item.get("update") or {}
    back = item.get("rollback") or {}
    error = item.get("error") or {}
    lt = refreshed.get("launch_template") or {}
    before, after = refreshed.get("version_before"), refreshed.get("version_after")
    label = f"{cluster}/{nodegroup}"
    if outcome == "rolled":
        summary = f"{label} rolled from version {before} to {after}"
    elif outcome == "up_to_date":
        summary = f"{label} up to date on version {after}"
    elif outcome == "skipped":
        summary = f"{label} skipped: {refreshed.get('outcome')}: {refreshed.get('reason') or ''}".strip()
    elif outcome == "gone":
        why = back.get("reason") or update.get("reason") or refreshed.get("reason") or "it no longer exists"
        summary = f"{label} gone: {why}"
    elif outcome == "superseded":
        summary = f"{label} not rolled: {update.get('reason') or refreshed.get('reason') or 'superseded'}"
    elif outcome == "not_started":
        halted = ((item.get("lease_state") or {}).get("Item") or {}).get("halted", {}).get("S")
        summary = f"{label} not started: {halted or _cause(error) or 'the rollout halted'}"
    else:
        summary = f"{label} failed: {_why_failed(item)}"
        rollback_error = item.get("rollback_error") or {}
        if outcome == "rolled_back":
            summary += f" (rolled back to version {before})"
        elif outcome == "rollback_failed":
            what = (
                f"{rollback_error.get('Error')}: {_cause(rollback_error)}"
                if rollback_error
                else "; ".join(back.get("errors") or []) or f"update {back.get('status')}"
            )
            summary += f" (ROLLBACK FAILED to version {before}: {what}; the node group needs attention)"
        elif outcome == "moved_on":
            summary += f" (not rolled back, moved on: {back.get('reason')}; left untouched)"
        elif back.get("status") == "not_needed":
            summary += f" ({back.get('reason')})"
    fields = {
        "cluster": cluster,
        "nodegroup": nodegroup,
        "wave": item.get("wave"),
        "outcome": outcome,
        "decision": refreshed.get("outcome"),
        "reason": refreshed.get("reason"),
        "launch_template": lt.get("id") or lt.get("name"),
        "version_before": before,
        "version_after": after,
        "fingerprint": refreshed.get("fingerprint"),
        "update_id": update.get("update_id"),
        "update_status": update.get("status"),
        "update_errors": update.get("errors"),
        "verification": _verification_summary(item),
        "rollback": back.get("status") or (item.get("rollback_error") or {}).get("Error"),
        "error": error.get("Error"),
        "summary": summary,
    }
    for metric in _OUTCOME_METRICS[outcome]:
        step.metric(metric, 1, cluster=cluster)
    (step.warn if outcome in FAILURES or outcome == "not_started" else step.log)("nodegroup " + outcome, fields)
    return {"cluster": cluster, "nodegroup": nodegroup, "outcome": outcome, "summary": summary[:MAX_SUMMARY]}


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
    message = {
        "change_id": change_id,
        "execution": event.get("execution"),
        "stage": stage,
        "error": error.get("Error"),
        "summary": summary,
    }
    publish_alarm(step.clients.sns, step.settings.alarm_topic_arn, "eks-proxy rollout failed", message)
    return {"notified": True, "summary": summary}


ACTIONS: dict[str, Callable[[Mapping[str, Any], StepContext], dict[str, Any]]] = {
    "validate_input": validate_input,
    "lease_clock": lease_clock,
    "lease_holder": lease_holder,
    "plan_wave": plan_wave,
    "settle": settle_step,
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
