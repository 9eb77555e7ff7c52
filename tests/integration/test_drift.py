"""Drift never goes silent: the daily sweep retries a drifted scope across days with backoff, and DriftPersisting
(per cluster, the metric behind DriftPersistingAlarm) counts what stays drifted, including node groups eks-proxy can
never fix by itself.

The real dispatch handler with the real sweep event, the ASL executed by moto's engine with the real rollout step
(testkit/rollout.py's world, as in test_rollout_sm.py); days pass through `eks_proxy.engine.drift.now`, the one
seam, while the executions' own start and stop dates are moto's.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from testkit import moto_eks_updates
from testkit.engine_world import FakeContext, World
from testkit.moto_server import MotoServer
from testkit.repo import load_event, load_handler
from testkit.rollout import NODEGROUPS, Stubs, finished, rollout_world, update_calls
from testkit.sfn_clock import fast_forward

SWEEP = "schedule-drift-sweep"


@pytest.fixture
def stubs() -> Stubs:
    return Stubs()


@pytest.fixture
def world(moto_server: MotoServer, stubs: Stubs) -> Iterator[World]:
    with rollout_world(moto_server, stubs) as w:
        yield w


class Sweeps:
    """The dispatch handler fed the daily sweep, on a clock the test moves forward by days."""

    def __init__(self, w: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
        from eks_proxy.engine import drift

        self.world, self.capsys = w, capsys
        self.module = load_handler("dispatch", w.env())
        self.day = 0.0
        real_now = drift.now
        monkeypatch.setattr(drift, "now", lambda: real_now() + timedelta(days=self.day))

    def run(self, day: float, event: str = SWEEP) -> tuple[dict[str, Any], dict[str, float]]:
        """The sweep of `day`: the handler's result and the DriftPersisting value it emitted per cluster."""
        self.day = day
        self.capsys.readouterr()
        sweep = load_event(event) | {"id": f"sweep-day-{day}"}
        result = self.module.lambda_handler(sweep, FakeContext())
        emf = [json.loads(line) for line in self.capsys.readouterr().out.splitlines() if '"_aws"' in line]
        drift = {blob["cluster"]: blob["DriftPersisting"][0] for blob in emf if "DriftPersisting" in blob}
        return result, drift


