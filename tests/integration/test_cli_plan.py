"""`eks-proxy plan` as users run it: a process, against the moto server over HTTP (AWS_ENDPOINT_URL).

Every node group case of the demo account (AL2023 with the team's NodeConfig part, Bottlerocket with settings, AL2,
no launch template, opted out), both exit codes (3: something would change, 0: nothing would), `--value` and
`--parameter`, and bad input (exit 2, one line). Plan is read-only: it never creates a launch template version.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator

import pytest
from eks_proxy.aws.clients import AwsClients
from eks_proxy.config import Settings
from eks_proxy.engine.refresh import refresh_launch_template
from eks_proxy.proxy.value import parse_proxy_value

from demo.scenario import CASES, CLUSTER, FIRST_PROXY, build_demo_world
from testkit import moto_eks_updates
from testkit.cli import COMMAND, assert_refused, plan, roll_out, version_count
from testkit.cli import block as block_of
from testkit.engine_world import World
from testkit.moto_server import MotoServer

IN_SCOPE = [c.nodegroup for c in CASES if c.expected != "out_of_scope"]


@pytest.fixture
def world(moto_server: MotoServer) -> Iterator[World]:
    moto_eks_updates.reset()
    w = build_demo_world(moto_server)
    w.put_proxy(FIRST_PROXY)
    yield w


def block(stdout: str, nodegroup: str) -> str:
    return block_of(stdout, CLUSTER, nodegroup)


def roll(world: World) -> None:
    """What a finished rollout leaves behind: each in-scope node group on a version carrying the configuration."""
    roll_out(world, CLUSTER, IN_SCOPE, parse_proxy_value(FIRST_PROXY))


def test_first_plan_shows_every_case_and_exits_3(world: World) -> None:
    before = version_count(world)
    result = plan("--cluster", CLUSTER)
    assert result.returncode == 3, result.stderr
    assert result.stderr == ""
    out = result.stdout
    assert f"{CLUSTER} in eu-west-1, proxy from /eks-proxy/config version 1 (read-only)" in out

    al2023 = block(out, "al2023-apps")
    assert "would create a new launch template version (al2023)" in al2023
    assert "version 1 -> new version (copy of 1)" in al2023
    assert re.search(r"fingerprint: current none, desired [0-9a-f]{16}", al2023)
    assert "\n     " + "      maxPods: 58" in al2023  # the team's NodeConfig is kept (diff context) ...
    assert "\n    +Content-Type: application/node.eks.aws" in al2023  # ... and ours is added after it
    assert '\n    +        HTTP_PROXY: &p "http://10.0.0.10:3128"' in al2023
    assert not re.search(r"^    -(?!-- )", al2023, re.M)  # nothing of the team's is removed

    bottlerocket = block(out, "bottlerocket-web")
    assert "(bottlerocket)" in bottlerocket
    assert '\n    +https-proxy = "http://10.0.0.10:3128"' in bottlerocket
    assert "\n     max-pods = 110" in bottlerocket or "[settings.host-containers.admin]" in bottlerocket

    al2 = block(out, "al2-legacy")
    assert "(al2)" in al2 and "\n    +Content-Type: text/cloud-boothook" in al2

    no_template = block(out, "no-template")
    assert "out of scope" in no_template and "created without a launch template" in no_template
    assert "remedy:      recreate the node group with a launch template" in no_template
    assert "user data diff" not in no_template

    opted_out = block(out, "opted-out")
    assert "opted out by tag eks-proxy/skip=true" in opted_out and "user data diff" not in opted_out

    assert out.rstrip().endswith(
        "3 would change (3 new version(s), 0 roll to an existing one), 0 up to date, 2 out of scope"
    )
    assert version_count(world) == before  # read-only


def test_after_the_rollout_nothing_would_change_exit_0(world: World) -> None:
    roll(world)
    result = plan("--cluster", CLUSTER)
    assert result.returncode == 0, result.stdout + result.stderr
    for nodegroup in IN_SCOPE:
        assert "up to date" in block(result.stdout, nodegroup)
        assert "version 2" in block(result.stdout, nodegroup)
    assert "user data diff" not in result.stdout
    assert "0 would change (0 new version(s), 0 roll to an existing one), 3 up to date, 2 out of scope" in result.stdout


def test_version_made_but_not_rolled_is_reused(world: World) -> None:
    clients, config = AwsClients(), parse_proxy_value(FIRST_PROXY)
    settings = Settings(cluster_names=(CLUSTER,), alarm_topic_arn="")
    refresh_launch_template(clients, settings, CLUSTER, "al2023-apps", config)
    result = plan("--cluster", CLUSTER, "--nodegroup", "al2023-apps")
    assert result.returncode == 3
    mine = block(result.stdout, "al2023-apps")
    assert "would roll to a version made earlier (al2023)" in mine
    assert "version 1 -> 2 (already made)" in mine
    assert "+++ lt-" in mine and " v2" in mine
    assert "bottlerocket-web" not in result.stdout  # --nodegroup narrows the plan


def test_value_is_planned_without_touching_the_parameter(world: World) -> None:
    roll(world)  # up to date for the parameter's value ...
    result = plan("--cluster", CLUSTER, "--value", "http://10.0.0.99:3128")
    assert result.returncode == 3  # ... but not for this one
    assert "proxy from the value given with --value" in result.stdout
    assert '+        HTTP_PROXY: &p "http://10.0.0.99:3128"' in block(result.stdout, "al2023-apps")
    assert '-        HTTP_PROXY: &p "http://10.0.0.10:3128"' in block(result.stdout, "al2023-apps")
    same = plan("--cluster", CLUSTER, "--value", FIRST_PROXY)
    assert same.returncode == 0, same.stdout


def test_other_parameter(world: World) -> None:
    world.clients["ssm"].put_parameter(Name="/platform/proxy", Value="proxy.corp.example:8080", Type="SecureString")
    result = plan("--cluster", CLUSTER, "--parameter", "/platform/proxy")
    assert result.returncode == 3
    assert "proxy from /platform/proxy version 1" in result.stdout
    assert 'https-proxy = "http://proxy.corp.example:8080"' in block(result.stdout, "bottlerocket-web")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        pytest.param(["--value", "http://alice:s3cret@10.0.0.10:3128"], "contains credentials", id="credentials"),
        pytest.param(["--value", "http://10.0.0.10"], "port", id="no-port"),
        pytest.param(["--value", "http://10.0.0.10:3128;reboot"], "", id="shell-metacharacter"),
        pytest.param(["--value", '{"http-proxy": "10.0.0.10:3128"}'], "http-proxy", id="unknown-json-key"),
        pytest.param(["--parameter", "/does/not/exist"], "parameter /does/not/exist not found", id="no-parameter"),
        pytest.param(["--value", "x:1", "--parameter", "/eks-proxy/config"], "not allowed with", id="both-sources"),
    ],
)
def test_bad_input_is_one_line_exit_2(world: World, args: list[str], fragment: str) -> None:
    before = version_count(world)
    result = plan("--cluster", CLUSTER, *args)
    assert_refused(result, fragment)
    assert "s3cret" not in result.stderr
    assert version_count(world) == before


def test_unknown_cluster_is_exit_2(world: World) -> None:
    assert_refused(plan("--cluster", "staging"), "cluster 'staging' not found in eu-west-1")


def test_unknown_nodegroup_is_exit_2(world: World) -> None:
    assert_refused(plan("--cluster", CLUSTER, "--nodegroup", "ng-x"), "node group 'ng-x' not found in cluster 'prod'")


def test_nodegroup_needs_one_cluster(world: World) -> None:
    assert_refused(plan("--cluster", CLUSTER, "--cluster", "b", "--nodegroup", "x"), "exactly one --cluster")


def test_aws_unreachable_is_one_line_exit_1(world: World) -> None:
    env = dict(os.environ, AWS_ENDPOINT_URL="http://127.0.0.1:9", AWS_MAX_ATTEMPTS="1")
    result = subprocess.run(
        [*COMMAND, "plan", "--cluster", CLUSTER], capture_output=True, text=True, timeout=120, env=env
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stdout == "" and result.stderr.count("\n") == 1
    assert result.stderr.startswith("eks-proxy: error: Could not connect to the endpoint URL")
