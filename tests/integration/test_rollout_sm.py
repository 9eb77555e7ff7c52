"""statemachine/rollout.asl.json executed end to end by moto's Step Functions engine, on the moto server.

The real dispatch handler starts the execution; every RolloutStep task runs the real rollout_step handler
(in-process through testkit/moto_lambda_handlers.py); EKS updates follow the scripts of
testkit/moto_eks_updates.py (our extension of moto); the world is testkit/rollout.py's. Preflight and Verify are
scripted stubs here (their real handlers need a proxy and a Kubernetes API: tests/integration/test_preflight.py and
test_verify.py cover them).
Waits are shortened honestly: ROLLOUT_WAIT_SECONDS=0 in the function environment (the ASL reads `$.wait_seconds`);
the NodegroupBusy retry keeps its real 5 s interval.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from eks_proxy.userdata.merge import find_fingerprint

from testkit import moto_eks_updates, moto_lambda_handlers
from testkit.engine_world import PARAMETER, FakeContext, World
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


def finish_their_update_when(reached: Callable[[], bool], eks: Any, nodegroup: str, update_id: str) -> threading.Thread:
    """A thread that waits (60 s at most) until `reached()`, then until someone else's update of `nodegroup` in
    "prod" leaves InProgress (the scripted update finishes as it is polled)."""

    def run() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not reached():
            time.sleep(0.05)
        while eks.describe_update(name="prod", nodegroupName=nodegroup, updateId=update_id)["update"]["status"] == (
            "InProgress"
        ):
            time.sleep(0.05)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_success_canary_first_then_the_rest_and_replays_change_nothing(world: World, stubs: Stubs) -> None:
    started = dispatch(world)
    assert started["status"] == "started"
    execution = finished(world, started["execution_arn"])
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    for name in NODEGROUPS:
        versions = world.versions(f"prod-{name}")
        assert [v["VersionNumber"] for v in versions] == [1, 2]
        new = versions[1]
        fingerprint = find_fingerprint(new["LaunchTemplateData"]["UserData"])
        parameter_version = world.clients["ssm"].get_parameter(Name=PARAMETER)["Parameter"]["Version"]
        assert new["VersionDescription"] == f"eks-proxy {fingerprint} from v1 parameter v{parameter_version}"
        assert b"echo team-script" in base64.b64decode(new["LaunchTemplateData"]["UserData"])
        assert new["LaunchTemplateData"]["InstanceType"] == "m6i.large"  # copied from the source version
        assert world.nodegroup_version("prod", name) == "2"
        assert update_calls(name) == ["2"]
    # Order: validate, preflight before any refresh, canary fully verified before the rest is refreshed.
    first_refresh = [e["nodegroup"] for e in steps("refresh")]
    assert first_refresh[0] == "ng-a"
    assert moto_eks_updates.CALLS[0]["nodegroup"] == "ng-a"
    assert len(stubs.preflight_inputs) == 1
    change_id = load_event("ssm-parameter-update")["id"]  # the correlation id of every function's log lines
    assert stubs.preflight_inputs[0] == {
        "change_id": change_id,
        "parameter": {"name": "/eks-proxy/config", "version": 1},
        "registry": "registry-1.docker.io:443",
        "attempt": 0,
        "retries": 5,
    }
    assert stubs.verify_inputs[0] == {
        "change_id": change_id,
        "cluster": "prod",
        "nodegroup": "ng-a",
        "image": "docker.io/library/busybox:1.36",
        "namespace": "eks-proxy-verify",
        "timeout_seconds": 240,
    }
    output = json.loads(execution["output"])
    assert [r["outcome"] for r in output["results"]] == ["rolled"] * 3
    assert world.alarms() == []
    assert world.lease("prod") is None  # released
    assert "10.0.0.10" not in json.dumps(
        history(world, started["execution_arn"]), default=str
    )  # the value never in history
    # The same change again (replay): nothing new; a sweep now finds everything up to date.
    assert dispatch(world)["status"] in {"duplicate", "up_to_date"}
    assert dispatch(world, "schedule-drift-sweep")["status"] == "up_to_date"
    assert all(len(world.versions(f"prod-{name}")) == 2 for name in NODEGROUPS)


def test_failed_canary_update_stops_the_rest_and_alarms(world: World) -> None:
    """EKS keeps a node group on its version when the update fails: nothing to roll back, nothing else starts."""
    moto_eks_updates.script("prod", "ng-a", outcome="Failed", polls=1)
    execution = finished(world, dispatch(world)["execution_arn"])
    assert execution["status"] == "FAILED"
    assert execution["error"] == "RolloutFailed"
    assert "prod/ng-a failed" in execution["cause"]
    assert update_calls("ng-a") == ["2"]  # the update; no rollback: it stayed on version 1
    assert world.nodegroup_version("prod", "ng-a") == "1"
    for name in ("ng-b", "ng-c"):  # never started: no version, no update
        assert len(world.versions(f"prod-{name}")) == 1
        assert update_calls(name) == []
    [alarm] = world.alarms()
    assert alarm["subject"] == "eks-proxy rollout failed"
    assert "NodegroupRolloutFailed" in alarm["message"]["summary"]
    assert "prod/ng-a failed: Instances failed to join" in alarm["message"]["summary"]
    assert "stayed on version 1" in alarm["message"]["summary"]
    assert "prod/ng-b not started" in alarm["message"]["summary"] or "1 failed" in alarm["message"]["summary"]
    assert world.lease("prod") is None


def test_cancelled_update_without_rollback(world: World) -> None:
    moto_eks_updates.script("prod", "ng-a", outcome="Cancelled", polls=0)
    execution = finished(world, dispatch(world, ROLLBACK_ON_FAILURE="false")["execution_arn"])
    assert execution["status"] == "FAILED"
    assert update_calls("ng-a") == ["2"]  # no rollback
    assert world.nodegroup_version("prod", "ng-a") == "1"
    assert len(world.alarms()) == 1


def test_resource_in_use_is_retried_then_succeeds(world: World) -> None:
    moto_eks_updates.script("prod", "ng-b", busy=1, polls=2)
    execution = finished(world, dispatch(world)["execution_arn"])
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    assert len(steps("start_update")) == 4  # ng-b's first attempt was refused with ResourceInUseException
    retried = [e for _, e, kind in moto_lambda_handlers.ERRORS if kind == "NodegroupBusy"]
    assert [(e["action"], e["nodegroup"]) for e in retried] == [("start_update", "ng-b")]
    assert update_calls("ng-b") == ["2", "2"]  # refused with ResourceInUseException, then accepted
    assert world.nodegroup_version("prod", "ng-b") == "2"


def test_waits_for_a_creating_nodegroup(world: World) -> None:
    moto_eks_updates.script("prod", "ng-a", creating_reads=5)
    execution = finished(world, dispatch(world, "eks-create-nodegroup")["execution_arn"])
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    # Each node group runs in its own child execution; its tries show in the step invocations: start_update found the
    # node group CREATING (-> WaitForActive) before it started the update.
    assert len([e for e in steps("start_update") if e["nodegroup"] == "ng-a"]) > 1
    assert world.nodegroup_version("prod", "ng-a") == "2"


def test_verification_failure_rolls_back_and_stops(world: World, stubs: Stubs) -> None:
    stubs.verify_fails.add("ng-b")
    execution = finished(world, dispatch(world, MAX_CONCURRENCY="1")["execution_arn"])
    assert execution["status"] == "FAILED"
    assert "prod/ng-b failed" in execution["cause"]
    assert "verification" in execution["cause"]
    assert world.nodegroup_version("prod", "ng-a") == "2"  # the canary stays rolled
    assert update_calls("ng-b") == ["2", "1"]  # rolled, then rolled back (awaited: it runs version 1 again)
    assert world.nodegroup_version("prod", "ng-b") == "1"
    assert update_calls("ng-c") == []  # not started: concurrency 1, after ng-b
    [alarm] = world.alarms()
    assert "prod/ng-b failed: verification: failed (rolled back to version 1)" in alarm["message"]["summary"]


def test_preflight_failure_changes_nothing(world: World, stubs: Stubs) -> None:
    stubs.preflight_result = {
        "ok": False,
        "result": "connect_refused",
        "detail": "proxy answered 403 to CONNECT",
        "latency_ms": {},
    }
    execution = finished(world, dispatch(world)["execution_arn"])
    assert (execution["status"], execution["error"]) == ("FAILED", "PreflightFailed")
    assert "connect_refused: proxy answered 403 to CONNECT" in execution["cause"]
    assert steps("refresh") == []
    assert all(len(world.versions(f"prod-{name}")) == 1 for name in NODEGROUPS)
    assert moto_eks_updates.CALLS == []
    assert len(world.alarms()) == 1


def test_hostile_value_stops_at_validation(world: World) -> None:
    version = world.put_proxy("http://10.0.0.10:3128\nHTTP_PROXY=http://evil:1")
    sfn = world.clients["stepfunctions"]
    document = {
        "change_id": "c1",
        "trigger": "ssm",
        "parameter": {"name": "/eks-proxy/config", "version": version},
        "max_concurrency": 2,
        "rollback_on_failure": True,
        "canary": {"cluster": "prod", "nodegroup": "ng-a"},
        "rest": [],
    }
    arn = sfn.start_execution(stateMachineArn=world.state_machine_arn, name="hostile", input=json.dumps(document))[
        "executionArn"
    ]
    execution = finished(world, arn)
    assert (execution["status"], execution["error"]) == ("FAILED", "InvalidRolloutInput")
    assert "invalid proxy value" in execution["cause"]
    assert "evil" not in execution["cause"]
    assert all(len(world.versions(f"prod-{name}")) == 1 for name in NODEGROUPS)
    assert moto_eks_updates.CALLS == []
    [alarm] = world.alarms()
    assert alarm["message"]["stage"] == "validate_input"


def test_refresh_replayed_or_racing_makes_exactly_one_version(world: World) -> None:
    """Three refreshes in a row reuse the version; two racing ones get the same version from the ClientToken."""
    step = load_handler("rollout_step", world.env())
    event = {
        "action": "refresh",
        "cluster": "prod",
        "nodegroup": "ng-a",
        "change_id": "c1",
        "parameter": {"name": "/eks-proxy/config", "version": 1},
    }
    results = [step.lambda_handler(event, FakeContext()) for _ in range(3)]
    assert [r["outcome"] for r in results] == ["create_version", "roll_existing", "roll_existing"]
    assert {r["version_after"] for r in results} == {2}
    assert len(world.versions("prod-ng-a")) == 2

    from concurrent.futures import ThreadPoolExecutor

    race = dict(event, nodegroup="ng-b")
    with ThreadPoolExecutor(max_workers=2) as pool:
        raced = list(pool.map(lambda _: step.lambda_handler(race, FakeContext()), range(2)))
    assert {r["version_after"] for r in raced} == {2}
    assert len(world.versions("prod-ng-b")) == 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"canary": {"cluster": "dev", "nodegroup": "ng-a"}}, "cluster 'dev' is not in CLUSTER_NAMES"),
        ({"rest": [{"cluster": "prod", "nodegroup": "ng-a"}]}, "prod/ng-a is listed twice"),
        ({"canary": {"cluster": "prod", "nodegroup": "ng a; rm -rf /"}}, "invalid node group name"),
        ({"parameter": {"name": "/other", "version": 1}}, "parameter must be '/eks-proxy/config'"),
        ({"parameter": {"name": "/eks-proxy/config", "version": 99}}, "not found"),
        ({"max_concurrency": 0}, "max_concurrency must be an integer from 1 to 40"),
        ({"trigger": "manual"}, "trigger must be one of"),
        ({"rollback_on_failure": "yes"}, "rollback_on_failure must be true or false"),
    ],
)
def test_validate_input_refuses_bad_input_with_one_line(world: World, change: dict[str, Any], message: str) -> None:
    from eks_proxy.engine.steps import InvalidRolloutInput

    step = load_handler("rollout_step", world.env())
    document = {
        "change_id": "c1",
        "trigger": "ssm",
        "parameter": {"name": "/eks-proxy/config", "version": 1},
        "max_concurrency": 2,
        "rollback_on_failure": True,
        "canary": {"cluster": "prod", "nodegroup": "ng-a"},
        "rest": [],
    } | change
    with pytest.raises(InvalidRolloutInput, match=message) as error:
        step.lambda_handler({"action": "validate_input", "input": document}, FakeContext())
    assert "\n" not in str(error.value)


def test_start_update_on_a_nodegroup_already_on_the_version_is_a_no_op(world: World) -> None:
    """A second rollout of the same change (it waited on NodegroupBusy meanwhile) finds the work done."""
    step = load_handler("rollout_step", world.env())
    world.clients["eks"].delete_nodegroup(clusterName="prod", nodegroupName="ng-a")
    world.nodegroup("prod", "ng-a", template="prod-ng-a", version=1)
    refresh = {"launch_template": {"id": world.templates["prod-ng-a"], "name": None}, "version_after": 1}
    event = {"action": "start_update", "cluster": "prod", "nodegroup": "ng-a", "refresh": refresh, "parameter": PINNED}
    assert step.lambda_handler(event, FakeContext())["status"] == "current"
    assert moto_eks_updates.CALLS == []


def test_polls_every_60_to_120_seconds(world: World) -> None:
    """An update that lands is noticed at most two minutes late: 60 s, 90 s, then every 120 s. Each poll adds ~9
    events to the node group's own child execution history, which holds 25,000: ~45 hours of polling."""
    moto_eks_updates.script("prod", "ng-a", polls=20)
    step = load_handler("rollout_step", world.env())
    target = {"cluster": "prod", "nodegroup": "ng-a", "wait_seconds": 60, "parameter": PINNED, "change_id": "c1"}
    refresh = step.lambda_handler({"action": "refresh", **target}, FakeContext())
    update = step.lambda_handler({"action": "start_update", **target, "refresh": refresh}, FakeContext())
    assert (update["status"], update["polls"], update["next_wait_seconds"]) == ("started", 0, 60)
    waits = []
    for _ in range(6):
        update = step.lambda_handler({"action": "describe_update", **target, "update": update}, FakeContext())
        assert update["status"] == "InProgress"
        waits.append(update["next_wait_seconds"])
    assert waits == [90, 120, 120, 120, 120, 120]


