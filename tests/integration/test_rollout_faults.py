"""The fault-injection proof: the real dispatch and rollout step handlers, the ASL on moto's engine, and at every step
of a rollout the things production brings (overlapping changes, teammates' updates and versions, deletions,
failures, Lambda retries, throttling, duplicated and out-of-order deliveries, a batch continuation racing a new
change). Every scenario ends with the same check, `rollout_faults.violations` (its docstring states the invariant).

A scenario today's engine fails is marked `xfail(strict=True)` with the clause it breaks: when a fix lands the
scenario passes, the strict xfail fails, and the mark must go.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from testkit import moto_eks_updates
from testkit.engine_world import World, build_world
from testkit.moto_server import MotoServer
from testkit.rollout_faults import (
    CLUSTER,
    FIRST_VALUE,
    Fault,
    Rig,
    build_rig,
    lambda_error,
    running,
    violations,
)

B_VALUE = "http://10.0.0.20:3128"
Scenario = Callable[[Rig], None]


@pytest.fixture
def world(moto_server: MotoServer) -> Iterator[World]:
    moto_server.execute_state_machines(True)
    os.environ["MOTO_PORT"] = str(moto_server.port)
    try:
        yield build_world(moto_server)
    finally:
        moto_server.execute_state_machines(False)


def _change(rig: Rig) -> None:
    """The parameter changes (the rig starts with the node groups on their own launch template version 1)."""
    rig.dispatch()


def _run(rig: Rig, scenario: Scenario) -> list[str]:
    with running(rig):
        scenario(rig)
        rig.settle()
        rig.continue_batches()
    return violations(rig)


# -- scenarios ------------------------------------------------------------------------------------------------------

STEPS_OF_A_NODEGROUP = [
    ("refresh", "before"),
    ("start_update", "before"),
    ("describe_update", "after"),
    ("verify", "before"),
]


def at(action: str, when: str, nodegroup: str = "ng-a", **fault: Any) -> Scenario:
    def scenario(rig: Rig) -> None:
        rig.faults.append(Fault(action, when=when, nodegroup=nodegroup, **fault))  # type: ignore[arg-type]
        _change(rig)

    return scenario


def teammate_update(nodegroup: str) -> Callable[[Rig], None]:
    return lambda rig: rig.teammate_version(nodegroup, roll=True, polls=2)


def teammate_version(nodegroup: str) -> Callable[[Rig], None]:
    return lambda rig: rig.teammate_version(nodegroup, roll=False)


def deleted_nodegroup(nodegroup: str) -> Callable[[Rig], None]:
    return lambda rig: rig.delete_nodegroup(nodegroup)


def new_value(*values: str) -> Callable[[Rig], None]:
    def change(rig: Rig) -> None:
        for value in values:
            rig.change_value(value)

    return change


def with_slow_sibling(scenario: Scenario) -> Scenario:
    """ng-c (rolled beside ng-b after the canary) is in flight when ng-b fails: ng-b's first step waits until
    ng-c's update has started, and that update takes longer than ng-b's failure."""

    def sibling_started(rig: Rig) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if any(u.nodegroup == "ng-c" for u in list(moto_eks_updates.UPDATES.values())):
                return
            time.sleep(0.02)

    def slowed(rig: Rig) -> None:
        moto_eks_updates.script(CLUSTER, "ng-c", polls=40)
        rig.faults.append(Fault("refresh", nodegroup="ng-b", do=sibling_started))
        scenario(rig)

    return slowed


def _ours(rig: Rig, nodegroup: str) -> list[Any]:
    return [u for u in list(moto_eks_updates.UPDATES.values()) if u.nodegroup == nodegroup and u.id in rig.update_owner]


def teammate_rolls_the_canary_meanwhile(rig: Rig) -> None:
    """A teammate rolls ng-a right after our canary update; their CloudTrail event starts a second rollout for ng-a
    while the first one goes on with ng-b and ng-c. ng-c's update lasts until the second rollout has started its
    update of ng-a (or 20 s have passed): only a per-cluster lock keeps the two rollouts apart."""

    def long_update_of_ng_c(r: Rig) -> None:
        [update] = _ours(r, "ng-c")[-1:]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(_ours(r, "ng-a")) < 2:
            time.sleep(0.02)
        update.polls_left = 0  # then it ends at the next poll

    moto_eks_updates.script(CLUSTER, "ng-c", polls=100_000)
    rig.faults.append(Fault("describe_update", when="after", nodegroup="ng-a", do=teammate_update("ng-a")))
    rig.faults.append(Fault("describe_update", nodegroup="ng-c", do=long_update_of_ng_c))
    _change(rig)


def scripted(nodegroup: str, **script: Any) -> Scenario:
    def scenario(rig: Rig) -> None:
        if (CLUSTER, nodegroup) in moto_eks_updates.SCRIPTS:
            for key, value in script.items():
                setattr(moto_eks_updates.SCRIPTS[(CLUSTER, nodegroup)], key, value)
        else:
            moto_eks_updates.script(CLUSTER, nodegroup, **script)
        _change(rig)

    return scenario


def verification_fails(nodegroup: str) -> Scenario:
    def scenario(rig: Rig) -> None:
        rig.verify_fails.add(nodegroup)
        _change(rig)

    return scenario


def rollback_retried(rig: Rig) -> None:
    """ng-b's update fails; its rollback starts, then Lambda reports a service error: the rollback step runs twice."""
    error = Fault("rollback", when="after", nodegroup="ng-b", raise_=lambda: lambda_error("Lambda.ServiceException"))
    rig.faults.append(error)
    scripted("ng-b", outcome="Failed")(rig)


