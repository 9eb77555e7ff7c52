"""Drift that does not go away on its own: the daily sweep's retries across days, and the DriftPersisting count.

A rollout's execution name is deterministic (`plan.execution_name`): the same state of the world gives the same
name, so replays collapse. The flip side: once the sweep's execution for a state has ended (failed, or succeeded
while node groups stayed behind) every later sweep computes the same name and would find it taken, forever. So a
sweep whose execution name already exists looks at the chain of its attempts (`<name>`, `<name>-r1`, `<name>-r2`,
...) and starts the next one once the backoff since the last one ended has passed: 1, 2, 4, 8, then every 16 days
(`BACKOFF_DAYS`). A real change (new value, new launch template version, new node group) gives a new name and is
rolled at once, as always.

`DriftPersisting` (per cluster, emitted by every sweep, 0 included so the alarm clears) counts the node groups
that need the proxy and did not get it although a rollout for exactly this state already ran and ended, plus the
node groups that eks-proxy can never fix by itself (`Decision.blocked`: user data that cannot be merged, a custom
AMI without the OS hint): those need a person, so they alarm instead of only logging a warning.

>>> from datetime import UTC, datetime
>>> ended = ExecutionState("sweep-1", "FAILED", stopped_at=datetime(2026, 1, 1, 4, tzinfo=UTC))
>>> next_sweep_attempt([ended], "sweep-1", datetime(2026, 1, 2, 3, 17, tzinfo=UTC)).name
'sweep-1-r1'
>>> next_sweep_attempt([ended], "sweep-1", datetime(2026, 1, 1, 12, tzinfo=UTC)).action
'backoff'
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from eks_proxy.aws.stepfunctions import ExecutionState, find_execution
from eks_proxy.model import Decision

BACKOFF_DAYS = (1, 2, 4, 8, 16)  # wait after the 1st, 2nd, ... ended attempt; the last one repeats
# The sweep runs once a day at a fixed time: an attempt that ended a few hours after its sweep is retried by the
# sweep one backoff later, not one day after that.
SLACK = timedelta(hours=6)
MAX_ATTEMPTS = 64  # the chain lookup stops there (years of retries at 16 days)
_SUFFIX = "-r"
_NAME_MAX = 80  # Step Functions execution names


@dataclass(frozen=True)
class SweepAttempt:
    """What the sweep does about an execution name that is already taken."""

    action: Literal["running", "start", "backoff"]
    name: str  # the attempt running, to start, or the last one (backoff)
    attempts: int  # attempts that exist already
    next_at: datetime | None = None  # backoff: the earliest time the next attempt may start


def now() -> datetime:
    """The current time (the one seam the tests move days forward through)."""
    return datetime.now(UTC)


def attempt_name(base: str, attempt: int) -> str:
    """Attempt 0 is `base` itself; attempt n >= 1 is `base` cut to fit, then `-r<n>` (<= 80 characters).

    >>> attempt_name("sweep-" + "a" * 74, 3)[-8:], len(attempt_name("sweep-" + "a" * 74, 3))
    ('aaaaa-r3', 80)
    """
    if attempt == 0:
        return base
    suffix = f"{_SUFFIX}{attempt}"
    return f"{base[: _NAME_MAX - len(suffix)]}{suffix}"


def backoff(ended_attempts: int) -> timedelta:
    """How long after the n-th ended attempt the next one may start."""
    days = BACKOFF_DAYS[min(max(ended_attempts, 1), len(BACKOFF_DAYS)) - 1]
    return timedelta(days=days)


def next_sweep_attempt(attempts: Sequence[ExecutionState], base: str, now: datetime) -> SweepAttempt:
    """Pure: given the existing attempts of `base` (in order, at least one), what the sweep does now."""
    last = attempts[-1]
    if last.running:
        return SweepAttempt("running", last.name, len(attempts))
    ended_at = last.stopped_at or last.started_at
    due = (ended_at + backoff(len(attempts)) - SLACK) if ended_at else None
    if due is None or now >= due:
        return SweepAttempt("start", attempt_name(base, len(attempts)), len(attempts))
    return SweepAttempt("backoff", last.name, len(attempts), next_at=due)


def sweep_attempts(sfn: Any, state_machine_arn: str, base: str) -> list[ExecutionState]:
    """The attempts of `base` that exist, in order (one DescribeExecution per attempt, plus one)."""
    found: list[ExecutionState] = []
    for attempt in range(MAX_ATTEMPTS):
        state = find_execution(sfn, state_machine_arn, attempt_name(base, attempt))
        if state is None:
            break
        found.append(state)
    return found


def persisting_drift(decisions: Iterable[Decision], clusters: Iterable[str], *, rollout_ended: bool) -> dict[str, int]:
    """Per cluster (every one in scope, 0 included): node groups eks-proxy cannot fix (`blocked`), plus, when a
    rollout of exactly this state already ran and ended, the node groups that still need one."""
    counts = dict.fromkeys(clusters, 0)
    for decision in decisions:
        if decision.blocked or (rollout_ended and decision.needs_rollout):
            counts[decision.cluster] = counts.get(decision.cluster, 0) + 1
    return counts