def test_launch_template_deleted_mid_rollout_is_gone_not_failed(world: World, stubs: Stubs) -> None:
    """ng-c's launch template disappears after dispatch planned it: its refresh reports it gone, the rest rolls."""
    ec2 = world.clients["ec2"]
    stubs.during_preflight.append(lambda: ec2.delete_launch_template(LaunchTemplateId=world.templates["prod-ng-c"]))
    execution = finished(world, dispatch(world)["execution_arn"])
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    records = {r["nodegroup"]: r for r in json.loads(execution["output"])["results"]}
    assert records["ng-c"]["outcome"] == "gone"
    assert world.alarms() == []
    assert "no longer exists" in records["ng-c"]["summary"]
    assert [records["ng-a"]["outcome"], records["ng-b"]["outcome"]] == ["rolled", "rolled"]
    assert update_calls("ng-c") == []


def test_the_same_change_delivered_three_times_makes_one_execution_and_one_version(world: World) -> None:
    results = [dispatch(world) for _ in range(3)]
    assert results[0]["status"] == "started"
    arns = {r["execution_arn"] for r in results if r["execution_arn"]}
    assert len(arns) == 1
    execution = finished(world, arns.pop())
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    sfn = world.clients["stepfunctions"]
    assert len(sfn.list_executions(stateMachineArn=world.state_machine_arn)["executions"]) == 1
    assert all([v["VersionNumber"] for v in world.versions(f"prod-{n}")] == [1, 2] for n in NODEGROUPS)