def delivered_three_times(rig: Rig) -> None:
    for _ in range(3):
        rig.dispatch(event_id="same-event")


def out_of_order(rig: Rig) -> None:
    """A's event is delivered again after B's (EventBridge does not order deliveries)."""
    rig.dispatch(event_id="event-a")
    rig.change_value(B_VALUE)
    rig.dispatch(event_id="event-a")


# scenario id -> the invariant clause today's engine breaks
XFAIL: dict[str, str] = {}

SCENARIOS: list[tuple[str, Scenario]] = [
    ("baseline", _change),
    ("duplicated-delivery", delivered_three_times),
    ("out-of-order-delivery", out_of_order),
    ("A-then-B-while-canary-updates", at("describe_update", "after", do=new_value(B_VALUE))),
    ("A-B-back-to-A-while-canary-updates", at("describe_update", "after", do=new_value(B_VALUE, FIRST_VALUE))),
    *[
        (f"teammate-update-at-{action}", at(action, when, "ng-a", do=teammate_update("ng-a")))
        for action, when in STEPS_OF_A_NODEGROUP
        if action != "describe_update"
    ],
    ("teammate-update-at-describe_update", teammate_rolls_the_canary_meanwhile),
    *[
        (f"teammate-version-at-{action}", at(action, when, "ng-b", do=teammate_version("ng-b")))
        for action, when in STEPS_OF_A_NODEGROUP[::2]
    ],
    *[
        (f"nodegroup-deleted-at-{action}", at(action, when, "ng-b", do=deleted_nodegroup("ng-b")))
        for action, when in STEPS_OF_A_NODEGROUP
    ],
    ("launch-template-deleted-at-refresh", at("refresh", "before", "ng-b", do=lambda rig: rig.delete_template("ng-b"))),
    (
        "refresh-fails",
        with_slow_sibling(at("refresh", "before", "ng-b", raise_=lambda: RuntimeError("injected failure"))),
    ),
    (
        "update-start-fails",
        with_slow_sibling(at("start_update", "before", "ng-b", raise_=lambda: RuntimeError("injected failure"))),
    ),
    (
        "update-failed-PodEvictionFailure",
        with_slow_sibling(scripted("ng-b", outcome="Failed", error_code="PodEvictionFailure")),
    ),
    ("canary-update-cancelled-NodeCreationFailure", scripted("ng-a", outcome="Cancelled")),
    ("verification-fails", with_slow_sibling(verification_fails("ng-b"))),
    ("rollback-fails", with_slow_sibling(scripted("ng-b", outcomes=["Failed", "Failed"]))),
    *[
        (
            f"lambda-retry-after-{action}",
            at(action, "after", "ng-a", raise_=lambda: lambda_error("Lambda.ServiceException")),
        )
        for action in ("refresh", "start_update", "describe_update", "verify", "record")
    ],
    ("lambda-retry-after-rollback", with_slow_sibling(rollback_retried)),
]


def _params() -> list[Any]:
    return [
        pytest.param(
            scenario, id=name, marks=[pytest.mark.xfail(strict=True, reason=XFAIL[name])] if name in XFAIL else []
        )
        for name, scenario in SCENARIOS
    ]


@pytest.mark.parametrize("scenario", _params())
def test_invariant_holds(world: World, scenario: Scenario) -> None:
    rig = build_rig(world)
    assert _run(rig, scenario) == []


def test_batch_continuation_racing_a_new_change(world: World) -> None:
    """Five node groups in batches of two: while the first batch rolls, the value changes again."""
    rig = build_rig(world, ("ng-a", "ng-b", "ng-c", "ng-d", "ng-e"), MAX_NODEGROUPS_PER_ROLLOUT="2")

    def scenario(r: Rig) -> None:
        r.faults.append(Fault("describe_update", when="after", nodegroup="ng-a", do=new_value(B_VALUE)))
        _change(r)

    assert _run(rig, scenario) == []


