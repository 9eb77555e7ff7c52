"""Waves of one cluster's rollout: the canary gates the rest, nothing starts after a failure (pure: no AWS here).

The state machine loops `PlanWave -> Wave (Distributed Map) -> PlanWave` until `done`. The plan it carries:

    {"pending": [{cluster, nodegroup}...], "results": [record...], "canary_passed": bool, "halted": str | null,
     "wave": [{cluster, nodegroup}...], "wave_name": "canary" | "rest", "max_concurrency": int, "done": bool}

- Until a canary was actually rolled and verified (outcome `rolled`), a wave is one node group: the next one in line.
  A canary that turns out up to date, gone, skipped or superseded hands the role to the next node group.
- After that, one wave holds every node group left, `max_concurrency` at a time.
- A failed node group (`failed`, `rolled_back`, `rollback_failed`, `moved_on`) or one that could not start
  (`not_started`) halts the plan: the rest are recorded `not_started`. A newer valid parameter version stops the
  plan too: the rest are recorded `superseded` (that change has its own rollout, which runs next).

Every node group in the input ends with exactly one record `{cluster, nodegroup, outcome, summary}`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

OUTCOMES = (
    "rolled",  # updated to our version, every new node pulled through the proxy
    "up_to_date",  # already carried the value: nothing to do
    "skipped",  # out of scope (opt-out tag, no launch template, Windows, custom AMI without the OS hint, ...)
    "gone",  # the node group, its launch template or the version disappeared: nothing left to roll
    "superseded",  # a newer parameter version exists: its rollout handles the node group
    "not_started",  # the rollout halted (another node group failed) before this one started
    "failed",  # the update or verification failed; nothing to roll back (or rollback disabled)
    "rolled_back",  # failed, and returned to the version it ran before
    "rollback_failed",  # failed, and the rollback failed too: the node group needs a person
    "moved_on",  # failed, but someone else changed it meanwhile: left untouched
)
FAILURES = frozenset({"failed", "rolled_back", "rollback_failed", "moved_on"})
HALTING = FAILURES | {"not_started"}
MAX_SUMMARY = 300


def _key(item: Mapping[str, Any]) -> tuple[str, str]:
    return str(item.get("cluster")), str(item.get("nodegroup"))


def _record(target: Mapping[str, Any], outcome: str, summary: str) -> dict[str, str]:
    cluster, nodegroup = _key(target)
    return {"cluster": cluster, "nodegroup": nodegroup, "outcome": outcome, "summary": summary[:MAX_SUMMARY]}


def initial_plan(targets: Sequence[Mapping[str, str]], max_concurrency: int) -> dict[str, Any]:
    return {
        "pending": [dict(t) for t in targets],
        "results": [],
        "canary_passed": False,
        "halted": None,
        "wave": [],
        "wave_name": "",
        "max_concurrency": max_concurrency,
        "concurrency": max_concurrency,
        "done": False,
    }


def _records(value: Any) -> list[Mapping[str, Any]]:
    if not isinstance(value, list):
        return []
    return [r for r in value if isinstance(r, Mapping) and {"cluster", "nodegroup", "outcome"} <= r.keys()]


def _slim(record: Mapping[str, Any]) -> dict[str, str]:
    outcome = str(record.get("outcome"))
    return _record(record, outcome if outcome in OUTCOMES else "failed", str(record.get("summary") or ""))


def next_wave(plan: Mapping[str, Any], wave_results: Any, superseded_by: str | None) -> dict[str, Any]:
    """Fold the last wave's records into the plan and pick the next wave (see the module docstring)."""
    pending = [dict(t) for t in plan.get("pending") or []]
    results = [dict(r) for r in plan.get("results") or []]
    concurrency = int(plan.get("concurrency") or plan.get("max_concurrency") or 1)
    canary_passed = bool(plan.get("canary_passed"))
    halted = plan.get("halted")
    reported = {_key(r): _slim(r) for r in _records(wave_results)}
    for target in plan.get("wave") or []:
        record = reported.get(_key(target)) or _record(
            target, "failed", f"{'/'.join(_key(target))} failed: its child execution ended without a record"
        )
        results.append(record)
        if record["outcome"] in HALTING and not halted:
            halted = record["summary"]
        if record["outcome"] == "rolled" and plan.get("wave_name") == "canary":
            canary_passed = True
    state = {
        "results": results,
        "canary_passed": canary_passed,
        "halted": halted,
        "max_concurrency": concurrency,
        "concurrency": concurrency,
    }
    if pending and halted:
        results.extend(_record(t, "not_started", f"{'/'.join(_key(t))} not started: {halted}") for t in pending)
        pending = []
    if pending and superseded_by:
        results.extend(_record(t, "superseded", f"{'/'.join(_key(t))} not started: {superseded_by}") for t in pending)
        pending = []
    if not pending:
        return state | {"pending": [], "wave": [], "wave_name": "", "done": True}
    if canary_passed:
        return state | {"pending": [], "wave": pending, "wave_name": "rest", "done": False}
    return state | {
        "pending": pending[1:],
        "wave": pending[:1],
        "wave_name": "canary",
        "max_concurrency": 1,
        "done": False,
    }


def settle(plan: Mapping[str, Any], superseded: str | None = None) -> dict[str, Any]:
    """The rollout's outcome: every record, counts per outcome, `failed` and a one-paragraph summary."""
    results = [dict(r) for r in plan.get("results") or []]
    for target in [*(plan.get("wave") or []), *(plan.get("pending") or [])]:
        if superseded:
            results.append(_record(target, "superseded", f"{'/'.join(_key(target))} not started: {superseded}"))
    counts: dict[str, int] = {}
    for record in results:
        counts[record["outcome"]] = counts.get(record["outcome"], 0) + 1
    bad = [r for r in results if r["outcome"] in FAILURES]
    lost = [r for r in results if r["outcome"] == "not_started"]
    tally = ", ".join(f"{n} {o.replace('_', ' ')}" for o, n in sorted(counts.items()))
    if bad or lost:
        shown = bad[:10]
        more = f"; and {len(bad) - len(shown)} more failed" if len(bad) > len(shown) else ""
        parts = [r["summary"] for r in shown]
        if lost:  # every node group left as it was is named, so the alarm says which ones still lack the value
            names = [f"{r['cluster']}/{r['nodegroup']}" for r in lost]
            why = "" if bad else f" ({lost[0]['summary'].split(' not started: ', 1)[-1]})"
            parts.append(f"not started{why}: {', '.join(names[:100])}" + (" ..." if len(names) > 100 else ""))
        summary = "; ".join(parts) + more + f" ({tally})"
    else:
        summary = f"rollout done ({tally or 'nothing to do'})"
    return {"failed": bool(bad or lost), "summary": summary[:4000], "counts": counts, "results": results}
