"""A CA rotation through the whole engine: the real dispatch handler on the CA parameter's change event, the
rollout state machine in moto's engine with the real rollout step, the launch template versions it writes."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from eks_proxy.proxy.ca_bundle import certificates_in
from eks_proxy.userdata.merge import installed_ca_bundle

from testkit.ca_pem import ca_pem, private_key_pem
from testkit.engine_world import World
from testkit.moto_server import MotoServer
from testkit.rollout import NODEGROUPS, Stubs, dispatch, finished, rollout_world

VALUE = json.dumps({"http_proxy": "http://10.0.0.10:3128", "ca_bundle": "/eks-proxy/ca-bundle"})
CA_2026 = ca_pem("Example Corp Inspection CA 2026")
CA_2027 = ca_pem("Example Corp Inspection CA 2027")


@pytest.fixture
def stubs() -> Stubs:
    return Stubs()


@pytest.fixture
def world(moto_server: MotoServer, stubs: Stubs) -> Iterator[World]:
    with rollout_world(moto_server, stubs) as w:
        yield w


def installed(world: World, nodegroup: str) -> list[str]:
    """Subjects of the CA bundle the node group's current launch template version installs."""
    version = world.nodegroup_version("prod", nodegroup)
    [found] = [v for v in world.versions(f"prod-{nodegroup}") if str(v["VersionNumber"]) == version]
    user_data = base64.b64decode(found["LaunchTemplateData"].get("UserData", ""))
    return [c.subject for c in certificates_in(installed_ca_bundle(user_data))]


def test_a_ca_rotation_rolls_every_nodegroup_to_the_new_bundle(world: World) -> None:
    world.put_ca_bundle(CA_2026)
    world.put_proxy(VALUE)
    first = dispatch(world)
    assert finished(world, first["execution_arn"])["status"] == "SUCCEEDED"
    assert {n: installed(world, n) for n in NODEGROUPS} == {
        n: ["CN=Example Corp Inspection CA 2026"] for n in NODEGROUPS
    }

    world.put_ca_bundle(CA_2027)  # the rotation: the proxy value itself is unchanged
    rotated = dispatch(world, "ssm-ca-bundle-update")
    assert rotated["status"] == "started", rotated
    execution = finished(world, rotated["execution_arn"])
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    assert "BEGIN CERTIFICATE" not in execution["input"]  # the bundle never travels in the execution
    assert {n: installed(world, n) for n in NODEGROUPS} == {
        n: ["CN=Example Corp Inspection CA 2027"] for n in NODEGROUPS
    }
    assert dispatch(world, "ssm-ca-bundle-update")["status"] in {"up_to_date", "duplicate"}  # replay: nothing new


def test_a_bundle_turned_bad_after_dispatch_stops_the_rollout_before_any_change(world: World, stubs: Stubs) -> None:
    world.put_ca_bundle(CA_2026)
    world.put_proxy(VALUE)
    versions = {n: len(world.versions(f"prod-{n}")) for n in NODEGROUPS}
    started = dispatch(world)
    stubs.during_preflight.append(lambda: world.put_ca_bundle(CA_2027 + private_key_pem()))
    execution = finished(world, started["execution_arn"])
    assert execution["status"] == "FAILED"
    assert execution.get("error") == "RolloutFailed"
    assert "CA bundle /eks-proxy/ca-bundle contains a private key" in execution.get("cause", "")
    assert private_key_pem().splitlines()[1][:20] not in json.dumps(execution, default=str)
    assert {n: len(world.versions(f"prod-{n}")) for n in NODEGROUPS} == versions


def test_fleet_reads_the_bundle_and_sees_a_rotation_not_rolled_yet(world: World) -> None:
    """`eks-proxy fleet` (a process) compares with the value AND the bundle it names: current after the rollout,
    not current once the bundle is rotated and before its rollout."""
    import os
    import subprocess

    from testkit.cli import COMMAND

    def fleet() -> tuple[int, dict[str, Any]]:
        args = ["fleet", "--state-machine", world.state_machine_arn, "--cluster", "prod", "--format", "json"]
        done = subprocess.run([*COMMAND, *args], capture_output=True, text=True, timeout=120, env=dict(os.environ))
        assert done.returncode in (0, 3), done.stderr
        return done.returncode, json.loads(done.stdout)

    world.put_ca_bundle(CA_2026)
    world.put_proxy(VALUE)
    assert finished(world, dispatch(world)["execution_arn"])["status"] == "SUCCEEDED"
    code, _ = fleet()
    assert code == 0
    world.put_ca_bundle(CA_2027)
    code, document = fleet()
    assert code == 3
    assert {row["state"] for row in document["nodegroups"]} == {"drift"}, document


def test_a_newer_value_naming_a_missing_bundle_does_not_supersede_a_running_rollout(world: World, stubs: Stubs) -> None:
    """Dispatch refuses a value whose bundle is missing, so it gets no rollout; the running one must not stop for it."""
    started = dispatch(world)  # the plain value of the world
    stubs.during_preflight.append(lambda: world.put_proxy(VALUE))  # names /eks-proxy/ca-bundle, which does not exist
    execution = finished(world, started["execution_arn"])
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    outcomes = {r["nodegroup"]: r["outcome"] for r in json.loads(execution["output"])["results"]}
    assert outcomes == {n: "rolled" for n in NODEGROUPS}
