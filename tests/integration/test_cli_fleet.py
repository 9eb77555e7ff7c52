"""`eks-proxy fleet` as users run it (a process), against the moto server over HTTP, on rollouts the real state machine
ran (testkit/rollout.py's world: real dispatch, the ASL executed by moto's engine, the real
rollout_step handler, EKS updates scripted by our moto extension).

Every state a node group can be shown in that this world can produce (current, drift, out of scope, waiting for
another update, failed, rolled back), the table and `--format json`, the clusters taken from the stack, and the exit
codes: 0 all current, 3 some not, 2 bad input (one line), 1 AWS unreachable.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from eks_proxy.engine.fleet import STATES

from testkit import moto_eks_updates
from testkit.cli import COMMAND, assert_refused
from testkit.engine_world import World
from testkit.moto_server import MotoServer
from testkit.repo import free_port
from testkit.rollout import Stubs, rolled_out, rollout_world


@pytest.fixture
def stubs() -> Stubs:
    return Stubs()


@pytest.fixture
def world(moto_server: MotoServer, stubs: Stubs) -> Iterator[World]:
    with rollout_world(moto_server, stubs) as w:
        yield w


def fleet(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, "fleet", *args], capture_output=True, text=True, timeout=120, env={**os.environ, **env}
    )


def as_json(world: World, *args: str) -> tuple[int, dict[str, Any]]:
    result = fleet("--state-machine", world.state_machine_arn, "--cluster", "prod", "--format", "json", *args)
    assert result.returncode in (0, 3), result.stderr
    return result.returncode, json.loads(result.stdout)


def rows(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["nodegroup"]: row for row in document["nodegroups"]}


def test_drift_then_current_after_the_rollout_then_a_new_value(world: World) -> None:
    code, before = as_json(world)
    assert code == 3
    assert before["summary_line"] == "0/3 current, 3 drifted"
    assert {r["state"] for r in before["nodegroups"]} == {"drift"}
    assert all(r["why"].startswith("drift persisting") and r["last_rollout"] is None for r in before["nodegroups"])

    rolled_out(world)
    table = fleet("--state-machine", world.state_machine_arn, "--cluster", "prod")
    assert table.returncode == 0, table.stderr
    assert table.stdout.startswith("eks-proxy fleet: prod in eu-west-1, current value /eks-proxy/config version 1")
    assert table.stdout.rstrip().endswith("3/3 current")
    header = table.stdout.splitlines()[2]
    assert header.split() == [
        "NODE",
        "GROUP",
        "OS",
        "LAUNCH",
        "TEMPLATE",
        "FINGERPRINT",
        "PARAM",
        "CURRENT",
        "LAST",
        "ROLLOUT",
    ]
    code, after = as_json(world)
    assert code == 0
    for name, row in rows(after).items():
        template_id = world.templates[f"prod-{name}"]
        assert row["launch_template"] == {"id": template_id, "name": f"prod-{name}"}
        assert (row["version"], row["parameter_version"], row["current"], row["state"]) == (2, 1, True, "current")
        assert row["fingerprint"] == row["desired_fingerprint"] and re.fullmatch(r"[0-9a-f]{16}", row["fingerprint"])
        assert row["os"] == "al2023" and row["nodegroup_status"] == "ACTIVE"
        assert row["last_rollout"]["outcome"] == "rolled" and row["last_rollout"]["execution_status"] == "SUCCEEDED"
        assert row["last_rollout"]["at"]
        assert re.search(
            rf"prod/{name} +al2023 +{template_id} v2 +{row['fingerprint']} +v1 +yes +rolled \d{{4}}-", table.stdout
        )
    assert after["summary"] == {"total": 3, "current": 3, **{state: 0 for state in STATES}}
    assert after["parameter"] == {"name": "/eks-proxy/config", "version": 1}

    world.put_proxy("http://10.0.0.11:3128")  # a new value, not rolled yet: version 2 of the parameter
    code, changed = as_json(world)
    assert code == 3 and changed["summary_line"] == "0/3 current, 3 drifted"
    row = rows(changed)["ng-a"]
    assert (row["parameter_version"], row["current"]) == (1, False)  # still carries what version 1 made
    assert row["fingerprint"] != row["desired_fingerprint"]


def test_failed_canary_rolled_back_and_the_rest_not_started(world: World, stubs: Stubs) -> None:
    """The canary's new nodes fail verification: it is rolled back (the rollout awaits the rollback), the rest never
    starts; fleet says so per node group."""
    stubs.verify_fails.add("ng-a")
    rolled_out(world)
    result = fleet("--state-machine", world.state_machine_arn, "--cluster", "prod")
    assert result.returncode == 3, result.stderr
    assert result.stdout.rstrip().endswith("0/3 current, 2 failed, 1 rolled back")
    assert re.search(r"prod/ng-a +al2023 +lt-\S+ v1 +- +- +no: rolled back +rolled_back ", result.stdout)
    assert re.search(
        r"^prod/ng-a: rolled back\n  why: +prod/ng-a failed: .*rolled back to version 1", result.stdout, re.M
    )
    assert re.search(r"^prod/ng-b: failed\n  why: +prod/ng-b not started: prod/ng-a failed", result.stdout, re.M)
    _, document = as_json(world)
    assert rows(document)["ng-a"]["last_rollout"]["execution_status"] == "FAILED"
    assert rows(document)["ng-b"]["last_rollout"]["outcome"] == "not_started"


def test_out_of_scope_and_waiting_for_another_update(world: World) -> None:
    world.nodegroup("prod", "no-template")
    ec2, eks = world.clients["ec2"], world.clients["eks"]
    theirs = ec2.create_launch_template_version(
        LaunchTemplateId=world.templates["prod-ng-c"], SourceVersion="1", LaunchTemplateData={}
    )["LaunchTemplateVersion"]["VersionNumber"]
    moto_eks_updates.script("prod", "ng-c", polls=1000)  # a teammate's update that is still rolling
    eks.update_nodegroup_version(
        clusterName="prod",
        nodegroupName="ng-c",
        launchTemplate={"id": world.templates["prod-ng-c"], "version": str(theirs)},
    )
    result = fleet("--state-machine", world.state_machine_arn, "--cluster", "prod")
    assert result.returncode == 3, result.stderr
    assert result.stdout.rstrip().endswith("0/4 current, 1 out of scope, 1 waiting, 2 drifted")
    assert re.search(r"prod/no-template +- +none +- +- +no: out of scope +-", result.stdout)
    assert re.search(
        r"^prod/no-template: out of scope\n  why: +node group was created without a launch template\n"
        r"  remedy: recreate the node group with a launch template",
        result.stdout,
        re.M,
    )
    assert re.search(r"^prod/ng-c: waiting\n  why: +node group is UPDATING", result.stdout, re.M)


def test_clusters_and_state_machine_from_the_stack(world: World) -> None:
    rolled_out(world)
    template = {
        "Parameters": {"ClusterNames": {"Type": "String"}},
        "Resources": {"AlarmTopic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {"RolloutStateMachineArn": {"Value": world.state_machine_arn}},
    }
    cfn = boto3.client("cloudformation", region_name="eu-west-1", endpoint_url=world.server_url)
    cfn.create_stack(
        StackName="eks-proxy",
        TemplateBody=json.dumps(template),
        Parameters=[{"ParameterKey": "ClusterNames", "ParameterValue": "prod"}],
    )
    result = fleet()  # default --stack eks-proxy: its ClusterNames and its state machine
    assert result.returncode == 0, result.stderr
    assert "rollouts from stack eks-proxy output RolloutStateMachineArn" in result.stdout
    assert result.stdout.rstrip().endswith("3/3 current")
    assert_refused(fleet("--stack", "platform-proxy"), "stack 'platform-proxy' not found")


def test_bad_input_is_one_line_and_exit_2(world: World) -> None:
    arn = world.state_machine_arn
    assert_refused(fleet("--state-machine", arn, "--cluster", "staging"), "cluster 'staging' not found")
    assert_refused(fleet("--state-machine", arn, "--cluster", "prod", "--rollouts", "0"), "--rollouts must be")
    assert_refused(fleet("--state-machine", arn, "--parameter", "/nope"), "parameter /nope not found")
    assert_refused(fleet("--state-machine", arn, "--format", "yaml"), "invalid choice")
    missing = arn.replace("eks-proxy-rollout", "nope")
    assert_refused(fleet("--state-machine", missing, "--cluster", "prod"), "not found")
    world.put_proxy("http://user:secret@10.0.0.12:3128")
    refused = fleet("--state-machine", arn, "--cluster", "prod")
    assert_refused(refused, "is invalid")
    assert "secret" not in refused.stderr


def test_aws_unreachable_is_exit_1(moto_server: MotoServer) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    result = fleet("--state-machine", "arn:aws:states:eu-west-1:123456789012:stateMachine:x", AWS_ENDPOINT_URL=dead)
    assert result.returncode == 1, result
    assert result.stdout == "" and result.stderr.count("\n") == 1
    assert result.stderr.startswith("eks-proxy: error: ")
