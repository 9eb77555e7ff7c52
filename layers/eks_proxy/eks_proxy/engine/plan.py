"""The plan for a scope and the launch template refresh: `reconcile_nodegroup` fed with what AWS says now.

Read-only `plan_scope` is what dispatch (and `eks-proxy plan`) runs; `refresh_launch_template` is the one write of
the refresh step: it re-reads the node group, then creates one version or reuses the one already made.

Cost per node group (figures in bench/bench_engine.py): up to date = DescribeNodegroup + one
DescribeLaunchTemplateVersions; out of date adds one paginated DescribeLaunchTemplateVersions (reuse candidates).
Per cluster, once: ListNodegroups (100 per page), DescribeCluster, DescribeSubnets/DescribeVpcs.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from eks_proxy.aws.clients import AwsClients
from eks_proxy.aws.ec2 import create_template_version, get_template_version, later_versions, template_id_of, vpc_cidrs
from eks_proxy.aws.eks import NodegroupNotFound, describe_cluster, describe_nodegroup, list_nodegroups
from eks_proxy.aws.ssm import ParameterValue
from eks_proxy.config import Settings
from eks_proxy.engine.reconcile import Decision, NodegroupState, Outcome, reconcile_nodegroup
from eks_proxy.proxy.no_proxy import NodeContext
from eks_proxy.proxy.value import ProxyConfig

if TYPE_CHECKING:
    from eks_proxy.engine.scope import Scope


# DescribeNodegroup statuses while an update of the node group runs (its launch template version is about to move).
UPDATING_STATUSES = frozenset({"UPDATING"})


class NodegroupUpdating(RuntimeError):
    """The node group is being updated by someone else: refresh it once that update is over."""


@dataclass
class ContextCache:
    """NodeContext per cluster: DescribeCluster + VPC CIDRs are read once per cluster, then reused for
    `max_age_seconds` (a warm rollout step container reuses them across node groups of one rollout)."""

    max_age_seconds: float = 300.0
    contexts: dict[str, NodeContext] = field(default_factory=dict)
    _read_at: dict[str, float] = field(default_factory=dict)

    def get(self, clients: AwsClients, cluster: str) -> NodeContext:
        now = time.monotonic()
        if cluster not in self.contexts or now - self._read_at.get(cluster, now) > self.max_age_seconds:
            info = describe_cluster(clients.eks, cluster)
            self.contexts[cluster] = NodeContext(
                region=clients.region,
                service_cidr=info.service_cidr,
                cluster_endpoint=info.endpoint,
                vpc_cidrs=vpc_cidrs(clients.ec2, info.vpc_id, info.subnet_ids),
            )
            self._read_at[cluster] = now
        return self.contexts[cluster]

    def clear(self) -> None:
        self.contexts.clear()
        self._read_at.clear()


def _decide(
    clients: AwsClients, settings: Settings, state: NodegroupState, config: ProxyConfig, context: NodeContext
) -> Decision:
    """Two-phase decision: the reuse candidates are read only when the current version is out of date."""
    lt = state.launch_template
    current = get_template_version(clients.ec2, lt) if lt else None
    decide = partial(
        reconcile_nodegroup,
        state,
        current,
        config,
        context,
        opt_out_tag_key=settings.opt_out_tag_key,
        os_hint_tag_key=settings.os_hint_tag_key,
    )
    decision = decide()
    if decision.outcome is Outcome.CREATE_VERSION and lt and current:
        candidates = later_versions(clients.ec2, lt, current.number)
        if candidates:
            decision = decide(candidates=candidates)
    return decision


def plan_nodegroup(
    clients: AwsClients,
    settings: Settings,
    cluster: str,
    nodegroup: str,
    config: ProxyConfig,
    cache: ContextCache | None = None,
) -> Decision:
    """The decision for one node group from its current state (read-only)."""
    try:
        state = describe_nodegroup(clients.eks, cluster, nodegroup)
    except NodegroupNotFound as gone:
        return Decision(cluster=cluster, nodegroup=nodegroup, outcome=Outcome.OUT_OF_SCOPE, reason=str(gone))
    context = (cache or ContextCache()).get(clients, cluster)
    return _decide(clients, settings, state, config, context)


def _nodegroups(clients: AwsClients, scope: Scope) -> Iterator[tuple[str, str]]:
    for cluster in scope.clusters:
        if scope.kind == "nodegroup" and scope.nodegroup:
            yield cluster, scope.nodegroup
        else:
            for nodegroup in list_nodegroups(clients.eks, cluster):
                yield cluster, nodegroup


def plan_scope(
    clients: AwsClients, settings: Settings, scope: Scope, config: ProxyConfig, cache: ContextCache | None = None
) -> list[Decision]:
    """Every node group of `scope` with its decision (read-only), sorted by cluster and node group.

    For a launch template scope, node groups using another template are left out of the result.
    """
    cache = cache or ContextCache()
    decisions: list[Decision] = []
    for cluster, nodegroup in _nodegroups(clients, scope):
        try:
            state = describe_nodegroup(clients.eks, cluster, nodegroup)
        except NodegroupNotFound as gone:
            decisions.append(Decision(cluster, nodegroup, Outcome.OUT_OF_SCOPE, reason=str(gone)))
            continue
        lt = state.launch_template
        if scope.kind == "launch_template" and not scope.uses_template(lt.id if lt else None, lt.name if lt else None):
            continue
        decisions.append(_decide(clients, settings, state, config, cache.get(clients, cluster)))
    return sorted(decisions, key=lambda d: (d.cluster, d.nodegroup))


def refresh_launch_template(
    clients: AwsClients,
    settings: Settings,
    cluster: str,
    nodegroup: str,
    config: ProxyConfig,
    cache: ContextCache | None = None,
    parameter_version: int | None = None,
) -> Decision:
    """Re-read the node group and make its launch template carry the desired configuration.

    `parameter_version` (the parameter version `config` was read from) goes into a created version's description.

    Returns the decision with `target_version` set to the version to roll to: the version just created
    (CREATE_VERSION), the one made earlier (ROLL_EXISTING) or the current one (UP_TO_DATE). Out of scope (for
    example the launch template was deleted meanwhile) is returned unchanged, nothing written. Raises
    `NodegroupUpdating` (nothing written) while another update of the node group runs.
    """
    try:
        state = describe_nodegroup(clients.eks, cluster, nodegroup)
    except NodegroupNotFound as gone:
        return Decision(cluster=cluster, nodegroup=nodegroup, outcome=Outcome.OUT_OF_SCOPE, reason=str(gone))
    if state.status in UPDATING_STATUSES:
        # Another update is rolling it (a person, another rollout): a version built on the version it runs now
        # would revert what that update brings. Decide again once it is over.
        raise NodegroupUpdating(f"{cluster}/{nodegroup} is {state.status}: another update is in progress")
    decision = _decide(clients, settings, state, config, (cache or ContextCache()).get(clients, cluster))
    lt = decision.launch_template
    if decision.outcome is not Outcome.CREATE_VERSION or lt is None or decision.current_version is None:
        return decision
    template_id = template_id_of(clients.ec2, lt)
    if template_id is None or decision.new_user_data is None or decision.desired_fingerprint is None:
        return Decision(
            cluster, nodegroup, Outcome.OUT_OF_SCOPE, reason=f"launch template {lt.label()} no longer exists"
        )
    created = create_template_version(
        clients.ec2,
        lt,
        template_id,
        decision.current_version,
        decision.desired_fingerprint,
        decision.new_user_data,
        parameter_version,
    )
    return Decision(
        cluster=cluster,
        nodegroup=nodegroup,
        outcome=Outcome.CREATE_VERSION,
        reason=decision.reason,
        node_os=decision.node_os,
        launch_template=lt,
        current_version=decision.current_version,
        target_version=created,
        current_fingerprint=decision.current_fingerprint,
        desired_fingerprint=decision.desired_fingerprint,
    )


def execution_name(
    trigger: str, scope: Scope, parameter: ParameterValue, decisions: list[Decision], after: str | None = None
) -> str:
    """Deterministic, at most 80 characters: `<trigger>-sha256(scope, parameter version, per node group in scope the
    desired fingerprint and basis version)`.

    The basis version is the version a change starts from: the current one, or for a node group already on a version
    we made for this fingerprint, that version's source. So the name stays the same while the rollout progresses
    (a late duplicate delivery still collapses into the running execution) and changes with any real change (a new
    parameter version, a new launch template version someone rolled, a new cluster fact). Out-of-scope node groups
    do not count. `after` (the execution a batch follows) tells the batches of one large change apart: their
    decisions hash alike, since a node group we rolled keeps its basis.
    """
    counted = sorted(
        [d.cluster, d.nodegroup, d.desired_fingerprint, d.basis_version]
        for d in decisions
        if d.outcome is not Outcome.OUT_OF_SCOPE
    )
    document: dict[str, Any] = {
        "scope": scope.key,
        "parameter": [parameter.name, parameter.version],
        "nodegroups": counted,
    }
    if after:
        document["after"] = after
    basis = json.dumps(document, sort_keys=True)
    return f"{trigger}-{hashlib.sha256(basis.encode()).hexdigest()}"[:80]


def execution_input(
    change_id: str, trigger: str, parameter: ParameterValue, settings: Settings, rollouts: list[Decision]
) -> dict[str, Any]:
    """The rollout execution input (docs/ARCHITECTURE.md): canary first, the rest after it. Never the value."""
    targets = [{"cluster": d.cluster, "nodegroup": d.nodegroup} for d in rollouts]
    return {
        "change_id": change_id,
        "trigger": trigger,
        "parameter": {"name": parameter.name, "version": parameter.version},
        "max_concurrency": settings.max_concurrency,
        "rollback_on_failure": settings.rollback_on_failure,
        "canary": targets[0],
        "rest": targets[1:],
    }
