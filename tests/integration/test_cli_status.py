"""`eks-proxy status` as users run it (a process), on rollouts the real state machine ran on the moto server.

The rollouts come from testkit/rollout.py's world (real dispatch, the ASL executed by moto's Step Functions engine,
the real rollout_step handler, EKS updates scripted by our moto extension), the same world the state machine tests
use.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator

import boto3
import pytest

from testkit import moto_eks_updates
from testkit.cli import COMMAND, assert_refused
from testkit.engine_world import World
from testkit.moto_server import MotoServer
from testkit.rollout import Stubs, rolled_out, rollout_world


@pytest.fixture
def stubs() -> Stubs:
    return Stubs()


@pytest.fixture
def world(moto_server: MotoServer, stubs: Stubs) -> Iterator[World]:
    with rollout_world(moto_server, stubs) as w:
        yield w


def status(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, "status", *args], capture_output=True, text=True, timeout=120, env=dict(os.environ)
    )


def test_successful_rollout_per_nodegroup(world: World) -> None:
    arn = rolled_out(world)
    result = status("--state-machine", world.state_machine_arn)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith(f"eks-proxy status: {world.state_machine_arn} (--state-machine)\n")
    assert re.search(rf"SUCCEEDED +{re.escape(arn.rsplit(':', 1)[-1])}\n", out)
    assert "trigger ssm, parameter /eks-proxy/config:1, change 7b8f9a0c-c5a2-4d08-b0f2-c04814578829" in out
    assert re.search(r"prod/ng-a +rolled +rolled from version 1 to 2 +\(canary\)", out)
    assert re.search(r"prod/ng-b +rolled +rolled from version 1 to 2\n", out)
    assert re.search(r"prod/ng-c +rolled +rolled from version 1 to 2\n", out)


def test_failed_rollout_from_history(world: World) -> None:
    moto_eks_updates.script("prod", "ng-a", outcome="Failed", polls=0)
    rolled_out(world)
    result = status("--state-machine", world.state_machine_arn)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "FAILED" in out
    assert re.search(r"prod/ng-a +failed +failed: .*stayed on version 1\) +\(canary\)", out)
    assert re.search(r"prod/ng-b +not_started +not started: prod/ng-a failed", out)
    assert re.search(r"prod/ng-c +not_started +not started: prod/ng-a failed", out)
    assert "error RolloutFailed: " in out


def test_state_machine_found_from_the_stack_output(world: World) -> None:
    rolled_out(world)
    template = {
        "Resources": {"AlarmTopic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {"RolloutStateMachineArn": {"Value": world.state_machine_arn}},
    }
    cfn = boto3.client("cloudformation", region_name="eu-west-1", endpoint_url=world.server_url)
    cfn.create_stack(StackName="eks-proxy", TemplateBody=json.dumps(template))
    result = status()  # default --stack eks-proxy
    assert result.returncode == 0, result.stderr
    assert "(stack eks-proxy output RolloutStateMachineArn)" in result.stdout
    assert "prod/ng-a" in result.stdout
    assert_refused(status("--stack", "platform-proxy"), "stack 'platform-proxy' not found")


def test_cluster_filter_and_bad_input(world: World) -> None:
    rolled_out(world)
    other = status("--state-machine", world.state_machine_arn, "--cluster", "staging")
    assert other.returncode == 0 and "no rollouts for cluster staging" in other.stdout
    missing = world.state_machine_arn.replace("eks-proxy-rollout", "nope")
    assert_refused(status("--state-machine", missing), "not found")
    assert_refused(status("--state-machine", world.state_machine_arn, "--limit", "0"), "--limit must be at least 1")
    assert_refused(status("--state-machine", "x", "--stack", "y"), "not allowed with")


def test_cluster_filter_finds_that_clusters_latest_rollouts_behind_newer_ones(moto_server: MotoServer) -> None:
    # One state machine serves every cluster: `--cluster prod --limit 1` is prod's latest rollout, even when other
    # clusters rolled since (it used to take the newest execution overall, then filter it away).
    moto_server.execute_state_machines(True)
    sfn = boto3.client("stepfunctions", region_name="eu-west-1", endpoint_url=moto_server.url)
    iam_role = "arn:aws:iam::123456789012:role/sfn"
    definition = {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}
    arn = sfn.create_state_machine(name="eks-proxy-rollout", definition=json.dumps(definition), roleArn=iam_role)[
        "stateMachineArn"
    ]

    def rollout(cluster: str, index: int) -> None:
        summary = f"{cluster}/ng rolled #{index}"
        record = {"cluster": cluster, "nodegroup": "ng", "outcome": "rolled", "summary": summary}
        document = {
            "trigger": "ssm",
            "change_id": f"change-{cluster}-{index}",
            "parameter": {"name": "/eks-proxy/config", "version": index},
            "canary": {"cluster": cluster, "nodegroup": "ng"},
            "rest": [],
            "results": [record],
        }
        started = sfn.start_execution(stateMachineArn=arn, name=f"ssm-{cluster}-{index}", input=json.dumps(document))
        execution = sfn.describe_execution(executionArn=started["executionArn"])
        while execution["status"] == "RUNNING":
            time.sleep(0.05)
            execution = sfn.describe_execution(executionArn=started["executionArn"])
        time.sleep(0.01)  # distinct start dates

    rollout("prod", 1)
    for index in range(2, 5):
        rollout("staging", index)
    result = status("--state-machine", arn, "--cluster", "prod", "--limit", "1")
    assert result.returncode == 0, result.stderr
    assert "change change-prod-1" in result.stdout and re.search(r"prod/ng  rolled +rolled #1", result.stdout)
    assert "staging" not in result.stdout