def test_the_checker_sees_each_clause_broken(world: World) -> None:
    """The invariant can fail: each clause broken by hand after a clean rollout (a teammate's change undone, our
    version rolled twice in a row, two "executions" updating one cluster at once, a node group put back on a version
    without the proxy and never reported)."""
    rig = build_rig(world)
    eks = world.clients["eks"]

    def update(nodegroup: str, version: str, owner: str) -> None:
        template = world.templates[f"{CLUSTER}-{nodegroup}"]
        started = eks.update_nodegroup_version(
            clusterName=CLUSTER, nodegroupName=nodegroup, launchTemplate={"id": template, "version": version}
        )["update"]["id"]
        rig.update_owner[started] = owner

    with running(rig, tick=3600):  # EKS's clock stopped: updates end only when settle() lets time pass
        rig.dispatch()
        rig.settle()
        assert violations(rig) == []
        rig.teammate_version("ng-c", roll=True, polls=0)
        rig.settle()
        update("ng-c", "2", "by-hand-1")  # back to our version 2: the teammate's instance type is gone
        rig.settle()
        update("ng-c", "2", "by-hand-2")  # version 2 again, nobody else in between: rolled twice
        update("ng-b", "1", "by-hand-3")  # at the same time, another "rollout" in the cluster, to a version w/o proxy
        rig.settle()
    broken = sorted({line.split(" ", 1)[0] for line in violations(rig)})
    assert broken == ["1", "2", "3", "4"], violations(rig)


# -- random interleavings ---------------------------------------------------------------------------------------------


def test_random_interleavings_keep_the_invariant(moto_server: MotoServer) -> None:
    """hypothesis stateful testing: each rule arms one thing production does at a random step of the rollout (a value
    change, a teammate's update, a deletion, the daily sweep, a Lambda retry) or scripts a failing update; the
    teardown runs the change and checks the invariant once everything has ended. Few, long examples (each is a real
    rollout on the engine); derandomized and without shrinking, so the outcome is the same on every run."""
    from hypothesis import HealthCheck, Phase, settings
    from hypothesis import strategies as st
    from hypothesis.stateful import RuleBasedStateMachine, rule, run_state_machine_as_test

    steps = st.sampled_from(["refresh", "start_update", "describe_update", "verify", "record"])
    nodegroups = st.sampled_from(["ng-a", "ng-b", "ng-c"])

    class Production(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            moto_server.reset()
            moto_server.execute_state_machines(True)
            os.environ["MOTO_PORT"] = str(moto_server.port)
            self.rig = build_rig(build_world(moto_server))
            self.values = 0

        def _at(self, action: str, nodegroup: str, **fault: Any) -> None:
            self.rig.faults.append(Fault(action, nodegroup=nodegroup, **fault))

        @rule(action=steps, nodegroup=nodegroups)
        def a_value_change(self, action: str, nodegroup: str) -> None:
            self.values += 1
            self._at(action, nodegroup, do=new_value(f"http://10.0.{self.values}.10:3128"))

        @rule(action=steps, nodegroup=nodegroups)
        def a_teammate_rolls_their_version(self, action: str, nodegroup: str) -> None:
            self._at(action, nodegroup, do=teammate_update(nodegroup))

        @rule(action=steps, nodegroup=nodegroups, other=nodegroups)
        def a_node_group_is_deleted(self, action: str, nodegroup: str, other: str) -> None:
            self._at(action, nodegroup, do=deleted_nodegroup(other))

        @rule(action=steps, nodegroup=nodegroups)
        def the_daily_sweep(self, action: str, nodegroup: str) -> None:
            self._at(action, nodegroup, do=lambda rig: rig.dispatch("schedule-drift-sweep") and None)

        @rule(action=steps, nodegroup=nodegroups)
        def a_lambda_retry(self, action: str, nodegroup: str) -> None:
            self._at(action, nodegroup, when="after", raise_=lambda: lambda_error("Lambda.ServiceException"))

        @rule(nodegroup=nodegroups)
        def an_update_fails(self, nodegroup: str) -> None:
            moto_eks_updates.script(CLUSTER, nodegroup, outcome="Failed", error_code="PodEvictionFailure")

        def teardown(self) -> None:
            with running(self.rig):
                _change(self.rig)
                self.rig.settle()
                self.rig.continue_batches()
            assert violations(self.rig) == []

    run_state_machine_as_test(
        Production,
        settings=settings(
            max_examples=3,
            stateful_step_count=4,
            deadline=None,
            derandomize=True,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        ),
    )
