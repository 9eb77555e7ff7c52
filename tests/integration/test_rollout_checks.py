"""The rollout state machine with the REAL Preflight and Verify handlers wired in (issue 4's checks in issue 3's flow).

Preflight probes a real tinyproxy and a real TLS docker-registry on loopback through the pinned proxy value; Verify
talks to the fake Kubernetes API server of testkit/fake_k8s.py (HTTPS, EKS token checked) for the instances moto
holds for each node group. The one seam is the same as in test_verify.py: DescribeCluster's endpoint
and CA are swapped for the fake API server's. Everything else as in test_rollout_sm.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from testkit import moto_eks_updates, moto_lambda_handlers
from testkit.engine_world import World, build_world
from testkit.fake_k8s import FakeKubernetes, PointedAtFake
from testkit.moto_server import MotoServer
from testkit.nodesim.pki import CertificateAuthority, ServerCert, issue_cert, make_ca
from testkit.nodesim.services import ProxyService, RegistryService, start_registry, start_tinyproxy
from testkit.repo import free_port, load_handler
from testkit.rollout import dispatch, finished, update_calls
from testkit.sfn_clock import fast_forward
from testkit.tools import require_tool

pytestmark = pytest.mark.slow
NODEGROUPS = ("ng-a", "ng-b")


@dataclass(frozen=True)
class Checks:
    ca: CertificateAuthority
    registry: RegistryService
    proxy: ProxyService
    api_cert: ServerCert


@pytest.fixture(scope="module")
def checks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Checks]:
    require_tool("openssl", "tinyproxy", "docker-registry")
    base = tmp_path_factory.mktemp("rollout-checks")
    ca = make_ca(base / "ca")
    good = issue_cert(ca, base / "registry", ["localhost", "127.0.0.1"])
    api_cert = issue_cert(make_ca(base / "k8s-ca", name="fake kubernetes CA"), base / "api", ["localhost", "127.0.0.1"])
    registry = start_registry(
        "127.0.0.1", cert=good.cert, key=good.key, storage=base / "storage", server_name="localhost", workdir=base
    )
    proxy = start_tinyproxy(workdir=base / "tinyproxy", connect_ports=())
    try:
        yield Checks(ca=ca, registry=registry, proxy=proxy, api_cert=api_cert)
    finally:
        proxy.stop()
        registry.stop()


@dataclass
class Rig:
    world: World
    fake: FakeKubernetes
    nodes: dict[str, list[str]]
    preflight: Any  # the real preflight handler module


@pytest.fixture
def rig(moto_server: MotoServer, checks: Checks, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    moto_eks_updates.reset()
    moto_lambda_handlers.reset()
    moto_server.execute_state_machines(True)
    os.environ["MOTO_PORT"] = str(moto_server.port)
    fake = FakeKubernetes(checks.api_cert).start()
    w = build_world(moto_server)
    w.cluster("prod")
    nodes: dict[str, list[str]] = {}
    for name in NODEGROUPS:
        w.template(f"prod-{name}")
        w.nodegroup("prod", name, template=f"prod-{name}")
        tags = [{"Key": "eks:cluster-name", "Value": "prod"}, {"Key": "eks:nodegroup-name", "Value": name}]
        reservation = w.clients["ec2"].run_instances(
            ImageId="ami-12c6146b",
            MinCount=2,
            MaxCount=2,
            TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
        )
        nodes[name] = sorted(i["PrivateDnsName"] for i in reservation["Instances"])
        for node in nodes[name]:
            fake.outcomes[node] = "pulled"
    w.put_proxy(f"http://127.0.0.1:{checks.proxy.port}")
    env = w.env(
        ROLLOUT_WAIT_SECONDS="0", REGISTRY_PROBE=f"localhost:{checks.registry.port}", VERIFY_TIMEOUT_SECONDS="20"
    )
    step = load_handler("rollout_step", env)
    preflight = load_handler(
        "preflight", {"PREFLIGHT_CA_BUNDLE": str(checks.ca.cert), "PREFLIGHT_IO_TIMEOUT_SECONDS": "2"}
    )
    verify = load_handler("verify", {"VERIFY_POLL_SECONDS": "0.05"})
    real_access = verify.cluster_access
    monkeypatch.setattr(verify, "cluster_access", lambda eks, name: real_access(PointedAtFake(eks, fake), name))
    w.create_state_machine(
        {
            "RolloutStepFunctionArn": moto_lambda_handlers.register("eks-proxy-rollout-step", step.lambda_handler),
            "PreflightFunctionArn": moto_lambda_handlers.register("eks-proxy-preflight", preflight.lambda_handler),
            "VerifyFunctionArn": moto_lambda_handlers.register("eks-proxy-verify", verify.lambda_handler),
        }
    )
    try:
        yield Rig(world=w, fake=fake, nodes=nodes, preflight=preflight)
    finally:
        fake.stop()
        moto_server.execute_state_machines(False)


def test_real_preflight_and_verification_roll_everything(rig: Rig) -> None:
    execution = finished(rig.world, dispatch(rig.world)["execution_arn"])
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    for name in NODEGROUPS:
        assert rig.world.nodegroup_version("prod", name) == "2"
    assert rig.world.alarms() == []


def test_real_verification_failure_rolls_back_and_alarms(rig: Rig) -> None:
    rig.fake.outcomes[rig.nodes["ng-b"][1]] = "err_image_pull"
    execution = finished(rig.world, dispatch(rig.world)["execution_arn"])
    assert execution["status"] == "FAILED"
    assert "prod/ng-b failed: verification" in execution["cause"]
    assert update_calls("ng-b") == ["2", "1"]
    assert rig.world.nodegroup_version("prod", "ng-a") == "2"
    [alarm] = rig.world.alarms()
    assert "prod/ng-b" in alarm["message"]["summary"]


def test_real_preflight_failure_touches_nothing(rig: Rig) -> None:
    """A proxy that never comes back: probed six times over about six minutes (fast-forwarded), then one alarm."""
    rig.world.put_proxy(f"http://127.0.0.1:{free_port()}")
    with fast_forward() as clock:
        execution = finished(rig.world, dispatch(rig.world)["execution_arn"])
    assert (execution["status"], execution["error"]) == ("FAILED", "PreflightFailed")
    assert "proxy_unreachable" in execution["cause"]
    assert clock.retries == [15, 30, 60, 120, 120]  # PreflightNotReady's backoff: minutes, not one try
    assert len(_preflight_calls()) == 6
    assert moto_eks_updates.CALLS == []
    assert all(len(rig.world.versions(f"prod-{name}")) == 1 for name in NODEGROUPS)
    [alarm] = rig.world.alarms()
    assert alarm["message"]["stage"] == "preflight"


def _preflight_calls() -> list[dict[str, Any]]:
    return [event for name, event in moto_lambda_handlers.INVOCATIONS if name == "eks-proxy-preflight"]


def test_a_proxy_that_first_refuses_then_answers_is_ridden_out(rig: Rig, checks: Checks, tmp_path: Path) -> None:
    """The proxy is restarting when the change lands: nothing listens at first (connection refused), then it
    answers. The preflight's retries carry the rollout through; no alarm."""
    port = free_port()
    rig.world.put_proxy(f"http://127.0.0.1:{port}")
    started: list[ProxyService] = []

    def preflight_while_the_proxy_comes_up(event: dict[str, Any], context: Any) -> Any:
        try:
            return rig.preflight.lambda_handler(event, context)
        finally:
            if len(_preflight_calls()) == 2 and not started:  # two refusals, then the proxy is up
                started.append(start_tinyproxy(port=port, workdir=tmp_path / "late-proxy", connect_ports=()))

    moto_lambda_handlers.register("eks-proxy-preflight", preflight_while_the_proxy_comes_up)
    try:
        with fast_forward() as clock:
            execution = finished(rig.world, dispatch(rig.world)["execution_arn"])
    finally:
        for proxy in started:
            proxy.stop()
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    assert clock.retries == [15, 30]
    assert [e["attempt"] for e in _preflight_calls()] == [0, 1, 2]
    for name in NODEGROUPS:
        assert rig.world.nodegroup_version("prod", name) == "2"
    assert rig.world.alarms() == []
