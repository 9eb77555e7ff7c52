"""The refresh: the one write of a rollout before the node group update, a launch template version.

`refresh_launch_template` re-reads the node group, decides again (`engine/plan.decide`), then creates one version
copied from the current one with only the user data replaced, or reuses the one already made. The version's
description and ClientToken come from `engine/reconcile` (how our versions are recognised), so racing refreshes
of one change make one version.
"""

from __future__ import annotations

from eks_proxy.aws.clients import AwsClients
from eks_proxy.aws.ec2 import create_template_version, template_id_of
from eks_proxy.aws.eks import NodegroupNotFound, describe_nodegroup
from eks_proxy.config import Settings
from eks_proxy.engine.plan import UPDATING_STATUSES, ContextCache, decide
from eks_proxy.engine.reconcile import client_token, version_description
from eks_proxy.model import Decision, Outcome
from eks_proxy.proxy.value import ProxyConfig

__all__ = ["UPDATING_STATUSES", "NodegroupUpdating", "refresh_launch_template"]


class NodegroupUpdating(RuntimeError):
    """The node group is being updated by someone else: refresh it once that update is over."""


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
    decision = decide(clients, settings, state, config, (cache or ContextCache()).get(clients, cluster))
    lt = decision.launch_template
    if decision.outcome is not Outcome.CREATE_VERSION or lt is None or decision.current_version is None:
        return decision
    template_id = template_id_of(clients.ec2, lt)
    if template_id is None or decision.new_user_data is None or decision.desired_fingerprint is None:
        return Decision(
            cluster, nodegroup, Outcome.OUT_OF_SCOPE, reason=f"launch template {lt.label()} no longer exists"
        )
    source, fingerprint = decision.current_version, decision.desired_fingerprint
    created = create_template_version(
        clients.ec2,
        lt,
        source,
        decision.new_user_data,
        description=version_description(fingerprint, source, parameter_version),
        client_token=client_token(template_id, source, fingerprint),
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
