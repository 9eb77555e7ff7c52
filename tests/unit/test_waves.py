"""The wave plan and the lease decision, pure (eks_proxy.engine.waves, eks_proxy.engine.lease).

Invariants: every node group of the input ends with exactly one record; nothing but the canary runs until a canary
was rolled; nothing starts after a failure or once superseded; a live holder is waited for, a dead one taken over.
"""

from __future__ import annotations

from typing import Any

from eks_proxy.engine.lease import Holder, holder_decision, holder_of, lease_terms, poll_wait
from eks_proxy.engine.waves import FAILURES, OUTCOMES, initial_plan, next_wave, settle
from hypothesis import given
from hypothesis import strategies as st


def targets(n: int) -> list[dict[str, str]]:
    return [{"cluster": "prod", "nodegroup": f"ng-{i}"} for i in range(n)]


def record(target: dict[str, str], outcome: str) -> dict[str, str]:
    return target | {"outcome": outcome, "summary": f"prod/{target['nodegroup']} {outcome}"}


@given(st.lists(st.sampled_from(OUTCOMES), min_size=1, max_size=12), st.integers(1, 5), st.booleans())
def test_every_nodegroup_ends_with_one_record_and_the_canary_gates(
    outcomes: list[str], concurrency: int, superseded: bool
) -> None:
    """Drive the plan with any sequence of node group outcomes (what the children would report)."""
    todo = targets(len(outcomes))
    verdict = dict(zip((t["nodegroup"] for t in todo), outcomes, strict=True))
    plan: dict[str, Any] = initial_plan(todo, concurrency)
    results: Any = None
    started: list[str] = []
    halted = False
    for _ in range(len(outcomes) + 2):
        plan = next_wave(plan, results, "newer version" if superseded and len(started) >= 2 else None)
        if plan["done"]:
            break
        assert not halted, "a wave started after a failure"
        if plan["wave_name"] == "rest":
            assert any(verdict[n] == "rolled" for n in started), "the rest started before a canary was rolled"
        else:
            assert len(plan["wave"]) == 1 and plan["max_concurrency"] == 1
        started += [t["nodegroup"] for t in plan["wave"]]
        results = [record(t, verdict[t["nodegroup"]]) for t in plan["wave"]]
        halted = any(verdict[t["nodegroup"]] in FAILURES | {"not_started"} for t in plan["wave"])
    assert plan["done"]
    outcome = settle(plan)
    assert sorted(r["nodegroup"] for r in outcome["results"]) == sorted(verdict)
    assert sum(outcome["counts"].values()) == len(outcomes)
    for r in outcome["results"]:
        if r["nodegroup"] in started:
            assert r["outcome"] == verdict[r["nodegroup"]]
        else:
            assert r["outcome"] in {"not_started", "superseded"}
    assert outcome["failed"] == any(r["outcome"] in FAILURES | {"not_started"} for r in outcome["results"])


def test_a_child_that_ended_without_a_record_is_a_failure() -> None:
    plan = next_wave(initial_plan(targets(3), 2), None, None)  # the canary: ng-0
    plan = next_wave(plan, {"failed": {"Error": "States.Runtime"}}, None)  # the map itself failed
    assert plan["done"]
    outcome = settle(plan)
    assert [r["outcome"] for r in outcome["results"]] == ["failed", "not_started", "not_started"]
    assert "ended without a record" in outcome["summary"]


def test_poll_schedule_is_60_90_then_120() -> None:
    assert [poll_wait(60, n) for n in range(5)] == [60, 90, 120, 120, 120]
    assert [poll_wait(0, n) for n in range(3)] == [0, 0, 0]  # the tests' ROLLOUT_WAIT_SECONDS=0


def test_lease_decisions() -> None:
    item = {
        "Item": {
            "cluster": {"S": "prod"},
            "owner": {"S": "a"},
            "execution_arn": {"S": "arn:a"},
            "expires_at": {"N": "1000"},
            "parameter_version": {"N": "3"},
        }
    }
    holder = holder_of(item)
    assert holder == Holder("a", "arn:a", 1000, 3)
    assert holder_of({}) is None
    wait = dict(now=500, mine=4, newer=None, waits=2, base_wait=60)
    assert holder_decision(holder, "RUNNING", **wait).decision == "wait"  # type: ignore[arg-type]
    assert holder_decision(holder, "RUNNING", **wait).next_wait_seconds == 120  # type: ignore[arg-type]
    assert holder_decision(holder, "ABORTED", **wait).decision == "take_over"  # type: ignore[arg-type]
    assert holder_decision(holder, None, **(wait | {"now": 2000})).decision == "retry"  # type: ignore[arg-type]
    assert holder_decision(holder, "RUNNING", **(wait | {"newer": 5})).decision == "superseded"  # type: ignore[arg-type]
    assert holder_decision(None, None, **wait).decision == "retry"  # type: ignore[arg-type]
    terms = lease_terms(1000.5)
    assert terms["now"] == 1000 and terms["expires_at"] > 1000 + 48 * 3600


def test_waiting_for_someone_elses_update_outlasts_a_control_plane_upgrade() -> None:
    """A teammate's update (or a control plane upgrade) may take hours: the refresh keeps waiting (MAX_WAITS checks
    at the default 60 s base) far longer than an hour before it gives up, and so does a rollout waiting for a lease."""
    from eks_proxy.engine.lease import MAX_LEASE_WAITS
    from eks_proxy.engine.steps import MAX_WAITS

    assert sum(poll_wait(60, n) for n in range(MAX_WAITS)) >= 20 * 3600
    assert sum(poll_wait(60, n) for n in range(MAX_LEASE_WAITS)) >= 24 * 3600