@pytest.fixture
def sweeps(world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Sweeps:
    return Sweeps(world, monkeypatch, capsys)


def _run(w: World, arn: str) -> dict[str, Any]:
    """The execution to its end (waits fast-forwarded), then time passes: EKS finishes every update still running
    (a rollback the rollout started and did not await ends on its own, as in EKS)."""
    with fast_forward():
        execution = finished(w, arn)
    _settle(w)
    return execution


def _settle(w: World) -> None:
    eks = w.clients["eks"]
    for update in list(moto_eks_updates.UPDATES.values()):
        while update.status == "InProgress":
            eks.describe_update(name=update.cluster, nodegroupName=update.nodegroup, updateId=update.id)


def test_a_failing_rollout_is_retried_across_days_with_backoff_and_drift_alarms_until_fixed(
    world: World,
    sweeps: Sweeps,
) -> None:
    moto_eks_updates.script("prod", "ng-a", outcome="Failed", polls=0)  # the canary fails, every time, for now
    first = load_handler("dispatch", world.env()).lambda_handler(load_event("ssm-parameter-update"), FakeContext())
    assert _run(world, first["execution_arn"])["status"] == "FAILED"

    # Day 0: the first sweep's execution name differs from the change's: tried at once, fails again.
    result, drift = sweeps.run(0)
    assert result["status"] == "started", result
    assert _run(world, result["execution_arn"])["status"] == "FAILED"
    base = result["execution_name"]

    # Later the same day: that attempt ended, drift persists (all three node groups, two never attempted): counted,
    # alarmed, but not retried before its backoff.
    result, drift = sweeps.run(0)
    assert result["status"] == "drift_backoff", result
    assert drift == {"prod": 3.0}
    assert result["drift"] == {"prod": 3}

    # The executions really end within seconds of each other here, so "day n" is n days after all of them.
    # Day 1: retried (attempt -r1), fails again; day 1.5 is inside the 2-day backoff after two attempts; day 2: -r2.
    result, drift = sweeps.run(1)
    assert (result["status"], result["execution_name"]) == ("retried", f"{base[:77]}-r1")
    assert drift == {"prod": 3.0}
    assert _run(world, result["execution_arn"])["status"] == "FAILED"
    result, drift = sweeps.run(1.5)
    assert (result["status"], drift) == ("drift_backoff", {"prod": 3.0})
    moto_eks_updates.script("prod", "ng-a", outcome="Successful", polls=0)  # someone fixed what broke the nodes
    result, drift = sweeps.run(2)
    assert (result["status"], result["execution_name"]) == ("retried", f"{base[:77]}-r2")
    assert drift == {"prod": 3.0}
    execution = _run(world, result["execution_arn"])
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    for name in NODEGROUPS:
        assert world.nodegroup_version("prod", name) == "2"  # rolled by the attempt that succeeded
        assert update_calls(name)[-1] == "2"

    # The next sweep finds nothing to do and reports 0: the alarm clears.
    result, drift = sweeps.run(2.5)
    assert result["status"] == "up_to_date"
    assert drift == {"prod": 0.0}


def test_backoff_grows_1_2_4_8_then_every_16_days() -> None:
    from datetime import UTC

    from eks_proxy.aws.stepfunctions import ExecutionState
    from eks_proxy.engine.drift import next_sweep_attempt

    start = datetime(2026, 3, 1, 3, 20, tzinfo=UTC)
    attempts = [ExecutionState("sweep-x", "FAILED", start, start)]
    tried_on = []
    for day in range(1, 80):
        now = start + timedelta(days=day, minutes=-3)  # the next sweeps, a little earlier in the day
        step = next_sweep_attempt(attempts, "sweep-x", now)
        if step.action == "start":
            tried_on.append(day)
            attempts.append(ExecutionState(step.name, "FAILED", now, now + timedelta(minutes=30)))
    assert tried_on == [1, 3, 7, 15, 31, 47, 63, 79]
    running = [*attempts, ExecutionState("sweep-x-r9", "RUNNING", start)]
    assert next_sweep_attempt(running, "sweep-x", start).action == "running"


def test_nodegroups_that_cannot_be_merged_raise_the_alarm_not_only_a_warning(
    world: World,
    sweeps: Sweeps,
) -> None:
    """Custom AMI without the OS hint, gzip user data, user data too large to take our part: a sweep with nothing
    to roll still reports them in DriftPersisting; an opted-out or Windows node group is not drift."""
    first = load_handler("dispatch", world.env()).lambda_handler(load_event("ssm-parameter-update"), FakeContext())
    assert _run(world, first["execution_arn"])["status"] == "SUCCEEDED"
    world.template("custom")
    world.nodegroup("prod", "custom", ami_type="CUSTOM", template="custom")
    world.template("zipped", user_data=gzip.compress(b"#!/bin/bash\necho compressed\n"))
    world.nodegroup("prod", "zipped", template="zipped")
    big = b"#!/bin/bash\n" + b"echo " + base64.b64encode(bytes(range(256)) * 45) + b"\n"  # ~15.4 KB: no room for ours
    world.template("huge", user_data=big)
    world.nodegroup("prod", "huge", template="huge")
    world.template("win")
    world.nodegroup("prod", "windows", ami_type="WINDOWS_CORE_2022_x86_64", template="win")
    world.template("skip")
    world.nodegroup("prod", "opted-out", template="skip", tags={"eks-proxy/skip": "true"})

    result, drift = sweeps.run(0)

    assert result["status"] == "up_to_date", result
    assert drift == {"prod": 3.0}
    assert result["nodegroups"]["out_of_scope"] == 5
