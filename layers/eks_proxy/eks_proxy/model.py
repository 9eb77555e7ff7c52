"""The node group vocabulary every layer shares: what AWS says about a node group and what the engine decides.

`aws/` adapters return `NodegroupState`, `LaunchTemplateRef` and `TemplateVersion`; `engine/reconcile` turns them
into a `Decision` with an `Outcome`; dispatch, the rollout step and `eks-proxy plan` read decisions. Plain frozen
dataclasses, no behaviour beyond presentation, no imports from the rest of the package: both `aws/` and `engine/`
import this module, so it sits below them.

>>> LaunchTemplateRef(id="lt-0abc", version=3).for_update(4)
{'id': 'lt-0abc', 'version': '4'}
>>> Decision("prod", "ng-a", Outcome.CREATE_VERSION).needs_rollout
True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    OUT_OF_SCOPE = "out_of_scope"
    UP_TO_DATE = "up_to_date"
    ROLL_EXISTING = "roll_existing"
    CREATE_VERSION = "create_version"


@dataclass(frozen=True)
class LaunchTemplateRef:
    """A node group's launch template exactly as the node group holds it (id and/or name, and its version)."""

    id: str | None = None
    name: str | None = None
    version: int | None = None

    def for_update(self, version: int) -> dict[str, str]:
        """The `launchTemplate` argument of UpdateNodegroupVersion: id if the node group has it, else its name."""
        key = {"id": self.id} if self.id else {"name": self.name or ""}
        return {**key, "version": str(version)}

    def label(self) -> str:
        return self.id or self.name or "?"


@dataclass(frozen=True)
class NodegroupState:
    """What DescribeNodegroup says about one node group (only what the decision needs)."""

    cluster: str
    name: str
    status: str
    ami_type: str
    launch_template: LaunchTemplateRef | None
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TemplateVersion:
    """One launch template version: its number, base64 user data (None when it has none), description."""

    number: int
    user_data: str | None
    description: str = ""


@dataclass(frozen=True)
class Decision:
    """The reconcile result for one node group. `current_user_data` / `new_user_data` (base64) are never logged."""

    cluster: str
    nodegroup: str
    outcome: Outcome
    reason: str = ""
    remedy: str = ""
    node_os: str | None = None
    launch_template: LaunchTemplateRef | None = None
    current_version: int | None = None
    basis_version: int | None = None  # the version this change starts from; stable while the rollout progresses
    target_version: int | None = None
    current_fingerprint: str | None = None
    desired_fingerprint: str | None = None
    new_user_data: str | None = field(default=None, repr=False)
    current_user_data: str | None = field(default=None, repr=False)  # base64, as read (for `eks-proxy plan` diffs)
    # The parameter version the running launch template version was made from, when eks-proxy made it (its
    # description says so and the fingerprint in its user data agrees); None for anyone else's version.
    current_parameter_version: int | None = None
    nodegroup_status: str = ""  # DescribeNodegroup's status as read (ACTIVE, UPDATING, ...)
    # Out of scope although it is meant to be managed, and only a person can fix it (user data that cannot be merged,
    # a custom AMI without the OS hint): counted in DriftPersisting, which alarms, not only logged as a warning.
    blocked: bool = False

    @property
    def needs_rollout(self) -> bool:
        return self.outcome in (Outcome.ROLL_EXISTING, Outcome.CREATE_VERSION)

    def to_log(self) -> dict[str, Any]:
        """Structured log fields (no user data)."""
        lt = self.launch_template
        return {
            "cluster": self.cluster,
            "nodegroup": self.nodegroup,
            "outcome": self.outcome.value,
            "reason": self.reason,
            "remedy": self.remedy,
            "node_os": self.node_os,
            "launch_template": lt.label() if lt else None,
            "version_before": self.current_version,
            "version_after": self.target_version,
            "fingerprint_before": self.current_fingerprint,
            "fingerprint": self.desired_fingerprint,
        }