def test_a_newer_parameter_version_supersedes_a_running_rollout(world: World, stubs: Stubs) -> None:
    """A change made while an older rollout runs: the older one stops touching node groups (it would otherwise roll
    the stale value over node groups the newer rollout already did); the newer rollout rolls each node group once."""
    stubs.during_preflight.append(lambda: world.put_proxy("http://10.0.0.20:3128"))
    first = finished(world, dispatch(world)["execution_arn"])
    assert first["status"] == "SUCCEEDED", first.get("cause")
    records = json.loads(first["output"])["results"]
    assert [r["outcome"] for r in records] == ["superseded"] * 3
    assert all("superseded by /eks-proxy/config:2" in r["summary"] for r in records)
    assert moto_eks_updates.CALLS == []
    assert all(len(world.versions(f"prod-{name}")) == 1 for name in NODEGROUPS)
    stubs.during_preflight.clear()
    second = finished(world, dispatch(world)["execution_arn"])
    assert second["status"] == "SUCCEEDED", second.get("cause")
    for name in NODEGROUPS:
        versions = world.versions(f"prod-{name}")
        assert [v["VersionNumber"] for v in versions] == [1, 2]
        assert b"10.0.0.20:3128" in base64.b64decode(versions[1]["LaunchTemplateData"]["UserData"])
        assert update_calls(name) == ["2"]


