"""A rollout as the tests drive it: the real dispatch handler starts the execution, moto's engine runs it."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from testkit import moto_eks_updates, moto_lambda_handlers
from testkit.engine_world import FakeContext, World, build_world
from testkit.moto_server import MotoServer
from testkit.repo import load_event, load_handler

NODEGROUPS = ("ng-a", "ng-b", "ng-c")  # sorted: ng-a is the canary


class Stubs:
    """Scripted Preflight and Verify tasks (inputs recorded, per node group outcomes)."""

    def __init__(self) -> None:
        self.preflight_result: dict[str, Any] = {"ok": True, "result": "ok", "detail": "stub", "latency_ms": {}}
        self.verify_fails: set[str] = set()
        self.preflight_inputs: list[dict[str, Any]] = []
        self.during_preflight: list[Any] = []  # callables run while "probing" (to change the world mid-run)
        self.verify_inputs: list[dict[str, Any]] = []
        self.during_verify: dict[str, list[Any]] = {}  # node group -> callables run while "verifying" it

    def preflight(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.preflight_inputs.append(event)
        for action in self.during_preflight:
            action()
        return self.preflight_result

    def verify(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.verify_inputs.append(event)
        for action in self.during_verify.get(event["nodegroup"], []):
            action()
        ok = event["nodegroup"] not in self.verify_fails
        result = "pulled" if ok else "failed"
        message = "" if ok else "ErrImagePull: proxyconnect tcp: dial tcp 10.0.0.10:3128: i/o timeout"
        return {"ok": ok, "nodes": [{"node": "ip-10-0-1-20", "result": result, "message": message}], "summary": result}


@contextmanager
def rollout_world(moto_server: MotoServer, stubs: Stubs) -> Iterator[World]:
    """Cluster "prod" with NODEGROUPS (each on its own launch template), the proxy parameter, and the rollout state
    machine executed by moto's engine: the real rollout_step handler, `stubs` for Preflight and Verify."""
    moto_eks_updates.reset()
    moto_lambda_handlers.reset()
    moto_server.execute_state_machines(True)
    os.environ["MOTO_PORT"] = str(moto_server.port)  # where moto's engine sends its Lambda Invoke calls
    w = build_world(moto_server)
    w.cluster("prod")
    for name in NODEGROUPS:
        w.template(f"prod-{name}")
        w.nodegroup("prod", name, template=f"prod-{name}")
    w.put_proxy("http://10.0.0.10:3128")
    step = load_handler("rollout_step", w.env(ROLLOUT_WAIT_SECONDS="0"))
    w.create_state_machine(
        {
            "RolloutStepFunctionArn": moto_lambda_handlers.register("eks-proxy-rollout-step", step.lambda_handler),
            "PreflightFunctionArn": moto_lambda_handlers.register("eks-proxy-preflight", stubs.preflight),
            "VerifyFunctionArn": moto_lambda_handlers.register("eks-proxy-verify", stubs.verify),
        }
    )
    try:
        yield w
    finally:
        moto_server.execute_state_machines(False)


def dispatch(world: World, event: str = "ssm-parameter-update", **env: str) -> dict[str, Any]:
    """The dispatch handler, loaded with the world's function environment (plus `env`), invoked with a sample."""
    module = load_handler("dispatch", world.env(**env))
    return module.lambda_handler(load_event(event), FakeContext())  # type: ignore[no-any-return]


def finished(world: World, arn: str, timeout: float = 120) -> dict[str, Any]:
    """DescribeExecution once the execution has left RUNNING (fails after `timeout` seconds)."""
    sfn = world.clients["stepfunctions"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        execution = sfn.describe_execution(executionArn=arn)
        if execution["status"] != "RUNNING":
            return execution  # type: ignore[no-any-return]
        time.sleep(0.2)
    raise AssertionError(f"execution still running after {timeout}s")


def rolled_out(world: World) -> str:
    """One rollout of the current value, dispatched and run to its end (succeeded or failed); its execution ARN."""
    started = dispatch(world)
    execution = finished(world, started["execution_arn"])
    assert execution["status"] in {"SUCCEEDED", "FAILED"}
    return str(started["execution_arn"])


def update_calls(nodegroup: str) -> list[str]:
    """The launch template versions UpdateNodegroupVersion was asked for, for one node group, in order."""
    return [c["launchTemplate"]["version"] for c in moto_eks_updates.CALLS if c["nodegroup"] == nodegroup]


def history(world: World, arn: str) -> list[dict[str, Any]]:
    """The execution's history events (moto returns all of a test's in one page)."""
    sfn = world.clients["stepfunctions"]
    return sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]  # type: ignore[no-any-return]


def steps(action: str) -> list[dict[str, Any]]:
    """The rollout step's invocations for one action, in order."""
    return [
        e for name, e in moto_lambda_handlers.INVOCATIONS if name == "eks-proxy-rollout-step" and e["action"] == action
    ]
