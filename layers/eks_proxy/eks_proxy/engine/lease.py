"""The per-cluster lease: at most one rollout touches a cluster at a time (pure: no AWS here).

The state machine writes the lease item itself, with DynamoDB's conditional `PutItem` (direct service integration,
`statemachine/generate.py`): one item per cluster in the lease table,

    {"cluster": "prod", "owner": "<execution name>", "execution_arn": "...", "change_id": "...",
     "parameter_version": 7, "acquired_at": "<ISO time>", "expires_at": <epoch seconds>, "halted": "<why>"?}

written only when there is none, when it is already ours (a retried write), or when it expired. It is deleted
(condition: still ours) on every exit path after it was taken. `expires_at` is the execution's own deadline (the
state machine's TimeoutSeconds plus a margin), so a lease outlives no execution; an execution that ended without
releasing it (stopped by hand) is noticed sooner: a waiting execution asks Step Functions whether the holder still
runs and takes the lease over when it does not (`holder_decision`). `halted` is set by the first node group that
fails: node groups not yet started then never start.

>>> wait = holder_decision(Holder("a", "arn:a", 100, 3), "RUNNING", now=50, mine=4, newer=None, waits=0, base_wait=60)
>>> wait.decision, wait.reason, wait.next_wait_seconds
('wait', 'rollout a (parameter version 3) holds the cluster', 60)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

EXECUTION_TIMEOUT_SECONDS = 172800  # the state machine's TimeoutSeconds (statemachine/generate.py)
LEASE_SECONDS = EXECUTION_TIMEOUT_SECONDS + 600
MAX_POLL_SECONDS = 120  # nothing the rollout waits for is noticed more than two minutes late
POLL_BACKOFF = 1.5
MAX_LEASE_WAITS = 900  # ~30 h of waiting at 120 s, well inside one execution's history and lifetime


def poll_wait(base: int, count: int) -> int:
    """Seconds before the next check: `base` (60 by default), then x1.5 per check, at most 120 s."""
    return int(min(MAX_POLL_SECONDS, round(base * POLL_BACKOFF**count)))


def lease_terms(now: float) -> dict[str, int]:
    """The clock the lease condition compares with, and when a lease taken now expires."""
    return {"now": int(now), "expires_at": int(now) + LEASE_SECONDS}


@dataclass(frozen=True)
class Holder:
    """Who holds a cluster's lease (read from the item)."""

    owner: str
    execution_arn: str
    expires_at: int
    parameter_version: int | None = None


def _attr(item: Mapping[str, Any], key: str, kind: str) -> Any:
    value = item.get(key)
    return value.get(kind) if isinstance(value, Mapping) else None


def holder_of(get_item_result: Mapping[str, Any] | None) -> Holder | None:
    """The holder from a DynamoDB GetItem result (`{"Item": {...}}` in DynamoDB JSON); None when free."""
    item = (get_item_result or {}).get("Item")
    if not isinstance(item, Mapping) or not _attr(item, "owner", "S"):
        return None
    version = _attr(item, "parameter_version", "N")
    expires = _attr(item, "expires_at", "N")
    return Holder(
        owner=str(_attr(item, "owner", "S")),
        execution_arn=str(_attr(item, "execution_arn", "S") or ""),
        expires_at=int(expires) if expires and str(expires).isdigit() else 0,
        parameter_version=int(version) if version and str(version).isdigit() else None,
    )


@dataclass(frozen=True)
class LeaseWait:
    """What a rollout waiting for a cluster's lease does next: `wait`, `take_over` (the holder is dead), `retry`
    (the lease was released meanwhile) or `superseded` (a newer parameter version exists: its rollout rolls it)."""

    decision: str
    holder: str
    reason: str
    next_wait_seconds: int
    waits: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def holder_decision(
    holder: Holder | None,
    holder_status: str | None,
    *,
    now: float,
    mine: int,
    newer: int | None,
    waits: int,
    base_wait: int,
) -> LeaseWait:
    """Decide for a rollout that found the lease taken. `holder_status` is the holder's execution status (None:
    unknown), `mine` the parameter version this rollout pins, `newer` a newer valid version if one exists."""
    if newer is not None and newer > mine:
        return LeaseWait(
            "superseded",
            holder.owner if holder else "",
            f"superseded by parameter version {newer} while waiting for the cluster (that change has its own rollout)",
            0,
            waits,
        )
    if holder is None:
        return LeaseWait("retry", "", "the lease was released meanwhile", 0, waits)
    if holder_status is not None and holder_status != "RUNNING":
        return LeaseWait(
            "take_over",
            holder.owner,
            f"rollout {holder.owner} ended ({holder_status}) without releasing the cluster",
            0,
            waits,
        )
    if holder.expires_at and holder.expires_at < now:
        return LeaseWait("retry", holder.owner, f"the lease of {holder.owner} expired", 0, waits)
    version = f" (parameter version {holder.parameter_version})" if holder.parameter_version else ""
    return LeaseWait(
        "wait",
        holder.owner,
        f"rollout {holder.owner}{version} holds the cluster",
        poll_wait(base_wait, waits),
        waits + 1,
    )
