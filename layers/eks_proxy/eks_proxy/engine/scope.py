"""Which node groups a trigger concerns, or why the trigger is dropped.

Every trigger only narrows the scope; the reconcile decides per node group from the current state. Dropping is cheap
and happens here, before any AWS call: failed calls, our own calls (OWN_ROLE_ARNS), calls EKS makes itself (it
copies a customer launch template into its own `eks-<uuid>` template), other parameters, clusters not configured.

>>> from eks_proxy.config import Settings
>>> from eks_proxy.engine.contracts import Trigger
>>> s = Settings(cluster_names=("prod",), alarm_topic_arn="arn:aws:sns:eu-west-1:1:t")
>>> scope_for(Trigger(kind="nodegroup", event_id="e", cluster="prod", nodegroup="ng-a"), s)
Scope(kind='nodegroup', clusters=('prod',), nodegroup='ng-a', launch_template_id=None, launch_template_name=None)
>>> scope_for(Trigger(kind="nodegroup", event_id="e", cluster="dev", nodegroup="ng-a"), s).reason
"cluster 'dev' is not in CLUSTER_NAMES"
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # types only: the rollout step imports this module and must not pay for the event models
    from eks_proxy.config import Settings
    from eks_proxy.engine.contracts import Caller, Trigger

ScopeKind = Literal["all", "nodegroup", "launch_template"]
EKS_SERVICE_ROLE = "AWSServiceRoleForAmazonEKSNodegroup"
EKS_NODEGROUP_TAG = "eks:nodegroup-name"
_EKS_TEMPLATE_NAME = re.compile(r"^eks-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_ASSUMED_ROLE = re.compile(r"^arn:(?P<partition>[^:]+):sts::(?P<account>\d+):assumed-role/(?P<role>[^/]+)/.*$")
_ROLE = re.compile(r"^arn:[^:]+:iam::(?P<account>\d+):role/(?:.*/)?(?P<role>[^/]+)$")
# SSM operations that change the value; LabelParameterVersion only moves a label.
VALUE_OPERATIONS = frozenset({"Create", "Update"})


@dataclass(frozen=True)
class Scope:
    """The node groups a change concerns: all of the configured clusters, one node group, or one template's users."""

    kind: ScopeKind
    clusters: tuple[str, ...]
    nodegroup: str | None = None
    launch_template_id: str | None = None
    launch_template_name: str | None = None

    @property
    def key(self) -> str:
        """A stable text form, part of the deterministic execution name."""
        if self.kind == "nodegroup":
            return f"nodegroup:{self.clusters[0]}/{self.nodegroup}"
        if self.kind == "launch_template":
            return f"launch_template:{self.launch_template_id or ''}/{self.launch_template_name or ''}"
        return "all:" + ",".join(sorted(self.clusters))

    def uses_template(self, template_id: str | None, template_name: str | None) -> bool:
        """True when a node group's launch template (id and/or name) is the one this scope names."""
        if self.kind != "launch_template":
            return True
        return bool(
            (self.launch_template_id and self.launch_template_id == template_id)
            or (self.launch_template_name and self.launch_template_name == template_name)
        )


@dataclass(frozen=True)
class Ignored:
    """A trigger that touches nothing; `alarm` asks the dispatch to raise the alarm (the parameter was deleted)."""

    reason: str
    alarm: bool = False


def _role_key(arn: str | None) -> tuple[str, str] | None:
    """(account, role name) of a role or assumed-role ARN, so either form of our own roles matches."""
    if not arn:
        return None
    match = _ASSUMED_ROLE.match(arn) or _ROLE.match(arn)
    return (match["account"], match["role"]) if match else None


def is_own_call(caller: Caller, own_role_arns: tuple[str, ...]) -> bool:
    """True when one of our writing functions made the call (its CloudTrail echo must not start a rollout)."""
    own = {key for key in (_role_key(arn) for arn in own_role_arns) if key}
    if not own:
        return False
    return any(_role_key(arn) in own for arn in (caller.issuer_arn, caller.arn))


def is_eks_call(trigger: Trigger) -> bool:
    """True when EKS itself made the call (managed node groups copy launch templates into `eks-<uuid>` ones)."""
    caller = trigger.caller
    for service in ((caller.invoked_by or "").lower(), (caller.source_ip or "").lower()):
        if service.startswith("eks") and service.endswith(".amazonaws.com"):
            return True
    if any(EKS_SERVICE_ROLE in (arn or "") for arn in (caller.issuer_arn, caller.arn)):
        return True
    name = trigger.launch_template_name or ""
    return bool(_EKS_TEMPLATE_NAME.match(name)) and EKS_NODEGROUP_TAG in trigger.launch_template_tags


def scope_for(trigger: Trigger, settings: Settings) -> Scope | Ignored:
    """Narrow a trigger to a `Scope`, or say why it is `Ignored` (no AWS call is made here)."""
    clusters = settings.cluster_names
    if trigger.kind == "sweep":
        return Scope(kind="all", clusters=clusters)
    if trigger.kind == "ssm":
        if trigger.parameter_name == settings.ca_bundle_parameter_name and trigger.parameter_name:
            # The CA bundle a proxy value may name: a rotation rolls out like a proxy change (the fingerprint
            # covers the bundle's content; a value that names no bundle leaves every node group up to date).
            if trigger.operation == "Delete":
                return Ignored(
                    f"CA bundle parameter {trigger.parameter_name} was deleted: nodes keep their configuration; "
                    "a proxy value that names it is refused until it exists again",
                    True,
                )
        elif trigger.parameter_name != settings.proxy_parameter_name:
            return Ignored(f"parameter {trigger.parameter_name!r} is not {settings.proxy_parameter_name!r}")
        if trigger.operation == "Delete":
            return Ignored(f"parameter {trigger.parameter_name} was deleted: nodes keep their configuration", True)
        if trigger.operation not in VALUE_OPERATIONS:
            return Ignored(f"parameter operation {trigger.operation!r} does not change the value")
        return Scope(kind="all", clusters=clusters)
    if trigger.error_code:
        return Ignored(f"{trigger.event_name} failed ({trigger.error_code})")
    if is_own_call(trigger.caller, settings.own_role_arns):
        return Ignored(f"{trigger.event_name} was made by eks-proxy itself")
    if is_eks_call(trigger):
        return Ignored(f"{trigger.event_name} was made by EKS itself")
    if trigger.kind == "nodegroup":
        if not trigger.cluster or not trigger.nodegroup:
            return Ignored(f"{trigger.event_name} names no cluster and node group")
        if trigger.cluster not in clusters:
            return Ignored(f"cluster {trigger.cluster!r} is not in CLUSTER_NAMES")
        return Scope(kind="nodegroup", clusters=(trigger.cluster,), nodegroup=trigger.nodegroup)
    if not trigger.launch_template_id and not trigger.launch_template_name:
        return Ignored(f"{trigger.event_name} names no launch template")
    return Scope(
        kind="launch_template",
        clusters=clusters,
        launch_template_id=trigger.launch_template_id,
        launch_template_name=trigger.launch_template_name,
    )
