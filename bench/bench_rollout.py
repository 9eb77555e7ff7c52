"""Rollout figures (issue 9): state transitions per node group rolled, and time beyond EKS's own update.

- State transitions: what a Standard workflow bills and what its 25,000-event history holds. The per-node-group
  processor (`statemachine/generate.py: nodegroup_processor()`, the Wave map's child) runs alone as a state machine
  on moto's engine with the real rollout step handler, for one node group whose update takes 20 minutes (the number
  of DescribeUpdate polls the 60/90/120 s schedule makes for it); its history is counted (`*StateEntered` events =
  transitions; all events). The parent's share is the whole rollout of 10 node groups, counted the same way, divided
  by 10 (moto does not expose the child executions' histories, so they are counted apart).
- Time beyond EKS's update: how late the rollout notices that an update landed, from the poll schedule alone, for
  update durations from 5 to 60 minutes (every second): mean and worst case, against the schedule before
  (30 s x1.5 up to 300 s).
"""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
UPDATE_SECONDS = 20 * 60


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("asl_generate", REPO / "statemachine" / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _poll_times(wait: Any, limit: float) -> list[float]:
    """Seconds after the update started at which it is polled (the first wait is counted from the start)."""
    times, t, n = [], 0.0, 0
    while t < limit + 600:
        t += wait(n)
        times.append(t)
        n += 1
    return times


def _lateness(wait: Any) -> tuple[float, float, int]:
    """(mean, max) seconds between an update landing and the poll that sees it; polls for a 20-minute update."""
    times = _poll_times(wait, 3600)
    late = []
    for duration in range(300, 3601):
        first = next(t for t in times if t >= duration)
        late.append(first - duration)
    polls = sum(1 for t in times if t < UPDATE_SECONDS) + 1
    return statistics.mean(late), max(late), polls


def schedule_figures() -> list[tuple[str, str]]:
    sys.path.insert(0, str(REPO / "layers" / "eks_proxy"))
    from eks_proxy.engine.lease import poll_wait

    now_mean, now_max, now_polls = _lateness(lambda n: poll_wait(60, n))
    old_mean, old_max, old_polls = _lateness(lambda n: min(300, round(30 * 1.5**n)))
    return [
        (
            "rollout: time beyond EKS's update per node group (poll 60/90/120 s; updates of 5-60 min)",
            f"mean {now_mean:.0f} s, worst {now_max:.0f} s (before: 30 s x1.5 to 300 s, mean {old_mean:.0f} s, "
            f"worst {old_max:.0f} s); {now_polls} polls for a 20-minute update (before: {old_polls})",
        )
    ]


def _wait(sfn: Any, arn: str) -> dict[str, Any]:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        execution = sfn.describe_execution(executionArn=arn)
        if execution["status"] != "RUNNING":
            return execution  # type: ignore[no-any-return]
        time.sleep(0.2)
    raise RuntimeError("execution still running")


def _history(sfn: Any, arn: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for page in sfn.get_paginator("get_execution_history").paginate(executionArn=arn):
        events.extend(page["events"])
    return events


def transition_figures() -> list[tuple[str, str]]:
    sys.path[:0] = [str(REPO), str(REPO / "layers" / "eks_proxy")]
    os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})
    os.environ.update({"AWS_DEFAULT_REGION": "eu-west-1", "AWS_REGION": "eu-west-1"})
    os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "EksProxyBench")
    from testkit import moto_eks_updates, moto_lambda_handlers
    from testkit.engine_world import FakeContext, build_world
    from testkit.moto_server import MotoServer
    from testkit.repo import load_event, load_handler

    moto_eks_updates.install()
    moto_lambda_handlers.install()
    _, _, polls = _lateness(lambda n: _poll(n))
    server = MotoServer()
    server.start()
    os.environ["AWS_ENDPOINT_URL"] = server.url
    os.environ["MOTO_PORT"] = str(server.port)
    server.execute_state_machines(True)
    generate = _generator()
    rows: list[tuple[str, str]] = []
    try:
        world = build_world(server)
        world.cluster("prod")
        count = 10
        for i in range(count):
            world.template(f"lt-{i}")
            world.nodegroup("prod", f"ng-{i}", template=f"lt-{i}")
            moto_eks_updates.script("prod", f"ng-{i}", polls=polls - 1)
        world.put_proxy("http://10.0.0.10:3128")
        step = load_handler("rollout_step", world.env(ROLLOUT_WAIT_SECONDS="0"))
        arns = {
            "RolloutStepFunctionArn": moto_lambda_handlers.register("eks-proxy-rollout-step", step.lambda_handler),
            "PreflightFunctionArn": moto_lambda_handlers.register(
                "eks-proxy-preflight",
                lambda event, context: {"ok": True, "result": "ok", "detail": "", "latency_ms": {}},
            ),
            "VerifyFunctionArn": moto_lambda_handlers.register(
                "eks-proxy-verify", lambda event, context: {"ok": True, "nodes": [], "summary": "pulled"}
            ),
            "AlarmTopicArn": world.topic_arn,
        }
        sfn = world.clients["stepfunctions"]

        # One node group's child execution, alone.
        child = {"Comment": "the Wave map's per-node-group processor", **generate.nodegroup_processor()}
        definition = json.dumps(child)
        for key, value in {"LeaseTableName": world.lease_table, **arns}.items():
            definition = definition.replace("${" + key + "}", value)
        machine = sfn.create_state_machine(
            name="child", definition=definition, roleArn="arn:aws:iam::123456789012:role/x", type="STANDARD"
        )["stateMachineArn"]
        world.clients["dynamodb"].put_item(
            TableName=world.lease_table, Item={"cluster": {"S": "prod"}, "owner": {"S": "bench"}}
        )
        item = {
            "cluster": "prod",
            "nodegroup": "ng-0",
            "wave": "canary",
            "change_id": "bench",
            "parameter": {"name": "/eks-proxy/config", "version": 1},
            "rollback_on_failure": True,
            "wait_seconds": 0,
            "verify": {"image": "busybox", "namespace": "eks-proxy-verify", "timeout_seconds": 240},
            "lease": {"cluster": "prod", "owner": "bench"},
            "waits": 0,
        }

        def child_events(nodegroup: str, in_progress: int) -> list[dict[str, Any]]:
            moto_eks_updates.script("prod", nodegroup, polls=in_progress)
            arn = sfn.start_execution(
                stateMachineArn=machine, name=f"child-{nodegroup}", input=json.dumps(item | {"nodegroup": nodegroup})
            )
            done = _wait(sfn, arn["executionArn"])
            assert done["status"] == "SUCCEEDED" and json.loads(done["output"])["outcome"] == "rolled", done
            return _history(sfn, arn["executionArn"])

        events = child_events("ng-0", polls - 1)
        child_transitions = sum(1 for e in events if e["type"].endswith("StateEntered"))
        per_poll = (len(child_events("ng-1", polls - 1 + 10)) - len(events)) / 10
        world.clients["dynamodb"].delete_item(TableName=world.lease_table, Key={"cluster": {"S": "prod"}})

        # The whole rollout of ten node groups (a newer value): the parent's own history.
        moto_eks_updates.reset()
        world.put_proxy("http://10.0.0.20:3128")
        world.create_state_machine(arns, name="eks-proxy-rollout")
        dispatch = load_handler("dispatch", world.env(ROLLOUT_WAIT_SECONDS="0"))
        started = dispatch.lambda_handler(load_event("ssm-parameter-update"), FakeContext())
        done = _wait(sfn, started["execution_arn"])
        assert done["status"] == "SUCCEEDED", done
        rolled = json.loads(done["output"])["counts"].get("rolled", 0)
        assert rolled == count, done["output"]
        parent = _history(sfn, started["execution_arn"])
        parent_transitions = sum(1 for e in parent if e["type"].endswith("StateEntered"))
        per_ng = child_transitions + parent_transitions / count
        rows.append(
            (
                "rollout: state transitions per node group rolled (20-minute update)",
                f"{per_ng:.1f} ({child_transitions} in its child execution, {len(events)} history events of "
                f"25,000; + {parent_transitions} in the parent for {count} node groups)",
            )
        )
        rows.append(
            (
                "rollout: child history events per extra poll / polls until 25,000",
                f"{per_poll:g} / ~{(25000 - len(events)) / per_poll:.0f} (at 120 s: "
                f"~{(25000 - len(events)) / per_poll * 120 / 3600:.0f} h of update; the execution times out at 48 h)",
            )
        )
    finally:
        server.execute_state_machines(False)
        server.stop()
    return rows


def _poll(n: int) -> int:
    from eks_proxy.engine.lease import poll_wait

    return poll_wait(60, n)


def figures() -> list[tuple[str, str]]:
    return schedule_figures() + transition_figures()


if __name__ == "__main__":
    for name, value in figures():
        print(f"{name:<80}  {value}")
