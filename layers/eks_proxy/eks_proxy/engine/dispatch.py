"""What the dispatch function does with one event: parse -> scope -> plan -> StartExecution (or nothing).

    event --parse_trigger--> Trigger --scope_for--> Scope | Ignored
          --read_parameter (latest version, pinned)--> parse_proxy_value (+ the CA bundle it names, latest
          version: attach_ca_bundle) --plan_scope--> decisions
          --(any needs a rollout)--> StartExecution(name=execution_name(...), input=execution_input(...))

Nothing here writes to EC2 or EKS: the rollout does. A deleted parameter or an invalid value raises the alarm and
changes nothing; a duplicate change finds its execution already started (deterministic name) and stops there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any

from eks_proxy.aws.clients import AwsClients
from eks_proxy.aws.sns import publish_alarm
from eks_proxy.aws.ssm import ParameterNotFound, ParameterValue, attach_ca_bundle, read_parameter
from eks_proxy.aws.stepfunctions import start_execution
from eks_proxy.config import Settings
from eks_proxy.engine import drift as drift_retry
from eks_proxy.engine.contracts import EventError, Trigger, parse_trigger
from eks_proxy.engine.drift import next_sweep_attempt, persisting_drift, sweep_attempts
from eks_proxy.engine.execution import execution_input, execution_name
from eks_proxy.engine.plan import plan_scope
from eks_proxy.engine.scope import Ignored, Scope, scope_for
from eks_proxy.model import Decision, Outcome
from eks_proxy.proxy.value import ProxyValueError, parse_proxy_value

logger = logging.getLogger(__name__)
MORE = "more-"  # execution name prefix of a batch that RolloutSucceededRule continues (template.yaml)


@dataclass
class DispatchResult:
    """The outcome of one event; `to_dict()` is the handler's return value (no proxy value in it)."""

    status: str
    reason: str = ""
    execution_name: str | None = None
    execution_arn: str | None = None
    decisions: list[Decision] = field(default_factory=list)
    drift: dict[str, int] | None = None  # sweeps only: DriftPersisting per cluster in scope (engine/drift.py)
    executions: list[str] = field(default_factory=list)  # one rollout per cluster: its ARN (or name if a duplicate)

    def count(self, outcome: Outcome) -> int:
        return sum(1 for d in self.decisions if d.outcome is outcome)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "reason": self.reason,
            "execution_name": self.execution_name,
            "execution_arn": self.execution_arn,
            "nodegroups": {o.value: self.count(o) for o in Outcome},
            "drift": self.drift,
            "executions": self.executions,
        }


def _alarm(clients: AwsClients, settings: Settings, subject: str, summary: str) -> None:
    publish_alarm(
        clients.sns, settings.alarm_topic_arn, subject, {"summary": summary, "parameter": settings.proxy_parameter_name}
    )


def _landing(decision: Decision, trigger: Trigger) -> Decision:
    """An UpdateNodegroupVersion by someone else that is still rolling: the node group still reports the version it
    is leaving, so "up to date" says nothing about the version it lands on. Roll it anyway: the rollout's refresh
    waits for that update to end and decides from the version it landed on (basis = that version, for the name).
    """
    requested = trigger.launch_template_version
    if (
        trigger.event_name == "UpdateNodegroupVersion"
        and requested is not None
        and decision.outcome is Outcome.UP_TO_DATE
        and decision.current_version != requested
        and decision.nodegroup == trigger.nodegroup
    ):
        return replace(
            decision,
            outcome=Outcome.CREATE_VERSION,
            reason=f"being updated to version {requested}: decided again once that update ends",
            basis_version=requested,
        )
    return decision


def dispatch(event: dict[str, Any], clients: AwsClients, settings: Settings) -> DispatchResult:
    """Handle one EventBridge event of the four dispatch rules (see the module docstring)."""
    try:
        trigger = parse_trigger(event)
    except EventError as error:
        logger.warning("event ignored", extra={"reason": str(error)})
        return DispatchResult("ignored", str(error))
    scope = scope_for(trigger, settings)
    if isinstance(scope, Ignored):
        if scope.alarm:
            what = (
                "CA bundle parameter"
                if trigger.parameter_name == settings.ca_bundle_parameter_name
                else "proxy parameter"
            )
            logger.warning(f"{what} deleted", extra={"reason": scope.reason})
            _alarm(clients, settings, f"eks-proxy: {what} deleted", scope.reason)
            return DispatchResult("parameter_deleted", scope.reason)
        logger.info(
            "event ignored", extra={"trigger": trigger.kind, "event_name": trigger.event_name, "reason": scope.reason}
        )
        return DispatchResult("ignored", scope.reason)
    try:
        parameter = read_parameter(clients.ssm, settings.proxy_parameter_name)
    except ParameterNotFound as missing:
        logger.warning("no proxy parameter", extra={"reason": str(missing)})
        return DispatchResult("no_parameter", str(missing))
    try:
        config = attach_ca_bundle(
            clients.ssm, parse_proxy_value(parameter.value), allowed=settings.ca_bundle_parameter_name
        )
    except ProxyValueError as invalid:
        reason = f"invalid proxy value in {parameter.name}:{parameter.version}: {invalid}"
        logger.warning("invalid proxy value", extra={"reason": reason})
        _alarm(clients, settings, "eks-proxy: invalid proxy value, nothing changed", reason)
        return DispatchResult("invalid_value", reason)
    if config.ca_bundle is not None:
        logger.info("CA bundle", extra={"parameter": config.ca_bundle_parameter, "bundle": config.ca_bundle.describe()})
        for warning in config.ca_bundle.warnings:
            logger.warning("CA bundle expiring", extra={"parameter": config.ca_bundle_parameter, "reason": warning})
    decisions = [_landing(d, trigger) for d in plan_scope(clients, settings, scope, config)]
    for decision in decisions:
        (logger.warning if decision.outcome is Outcome.OUT_OF_SCOPE else logger.info)(
            "decision", extra=decision.to_log()
        )
    rollouts = [d for d in decisions if d.needs_rollout]
    drift = persisting_drift(decisions, scope.clusters, rollout_ended=False) if trigger.kind == "sweep" else None
    if not rollouts:
        return DispatchResult("up_to_date", f"nothing to change in {scope.key}", decisions=decisions, drift=drift)
    # One execution per cluster: the lease that keeps two rollouts out of one cluster is per cluster, and a rollout
    # that finds it taken waits for it (the change is never lost: it runs next).
    clusters = sorted({d.cluster for d in rollouts})
    results = [
        _start(clients, settings, trigger, scope, parameter, [d for d in decisions if d.cluster == cluster])
        for cluster in clusters
    ]
    for result in results:  # a cluster whose rollout already ran and ended: its drift persists
        if drift is not None and result.drift is not None:
            drift.update(result.drift)
    status = next((s for s in _STATUS_ORDER if any(r.status == s for r in results)), results[0].status)
    first = next((r for r in results if r.status == status), results[0])
    reason = (
        results[0].reason
        if len(results) == 1
        else "; ".join(f"{c}: {r.reason}" for c, r in zip(clusters, results, strict=True))
    )
    return DispatchResult(
        status,
        reason,
        first.execution_name,
        first.execution_arn,
        decisions,
        drift,
        executions=[r.execution_arn or r.execution_name or "" for r in results],
    )


