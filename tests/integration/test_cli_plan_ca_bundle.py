"""`eks-proxy plan` with a TLS-inspecting proxy's CA bundle, as a process against the moto server: a rotation
(the parameter's new content, or a file to try with --ca-bundle) shows as certificates going and coming."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from eks_proxy.aws.clients import AwsClients
from eks_proxy.aws.ssm import attach_ca_bundle
from eks_proxy.proxy.value import parse_proxy_value

from demo.scenario import CASES, CLUSTER, FIRST_PROXY, build_demo_world
from testkit import moto_eks_updates
from testkit.ca_pem import ca_pem
from testkit.cli import assert_refused, plan, roll_out, version_count
from testkit.cli import block as block_of
from testkit.engine_world import World
from testkit.moto_server import MotoServer

moto_eks_updates.install()

VALUE = json.dumps({"http_proxy": FIRST_PROXY, "ca_bundle": "/eks-proxy/ca-bundle"})
IN_SCOPE = [c.nodegroup for c in CASES if c.expected != "out_of_scope"]
CA_2026 = ca_pem("Example Corp Inspection CA 2026")
CA_2027 = ca_pem("Example Corp Inspection CA 2027")


def block(stdout: str, nodegroup: str) -> str:
    return block_of(stdout, CLUSTER, nodegroup)


@pytest.fixture
def world(moto_server: MotoServer) -> Iterator[World]:
    moto_eks_updates.reset()
    w = build_demo_world(moto_server)
    w.put_ca_bundle(CA_2026)
    w.put_proxy(VALUE)
    rolled(w)
    yield w


def rolled(world: World) -> None:
    """Every in-scope node group on a version that carries the value and the 2026 CA (a finished rollout)."""
    roll_out(world, CLUSTER, IN_SCOPE, attach_ca_bundle(AwsClients().ssm, parse_proxy_value(VALUE)))


def test_the_bundle_in_place_is_up_to_date(world: World) -> None:
    result = plan("--cluster", CLUSTER)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "CA bundle from /eks-proxy/ca-bundle" in result.stdout


@pytest.mark.parametrize("how", ["parameter", "file"])
def test_a_rotation_shows_the_certificates_going_and_coming(world: World, tmp_path: Path, how: str) -> None:
    before = version_count(world)
    if how == "parameter":
        world.put_ca_bundle(CA_2027)
        result = plan("--cluster", CLUSTER)
    else:
        new = tmp_path / "new-ca.pem"
        new.write_text(CA_2027)
        result = plan("--cluster", CLUSTER, "--ca-bundle", str(new))
    assert result.returncode == 3, result.stdout + result.stderr
    for nodegroup in IN_SCOPE:
        lines = block(result.stdout, nodegroup)
        assert "  CA bundle:   changes (TLS-inspecting proxy)\n" in lines, lines
        assert "\n    - CN=Example Corp Inspection CA 2026 (sha256 " in lines
        assert "\n    + CN=Example Corp Inspection CA 2027 (sha256 " in lines
    assert version_count(world) == before  # read-only


def test_a_missing_bundle_or_a_file_for_a_value_without_one_is_refused(world: World, tmp_path: Path) -> None:
    world.clients["ssm"].delete_parameter(Name="/eks-proxy/ca-bundle")
    assert_refused(plan("--cluster", CLUSTER), "does not exist")
    new = tmp_path / "ca.pem"
    new.write_text(CA_2027)
    assert_refused(plan("--cluster", CLUSTER, "--value", FIRST_PROXY, "--ca-bundle", str(new)), '"ca_bundle"')