def test_a_nodegroup_being_updated_is_refreshed_from_the_version_it_ends_on(world: World) -> None:
    """Someone rolls ng-a to a new launch template version of their own while our rollout starts: the refresh waits
    for that update instead of building on the version it replaces (which would revert their change), and makes
    exactly one version, from theirs."""

    ec2, eks = world.clients["ec2"], world.clients["eks"]
    template = world.templates["prod-ng-a"]
    ec2.create_launch_template_version(
        LaunchTemplateId=template, SourceVersion="1", LaunchTemplateData={"InstanceType": "m7i.xlarge"}
    )
    moto_eks_updates.script("prod", "ng-a", polls=3)
    theirs = eks.update_nodegroup_version(
        clusterName="prod", nodegroupName="ng-a", launchTemplate={"id": template, "version": "2"}
    )["update"]["id"]
    moto_eks_updates.CALLS.clear()

    # Only once our rollout has reached ng-a (refreshed twice = waited, or tried to start its update).
    helper = finish_their_update_when(
        lambda: len(steps("refresh")) >= 2 or bool(steps("start_update")), eks, "ng-a", theirs
    )
    execution = finished(world, dispatch(world)["execution_arn"])
    helper.join(timeout=60)
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    versions = world.versions("prod-ng-a")
    assert [v["VersionNumber"] for v in versions] == [1, 2, 3]
    ours = versions[2]
    assert " from v2 parameter v" in ours["VersionDescription"]
    assert ours["LaunchTemplateData"]["InstanceType"] == "m7i.xlarge"  # their change kept
    assert update_calls("ng-a") == ["3"]
    assert world.nodegroup_version("prod", "ng-a") == "3"
    # It waited (WaitForOtherUpdate, counted in `waits`) before it refreshed from their version.
    assert any(e["waits"] >= 1 for e in steps("refresh") if e["nodegroup"] == "ng-a")