# The status of an event that started several rollouts (one per cluster): the most telling one.
_STATUS_ORDER = ("started", "retried", "drift_backoff", "duplicate")


def _start(
    clients: AwsClients,
    settings: Settings,
    trigger: Trigger,
    scope: Scope,
    parameter: ParameterValue,
    decisions: list[Decision],
) -> DispatchResult:
    """StartExecution for one cluster's node groups (deterministic name: a duplicate finds its execution)."""
    rollouts = [d for d in decisions if d.needs_rollout]
    cluster = rollouts[0].cluster
    name = execution_name(trigger.kind, scope, parameter, decisions, trigger.after)
    # Batches: a scope with more node groups in scope than MAX_NODEGROUPS_PER_ROLLOUT goes in executions named
    # `more-...`; when one succeeds, RolloutSucceededRule runs the sweep again, which reconciles from current state
    # and starts the next batch (it waits for the cluster's lease like any rollout). The mark counts every node group
    # in scope (stable while the rollout progresses, so duplicates keep the name); small scopes are never continued.
    in_scope = sum(1 for d in decisions if d.outcome is not Outcome.OUT_OF_SCOPE)
    if in_scope > settings.max_nodegroups_per_rollout:
        name = f"{MORE}{name}"[:80]
    batch = rollouts[: settings.max_nodegroups_per_rollout]
    later = len(rollouts) - len(batch)
    document = execution_input(trigger.event_id, trigger.kind, parameter, settings, batch)
    arn = start_execution(clients.sfn, settings.state_machine_arn, name, document)
    if arn is None:
        if trigger.kind == "sweep":
            return _sweep_again(clients, settings, name, document, decisions, (cluster,))
        logger.info("duplicate change", extra={"execution_name": name})
        return DispatchResult("duplicate", "this change already has its rollout", name, decisions=decisions)
    logger.info(
        "rollout started",
        extra={"execution_name": name, "execution_arn": arn, "nodegroups": len(batch), "later": later},
    )
    reason = f"{len(batch)} node group(s) to roll" + (f", {later} more when this rollout succeeds" if later else "")
    return DispatchResult("started", reason, name, arn, decisions)


def _sweep_again(
    clients: AwsClients,
    settings: Settings,
    name: str,
    document: dict[str, Any],
    decisions: list[Decision],
    clusters: tuple[str, ...],
) -> DispatchResult:
    """The sweep found its execution name taken: the same drift as an earlier attempt. While that attempt runs it
    is a duplicate; once it ended, the drift persists: count it, and start the next attempt when its backoff is over
    (engine/drift.py), so a failed rollout is retried across days and never silently given up."""
    attempts = sweep_attempts(clients.sfn, settings.state_machine_arn, name)
    if not attempts:  # the name was taken a moment ago, then not found: a racing sweep; it does the work
        return DispatchResult("duplicate", "this change already has its rollout", name, decisions=decisions)
    step = next_sweep_attempt(attempts, name, drift_retry.now())
    if step.action == "running":
        logger.info("duplicate change", extra={"execution_name": step.name})
        return DispatchResult("duplicate", "this change already has its rollout", step.name, decisions=decisions)
    drift = persisting_drift(decisions, clusters, rollout_ended=True)
    fields = {"execution_name": step.name, "attempts": step.attempts, "drift": drift}
    if step.action == "backoff":
        when = step.next_at.isoformat() if step.next_at else "?"
        logger.warning("drift persists", extra=fields | {"next_attempt_at": when})
        reason = f"drift persists after {step.attempts} attempt(s); next attempt from {when}"
        return DispatchResult("drift_backoff", reason, step.name, decisions=decisions, drift=drift)
    arn = start_execution(clients.sfn, settings.state_machine_arn, step.name, document)
    if arn is None:
        return DispatchResult("duplicate", "this change already has its rollout", step.name, decisions=decisions)
    logger.warning("drift persists: rollout retried", extra=fields)
    reason = f"drift persists after {step.attempts} attempt(s): retried"
    return DispatchResult("retried", reason, step.name, arn, decisions, drift)
