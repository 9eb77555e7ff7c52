"""`eks-proxy fleet`'s decisions (eks_proxy/engine/fleet.py): each node group's state and why, the summary line, and
the JSON row shape documented in eks_proxy/cli/fleet.py (stable: fields are only ever added)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from eks_proxy.cli import fleet as cli_fleet
from eks_proxy.engine.fleet import STATES, LastRollout, assess, counts, fleet_rows, newest_outcomes, summary_line
from eks_proxy.model import Decision, LaunchTemplateRef, Outcome

LT = LaunchTemplateRef("lt-1", "prod-a", 2)
AT = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def decision(outcome: Outcome = Outcome.CREATE_VERSION, name: str = "a", **kwargs: object) -> Decision:
    values: dict[str, object] = {
        "reason": "proxy configuration differs",
        "launch_template": LT,
        "current_version": 2,
        "nodegroup_status": "ACTIVE",
    }
    values.update(kwargs)
    return Decision("prod", name, outcome, **values)  # type: ignore[arg-type]


def last(outcome: str, summary: str = "", status: str = "FAILED") -> LastRollout:
    return LastRollout("ssm-1", status, outcome, summary or f"prod/a {outcome}", AT)


@pytest.mark.parametrize(
    ("d", "previous", "state", "why"),
    [
        (decision(Outcome.UP_TO_DATE), last("rolled", status="SUCCEEDED"), "current", ""),
        (decision(Outcome.OUT_OF_SCOPE, reason="opted out"), None, "out_of_scope", "opted out"),
        (decision(nodegroup_status="UPDATING"), last("failed", "prod/a failed: x (rolled back to version 1)"),
         "waiting", "node group is UPDATING"),
        (decision(), last("in_progress", status="RUNNING"), "waiting", "rollout ssm-1 is running"),
        (decision(), last("failed", "prod/a failed: x (rolled back to version 1)"), "rolled_back", "prod/a failed"),
        (decision(), last("failed", "prod/a failed: verification: 0/2 pulled"), "failed", "prod/a failed"),
        (decision(), last("rollback_failed"), "rollback_failed", "prod/a rollback_failed"),
        (decision(), last("rolled_back"), "rolled_back", "prod/a rolled_back"),
        (decision(), last("moved_on"), "moved_on", "prod/a moved_on"),
        (decision(), last("gone"), "gone", "prod/a gone"),
        (decision(), last("not_reached", "rollout ssm-1 failed before reaching it (PreflightFailed)"), "failed",
         "rollout ssm-1 failed before reaching it (PreflightFailed)"),
        (decision(), last("rolled", status="SUCCEEDED"), "drift", "drift persisting"),
        (decision(Outcome.ROLL_EXISTING), None, "drift", "drift persisting"),
    ],
)  # fmt: skip
def test_state_and_why(d: Decision, previous: LastRollout | None, state: str, why: str) -> None:
    row = assess(d, previous)
    assert row.state == state and row.current == (state == "current")
    assert row.why.startswith(why)
    assert state == "current" or row.why  # every node group that is not current says why


def test_summary_line_and_counts() -> None:
    rows = fleet_rows(
        [
            decision(Outcome.UP_TO_DATE, "b"),
            decision(Outcome.UP_TO_DATE, "a"),
            decision(Outcome.OUT_OF_SCOPE, "c"),
            decision(Outcome.OUT_OF_SCOPE, "d"),
            decision(Outcome.CREATE_VERSION, "e"),
        ],
        {("prod", "e"): last("failed", "prod/e failed: update Failed")},
    )
    assert [r.decision.nodegroup for r in rows] == ["a", "b", "c", "d", "e"]
    assert summary_line(rows) == "2/5 current, 2 out of scope, 1 failed"
    assert counts(rows) == {"total": 5, "current": 2, **{s: 0 for s in STATES}, "out_of_scope": 2, "failed": 1}
    assert summary_line([]) == "0/0 current"


@dataclass(frozen=True)
class _Record:
    cluster: str
    nodegroup: str
    outcome: str
    summary: str


@dataclass(frozen=True)
class _Rollout:
    name: str
    status: str
    started: datetime | None
    stopped: datetime | None
    targets: tuple[tuple[str, str], ...]
    error: str = ""
    nodegroups: tuple[_Record, ...] = field(default=())


def test_newest_rollout_per_nodegroup_wins() -> None:
    older = _Rollout(
        "ssm-old",
        "SUCCEEDED",
        AT,
        AT,
        (("prod", "a"), ("prod", "b")),
        nodegroups=(_Record("prod", "a", "rolled", "a rolled"), _Record("prod", "b", "rolled", "b rolled")),
    )
    newer = _Rollout("ssm-new", "FAILED", AT.replace(hour=10), None, (("prod", "a"),), error="PreflightFailed")
    running = _Rollout("sweep-1", "RUNNING", AT.replace(hour=11), None, (("prod", "c"),))
    found = newest_outcomes([older, newer, running])
    assert (found[("prod", "a")].execution, found[("prod", "a")].outcome) == ("ssm-new", "not_reached")
    assert found[("prod", "a")].summary == "rollout ssm-new failed before reaching it (PreflightFailed)"
    assert (found[("prod", "b")].execution, found[("prod", "b")].outcome) == ("ssm-old", "rolled")
    assert found[("prod", "c")].outcome == "in_progress"


def test_json_row_has_exactly_the_documented_fields() -> None:
    documented = cli_fleet.__doc__ or ""
    row_doc = documented.split('"nodegroups": [{', 1)[1].split("}],", 1)[0]
    fields = [*re.findall(r'"(\w+)"', row_doc.split('"last_rollout"', 1)[0]), "last_rollout"]
    row = assess(decision(), last("failed", "prod/a failed: x")).to_json()
    assert list(row) == [f for f in fields if f not in {"id", "name"}]
    assert set(row["launch_template"]) == {"id", "name"}
    last_doc = re.findall(r'"(\w+)"', row_doc.split('"last_rollout"', 1)[1])
    assert list(row["last_rollout"]) == last_doc
    assert row["last_rollout"]["at"] == "2026-12-01T09:30:00+00:00"
    summary_doc = re.findall(r'"(\w+)"', documented.split('"summary": {', 1)[1].split("}", 1)[0])
    assert list(counts([])) == summary_doc