def test_start_update_goes_back_to_refresh_when_the_nodegroup_moved_on(world: World) -> None:
    """Between refresh and start_update someone rolled another version: rolling ours (built on the old one) would
    revert theirs, so start_update says `stale` and the state machine refreshes again."""
    step = load_handler("rollout_step", world.env())
    world.clients["ec2"].create_launch_template_version(
        LaunchTemplateId=world.templates["prod-ng-a"], SourceVersion="1", LaunchTemplateData={}
    )
    world.clients["eks"].delete_nodegroup(clusterName="prod", nodegroupName="ng-a")
    world.nodegroup("prod", "ng-a", template="prod-ng-a", version=2)
    refresh = {
        "launch_template": {"id": world.templates["prod-ng-a"], "name": None},
        "version_before": 1,
        "version_after": 3,
    }
    event = {"action": "start_update", "cluster": "prod", "nodegroup": "ng-a", "refresh": refresh, "parameter": PINNED}
    assert step.lambda_handler(event, FakeContext())["status"] == "stale"
    assert moto_eks_updates.CALLS == []


def test_a_nodegroup_update_by_someone_else_still_in_progress_gets_the_proxy_once_it_ends(world: World) -> None:
    """The CloudTrail event of someone's UpdateNodegroupVersion arrives while their update still runs: the node
    group still reports the (up-to-date) version it is leaving. Dispatch must not call that up to date: the version it
    lands on has no proxy. The rollout waits for their update and injects into their version."""

    first = finished(world, dispatch(world)["execution_arn"])
    assert first["status"] == "SUCCEEDED", first.get("cause")  # every node group on our version 2
    ec2, eks = world.clients["ec2"], world.clients["eks"]
    template = world.templates["prod-ng-a"]
    team = base64.b64encode(b"#!/bin/bash\necho new-team-script\n").decode()
    ec2.create_launch_template_version(
        LaunchTemplateId=template, SourceVersion="1", LaunchTemplateData={"UserData": team}
    )  # version 3: their change, built on their own version 1, without the proxy
    moto_eks_updates.script("prod", "ng-a", polls=3)
    theirs = eks.update_nodegroup_version(
        clusterName="prod", nodegroupName="ng-a", launchTemplate={"id": template, "version": "3"}
    )["update"]["id"]
    moto_eks_updates.CALLS.clear()
    moto_lambda_handlers.INVOCATIONS.clear()
    event = load_event("eks-update-nodegroup-version")
    event["detail"]["requestParameters"]["launchTemplate"] = {"id": template, "version": "3"}
    module = load_handler("dispatch", world.env())
    started = module.lambda_handler(event, FakeContext())
    assert started["status"] == "started", started

    helper = finish_their_update_when(lambda: len(steps("refresh")) >= 2, eks, "ng-a", theirs)
    execution = finished(world, started["execution_arn"])
    helper.join(timeout=60)
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    versions = world.versions("prod-ng-a")
    assert [v["VersionNumber"] for v in versions] == [1, 2, 3, 4]
    assert " from v3 parameter v" in versions[3]["VersionDescription"]
    assert b"new-team-script" in base64.b64decode(versions[3]["LaunchTemplateData"]["UserData"])
    assert world.nodegroup_version("prod", "ng-a") == "4"


