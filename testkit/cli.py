"""The `eks-proxy` CLI as users run it: a process, its exit code and its one-line refusals."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from eks_proxy.proxy.value import ProxyConfig

    from testkit.engine_world import World

CONSOLE_SCRIPT = Path(sys.executable).parent / "eks-proxy"
COMMAND = [str(CONSOLE_SCRIPT)] if CONSOLE_SCRIPT.exists() else [sys.executable, "-m", "eks_proxy.cli.main"]


def assert_refused(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    """Bad input: exit 2, nothing on stdout, exactly one `eks-proxy: error: ...` line on stderr naming `fragment`."""
    assert result.returncode == 2, result
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("eks-proxy: error: "), result.stderr
    assert fragment in result.stderr, result.stderr


def plan(*args: str) -> subprocess.CompletedProcess[str]:
    """`eks-proxy plan` in its own process; AWS_ENDPOINT_URL (set by the moto_server fixture) is inherited."""
    return subprocess.run([*COMMAND, "plan", *args], capture_output=True, text=True, timeout=120, env=dict(os.environ))


def block(stdout: str, cluster: str, nodegroup: str) -> str:
    """The lines of one node group in the plan output."""
    match = re.search(rf"^{cluster}/{nodegroup}: .*?(?=^\S|\Z)", stdout, re.S | re.M)
    assert match, f"{nodegroup} missing from:\n{stdout}"
    return match.group(0)


def version_count(world: World) -> int:
    """Launch template versions in the world, all templates together (plan must never add one)."""
    return sum(len(world.versions(name)) for name in world.templates)


def roll_out(world: World, cluster: str, nodegroups: list[str], config: ProxyConfig) -> None:
    """What a finished rollout leaves behind: each node group on a version carrying `config` (refresh + update)."""
    from eks_proxy.aws.clients import AwsClients
    from eks_proxy.config import Settings
    from eks_proxy.engine.refresh import refresh_launch_template

    from testkit import moto_eks_updates

    clients = AwsClients()
    settings = Settings(cluster_names=(cluster,), alarm_topic_arn="")
    eks = world.clients["eks"]
    for nodegroup in nodegroups:
        decision = refresh_launch_template(clients, settings, cluster, nodegroup, config)
        assert decision.target_version and decision.launch_template
        moto_eks_updates.script(cluster, nodegroup, polls=0)
        update = eks.update_nodegroup_version(
            clusterName=cluster,
            nodegroupName=nodegroup,
            launchTemplate=decision.launch_template.for_update(decision.target_version),
        )["update"]
        described = eks.describe_update(name=cluster, nodegroupName=nodegroup, updateId=update["id"])["update"]
        assert described["status"] == "Successful"  # the scripted update lands when it is described
