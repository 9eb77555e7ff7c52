"""The rollout execution dispatch starts: its deterministic name (the dedup key) and its input document.

The name is the same for every delivery of one change and differs for any real change, so Step Functions'
`ExecutionAlreadyExists` is the duplicate filter; the input carries the pinned parameter version, never the value.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from eks_proxy.aws.ssm import ParameterValue
from eks_proxy.config import Settings
from eks_proxy.model import Decision, Outcome

if TYPE_CHECKING:
    from eks_proxy.engine.scope import Scope


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
