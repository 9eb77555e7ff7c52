"""The reconcile decision per node group, from its current state alone (pure: no AWS here).

`reconcile_nodegroup` answers one question for one node group: out of scope (with the reason and the remedy), up to
date, roll to an existing version that already carries the desired configuration, or create a new version. Replays,
duplicates and our own CloudTrail echoes therefore change nothing: the second time round the answer is "up to date"
or "roll the version you already made".

The impure parts that read AWS and apply a decision live beside it: `engine/plan.py` (read-only, for a scope) and
`engine/refresh.py` (the one write: a launch template version). The types it reads and returns are in
`eks_proxy.model`.

A version we create is recognisable by its description, `eks-proxy <fingerprint> from v<source version> parameter
v<parameter version>` (the last part is absent on versions made before it was recorded), and by the fingerprint
inside its user data; both must agree before it is reused. `made_by_us` reads the description back.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from eks_proxy.config import DEFAULTS
from eks_proxy.model import Decision, NodegroupState, Outcome, TemplateVersion
from eks_proxy.proxy.no_proxy import NodeContext
from eks_proxy.proxy.value import ProxyConfig
from eks_proxy.userdata.merge import UserDataError, desired_fingerprint, find_fingerprint, inject, render_userdata
from eks_proxy.userdata.node_os import NodeOS, node_os_for

NO_TEMPLATE_REMEDY = "recreate the node group with a launch template (EKS cannot add one to an existing node group)"
# Node group states in which an update can never start (CREATING/UPDATING only delay it: the rollout waits).
_DEAD_STATUSES = frozenset({"DELETING", "CREATE_FAILED", "DELETE_FAILED"})
_DESCRIPTION = re.compile(
    r"^eks-proxy (?P<fingerprint>[0-9A-Za-z]+) from v(?P<source>\d+)(?: parameter v(?P<parameter>\d+))?(?:$|\s)"
)


def version_description(fingerprint: str, source_version: int, parameter_version: int | None = None) -> str:
    """The VersionDescription of a version we create (EC2 allows 255 characters): our fingerprint, the version it was
    copied from and the parameter version whose value it carries (so `eks-proxy fleet` needs no side store)."""
    made_from = f" parameter v{parameter_version}" if parameter_version is not None else ""
    return f"eks-proxy {fingerprint} from v{source_version}{made_from}"


@dataclass(frozen=True)
class OurVersion:
    """What the description of a launch template version we made says."""

    fingerprint: str
    source_version: int
    parameter_version: int | None


def made_by_us(description: str | None) -> OurVersion | None:
    """The description of a version we made, read back; None for any other description."""
    match = _DESCRIPTION.match(description or "")
    if not match:
        return None
    parameter = match["parameter"]
    return OurVersion(match["fingerprint"], int(match["source"]), int(parameter) if parameter else None)


def client_token(template_id: str, source_version: int, fingerprint: str) -> str:
    """CreateLaunchTemplateVersion ClientToken: racing refreshes of one change make one version (EC2 dedups)."""
    digest = hashlib.sha256(f"{template_id}:{source_version}:{fingerprint}".encode()).hexdigest()
    return f"eks-proxy-{digest[:48]}"


def _source_of(version: TemplateVersion, fingerprint: str) -> int | None:
    """The source version recorded in a version we made for `fingerprint` (None for anyone else's version)."""
    match = _DESCRIPTION.match(version.description or "")
    return int(match["source"]) if match and match["fingerprint"] == fingerprint else None


def _fingerprint_of(user_data: str | None) -> str | None:
    return find_fingerprint(user_data) if user_data else None


def find_reusable_version(candidates: Sequence[TemplateVersion], source_version: int, fingerprint: str) -> int | None:
    """The oldest later version we made from `source_version` that carries `fingerprint`, if any."""
    for version in sorted(candidates, key=lambda v: v.number):
        match = _DESCRIPTION.match(version.description or "")
        if (
            version.number > source_version
            and match
            and match["fingerprint"] == fingerprint
            and int(match["source"]) == source_version
            and _fingerprint_of(version.user_data) == fingerprint
        ):
            return version.number
    return None


def _new_user_data(
    current: str | None, config: ProxyConfig, context: NodeContext, node_os: NodeOS
) -> tuple[str | None, str]:
    """Base64 user data for the new version, or None when the current one already is exactly that; and inject's
    note when it changes for a reason the fingerprint cannot show ("" otherwise).

    Up to date means "inject would change nothing", not "our marker is there": a deleted or hand-edited part of
    ours still carries the marker but is drift, and gets refreshed; so does a user's NodeConfig part that would
    override our proxy variables (merge.py).
    """
    if not current:
        return base64.b64encode(render_userdata(config, context, node_os)).decode(), ""
    result = inject(current, config, context, node_os)
    if not result.changed:
        return None, ""
    data = result.user_data.decode() if isinstance(result.user_data, bytes) else result.user_data
    return data, result.note


def _resolve_os(nodegroup: NodegroupState, os_hint_tag_key: str) -> tuple[NodeOS | None, str]:
    hint = nodegroup.tags.get(os_hint_tag_key)
    return node_os_for(nodegroup.ami_type, hint)


def reconcile_nodegroup(
    nodegroup: NodegroupState,
    current: TemplateVersion | None,
    config: ProxyConfig,
    context: NodeContext,
    *,
    opt_out_tag_key: str = DEFAULTS.opt_out_tag_key,
    os_hint_tag_key: str = DEFAULTS.os_hint_tag_key,
    candidates: Sequence[TemplateVersion] = (),
) -> Decision:
    """Decide for one node group from its current state.

    `current` is the launch template version the node group runs (None: it no longer exists); `candidates` are
    later versions of the same template (only needed when the current one is out of date: callers pass them in a
    second call, so an up-to-date node group costs no extra read).

    >>> from eks_proxy.model import LaunchTemplateRef
    >>> from eks_proxy.proxy.value import parse_proxy_value
    >>> ng = NodegroupState("prod", "ng-a", "ACTIVE", "AL2023_x86_64_STANDARD", LaunchTemplateRef("lt-1", None, 1))
    >>> script = base64.b64encode(b"#!/bin/bash\\necho hi\\n").decode()
    >>> config, ctx = parse_proxy_value("http://10.0.0.10:3128"), NodeContext("eu-west-1")
    >>> decision = reconcile_nodegroup(ng, TemplateVersion(1, script), config, ctx)
    >>> decision.outcome.value, decision.basis_version, decision.needs_rollout
    ('create_version', 1, True)
    """
    out = Decision(
        nodegroup.cluster,
        nodegroup.name,
        Outcome.OUT_OF_SCOPE,
        launch_template=nodegroup.launch_template,
        nodegroup_status=nodegroup.status,
    )
    if nodegroup.tags.get(opt_out_tag_key, "").strip().lower() == "true":
        return replace(
            out,
            reason=f"opted out by tag {opt_out_tag_key}=true",
            remedy=f"remove the tag {opt_out_tag_key} to let eks-proxy manage it",
        )
    lt = nodegroup.launch_template
    if lt is None:
        return replace(out, reason="node group was created without a launch template", remedy=NO_TEMPLATE_REMEDY)
    node_os, why = _resolve_os(nodegroup, os_hint_tag_key)
    if node_os is None:
        return replace(
            out,
            reason=why,
            remedy=f"for a custom AMI, tag the node group {os_hint_tag_key}=al2023|al2|bottlerocket",
            blocked=(nodegroup.ami_type or "").upper() == "CUSTOM",
        )
    out = replace(out, node_os=node_os.value)
    if nodegroup.status in _DEAD_STATUSES:
        return replace(out, reason=f"node group is {nodegroup.status}")
    if current is None:
        return replace(
            out,
            reason=f"launch template {lt.label()} version {lt.version} no longer exists",
            remedy="point the node group at an existing launch template version",
            current_version=lt.version,
        )
    desired = desired_fingerprint(config, context, node_os)
    have = _fingerprint_of(current.user_data)
    ours = made_by_us(current.description)
    out = replace(
        out,
        current_parameter_version=ours.parameter_version if ours and have and ours.fingerprint == have else None,
        current_version=current.number,
        current_fingerprint=have,
        desired_fingerprint=desired,
        current_user_data=current.user_data,
    )
    try:
        new_user_data, note = _new_user_data(current.user_data, config, context, node_os)
    except UserDataError as error:
        return replace(
            out,
            basis_version=current.number,
            reason=f"user data cannot be merged: {error}",
            blocked=True,
            remedy="fix the launch template's user data (MIME multipart for Amazon Linux, TOML for Bottlerocket)",
        )
    if new_user_data is None:
        return replace(
            out,
            outcome=Outcome.UP_TO_DATE,
            target_version=current.number,
            basis_version=_source_of(current, desired) or current.number,
        )
    out = replace(out, basis_version=current.number)
    reusable = find_reusable_version(candidates, current.number, desired)
    if reusable is not None:
        return replace(
            out,
            outcome=Outcome.ROLL_EXISTING,
            target_version=reusable,
            reason="a version with it already exists",
            new_user_data=new_user_data,
        )
    return replace(
        out, outcome=Outcome.CREATE_VERSION, reason=note or "proxy configuration differs", new_user_data=new_user_data
    )