def test_a_large_scope_is_rolled_batch_after_batch_until_done(world: World) -> None:
    """MAX_NODEGROUPS_PER_ROLLOUT=2 and five node groups: three executions, each started by the previous one's
    success (RolloutSucceededRule: a sweep naming the execution it follows), the last batch included."""
    for name in ("ng-d", "ng-e"):
        world.template(f"prod-{name}")
        world.nodegroup("prod", name, template=f"prod-{name}")
    module = load_handler("dispatch", world.env(MAX_NODEGROUPS_PER_ROLLOUT="2"))
    result = module.lambda_handler(load_event("ssm-parameter-update"), FakeContext())
    names = []
    while result["status"] == "started":
        execution = finished(world, result["execution_arn"])
        assert execution["status"] == "SUCCEEDED", execution.get("cause")
        names.append(execution["name"])
        assert execution["name"].startswith("more-")  # what RolloutSucceededRule continues
        continuation = load_event("schedule-drift-sweep") | {"id": f"continue-{len(names)}"}
        continuation["detail"] = {"trigger": "sweep", "after": execution["name"]}  # what the rule's transformer sends
        result = module.lambda_handler(continuation, FakeContext())
        assert len(names) < 5, "never converges"
    assert result["status"] == "up_to_date", result
    assert len(names) == 3
    for name in (*NODEGROUPS, "ng-d", "ng-e"):
        assert world.nodegroup_version("prod", name) == "2", name
    again = module.lambda_handler(continuation, FakeContext())  # the same continuation delivered twice
    assert again["status"] == "up_to_date"
