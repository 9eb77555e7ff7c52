"""Where the fleet stands: per node group, the configuration it carries, whether that is the parameter's current value,
and when not, why (pure: the reads are done by `eks-proxy fleet`, eks_proxy/cli/fleet.py).

Inputs: the read-only plan of every node group against the parameter's current value (`plan_scope` decisions: the
launch template version running, its fingerprint, the parameter version its description names) and the newest
rollout outcome per node group from the rollout state machine's executions (`LastRollout`).

States, first match wins:

| state | when | why says |
|---|---|---|
| `current` | the running version carries exactly the current value (plan: up to date) | - |
| `out_of_scope` | plan: out of scope | the reason, and the remedy |
| `waiting` | the node group is UPDATING/CREATING, or a running rollout has not reached it yet | whose update |
| `rolled_back`, `rollback_failed`, `moved_on`, `gone` | the newest rollout recorded that outcome | its summary |
| `rolled_back` | the newest rollout recorded `failed`, "rolled back" in its summary (older rollouts) | its summary |
| `failed` | the newest rollout failed on it (or stopped before reaching it) | the rollout's summary |
| `drift` | anything else: not current, nothing running, no failure explains it | the plan's reason |
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eks_proxy.model import Decision, Outcome

SCHEMA_VERSION = 1
# Summary order and wording of every state but `current`.
STATES: dict[str, str] = {
    "out_of_scope": "out of scope",
    "waiting": "waiting",
    "failed": "failed",
    "rolled_back": "rolled back",
    "rollback_failed": "rollback failed",
    "moved_on": "moved on",
    "gone": "gone",
    "drift": "drifted",
}
_BUSY = frozenset({"UPDATING", "CREATING"})
_RECORDED = frozenset({"rolled_back", "rollback_failed", "moved_on", "gone"})  # record outcomes shown as states


@dataclass(frozen=True)
class LastRollout:
    """The newest rollout that listed a node group: its execution and what it recorded for the node group.

    `outcome` is a `record` outcome (rolled, skipped, failed, and newer ones such as gone, moved_on,
    rollback_failed), `in_progress` (execution running, node group not recorded yet) or `not_reached` (the execution
    ended without recording it: stopped by an earlier failure).
    """

    execution: str
    execution_status: str
    outcome: str
    summary: str
    at: datetime | None


@dataclass(frozen=True)
class FleetRow:
    """One node group as `eks-proxy fleet` shows it."""

    decision: Decision
    state: str
    why: str = ""
    remedy: str = ""
    last: LastRollout | None = None

    @property
    def current(self) -> bool:
        return self.state == "current"

    def to_json(self) -> dict[str, Any]:
        d = self.decision
        lt = d.launch_template
        last = self.last
        return {
            "cluster": d.cluster,
            "nodegroup": d.nodegroup,
            "nodegroup_status": d.nodegroup_status or None,
            "os": d.node_os,
            "launch_template": {"id": lt.id, "name": lt.name} if lt else None,
            "version": d.current_version,
            "fingerprint": d.current_fingerprint,
            "parameter_version": d.current_parameter_version,
            "desired_fingerprint": d.desired_fingerprint,
            "current": self.current,
            "state": self.state,
            "why": self.why or None,
            "remedy": self.remedy or None,
            "last_rollout": None
            if last is None
            else {
                "execution": last.execution,
                "execution_status": last.execution_status,
                "outcome": last.outcome,
                "summary": last.summary,
                "at": last.at.isoformat() if last.at else None,
            },
        }


def assess(decision: Decision, last: LastRollout | None) -> FleetRow:
    """The state of one node group (the table in the module docstring)."""
    if decision.outcome is Outcome.UP_TO_DATE:
        return FleetRow(decision, "current", last=last)
    if decision.outcome is Outcome.OUT_OF_SCOPE:
        return FleetRow(decision, "out_of_scope", decision.reason, decision.remedy, last)
    if decision.nodegroup_status in _BUSY:
        return FleetRow(
            decision, "waiting", f"node group is {decision.nodegroup_status}: an update is in progress", "", last
        )
    if last is not None and last.outcome == "in_progress":
        return FleetRow(
            decision, "waiting", f"rollout {last.execution} is running and has not reached it yet", "", last
        )
    if last is not None and last.outcome in _RECORDED:
        return FleetRow(decision, last.outcome, last.summary, "", last)
    if last is not None and last.outcome in {"failed", "not_started"}:
        state = "rolled_back" if last.outcome == "failed" and "rolled back" in last.summary else "failed"
        return FleetRow(decision, state, last.summary, "see `eks-proxy status` and the eks-proxy/failures query", last)
    if last is not None and last.outcome == "not_reached" and last.execution_status != "SUCCEEDED":
        return FleetRow(
            decision, "failed", last.summary, "see `eks-proxy status` and the eks-proxy/failures query", last
        )
    why = f"drift persisting: does not carry the current value ({decision.reason or decision.outcome.value})"
    return FleetRow(decision, "drift", why, "the next parameter change or the daily sweep rolls it", last)


def fleet_rows(decisions: list[Decision], last: dict[tuple[str, str], LastRollout]) -> list[FleetRow]:
    """Every node group's row, sorted by cluster and node group."""
    rows = [assess(d, last.get((d.cluster, d.nodegroup))) for d in decisions]
    return sorted(rows, key=lambda r: (r.decision.cluster, r.decision.nodegroup))


def counts(rows: list[FleetRow]) -> dict[str, int]:
    """`total`, `current` and every state of STATES (zeros included: a stable shape for --format json)."""
    found = Counter(r.state for r in rows)
    return {"total": len(rows), "current": found["current"], **{state: found[state] for state in STATES}}


def summary_line(rows: list[FleetRow]) -> str:
    """`41/44 current, 2 out of scope, 1 failed` (states with none are left out)."""
    numbers = counts(rows)
    parts = [f"{numbers['current']}/{numbers['total']} current"]
    parts.extend(f"{numbers[state]} {label}" for state, label in STATES.items() if numbers[state])
    return ", ".join(parts)


def newest_outcomes(rollouts: list[Any]) -> dict[tuple[str, str], LastRollout]:
    """Per node group, the newest rollout that listed it (rollouts as `eks_proxy.cli.status.Rollout`, any order)."""
    found: dict[tuple[str, str], LastRollout] = {}
    ordered = sorted(rollouts, key=lambda r: r.started.timestamp() if r.started else 0.0, reverse=True)
    for rollout in ordered:
        recorded = {(n.cluster, n.nodegroup): n for n in rollout.nodegroups}
        for target in rollout.targets:
            if target in found:
                continue
            record = recorded.get(target)
            if record is not None:
                outcome, summary = record.outcome, record.summary
            elif rollout.status == "RUNNING":
                outcome, summary = "in_progress", f"rollout {rollout.name} is running"
            else:
                error = f" ({rollout.error})" if rollout.error else ""
                outcome, summary = (
                    "not_reached",
                    f"rollout {rollout.name} {rollout.status.lower()} before reaching it{error}",
                )
            found[target] = LastRollout(
                rollout.name, rollout.status, outcome, summary, rollout.stopped or rollout.started
            )
    return found
