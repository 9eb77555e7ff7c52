"""Engine figures (issue 3): handler cold import vs `import boto3`, AWS calls per node group, reconcile time.

- Cold import: each functions/<name>/app.py imported in a fresh interpreter (median of 5 runs), interpreter start-up
  excluded, against `import boto3` alone measured the same way. Goal: ratio <= 1.5.
- AWS calls: counted with a botocore `before-call` hook on the engine's own clients, against a moto server over HTTP.
  "Up to date" and "out of date" are per node group in the dispatch plan (per-cluster reads listed apart);
  "refresh step" is one RolloutStep `refresh` invocation, in a cold container (reads its cluster's context) and
  in a warm one (context reused). moto's DescribeCluster has no vpcId, so DescribeSubnets is one call AWS skips.
- Reconcile time: `plan_scope` over 150 node groups in 3 clusters (110 + 25 + 15), moto server on loopback,
  client and server sharing this process (so the figure is pessimistic).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RUNS = 5
ENV = {
    "CLUSTER_NAMES": "prod",
    "ALARM_TOPIC_ARN": "arn:aws:sns:eu-west-1:123456789012:eks-proxy",
    "STATE_MACHINE_ARN": "arn:aws:states:eu-west-1:123456789012:stateMachine:eks-proxy-rollout",
    "POWERTOOLS_SERVICE_NAME": "eks-proxy",
    "AWS_DEFAULT_REGION": "eu-west-1",
    "AWS_REGION": "eu-west-1",
}
_TIMER = """
import importlib.util, sys, time
start = time.perf_counter()
target = sys.argv[1]
if target.endswith(".py"):
    spec = importlib.util.spec_from_file_location("app", target)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
else:
    __import__(target)
if len(sys.argv) > 2:
    import boto3  # what the first invocation adds when the handler defers it
print(time.perf_counter() - start)
"""


def _cold_import(target: str, with_boto3: bool = False) -> float:
    env = {**os.environ, **ENV}
    samples = []
    extra = ["boto3"] if with_boto3 else []
    for _ in range(RUNS):
        command = [sys.executable, "-c", _TIMER, target, *extra]
        out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        samples.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(samples)


def import_figures() -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    boto3 = _cold_import("boto3")
    rows.append(("engine: cold import boto3 alone (median of 5)", f"{boto3 * 1000:.0f} ms"))
    for app in sorted((REPO / "functions").glob("*/app.py")):
        seconds = _cold_import(str(app))
        with_boto3 = _cold_import(str(app), with_boto3=True)
        rows.append(
            (
                f"engine: cold import functions/{app.parent.name}/app.py (goal <= 1.5x boto3)",
                f"{seconds * 1000:.0f} ms = {seconds / boto3:.2f}x; with boto3 loaded too "
                f"{with_boto3 * 1000:.0f} ms = {with_boto3 / boto3:.2f}x",
            )
        )
    return rows


def _counting(clients: Any) -> Counter[str]:
    calls: Counter[str] = Counter()
    for service in ("eks", "ec2", "ssm"):
        client = getattr(clients, service)
        client.meta.events.register("before-call.*.*", lambda model, **_: calls.update([model.name]))
    return calls


def aws_figures() -> list[tuple[str, str]]:
    sys.path.insert(0, str(REPO))
    os.environ.update(
        {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "eu-west-1"}
    )
    from eks_proxy.aws.clients import AwsClients
    from eks_proxy.config import Settings
    from eks_proxy.engine.plan import plan_scope
    from eks_proxy.engine.scope import Scope
    from eks_proxy.engine.steps import StepContext, run_step
    from eks_proxy.proxy.value import parse_proxy_value

    from testkit import moto_eks_updates
    from testkit.engine_world import build_world
    from testkit.moto_server import MotoServer

    moto_eks_updates.install()
    server = MotoServer()
    server.start()
    os.environ["AWS_ENDPOINT_URL"] = server.url
    rows: list[tuple[str, str]] = []
    try:
        world = build_world(server)
        world.cluster("prod")
        version = world.put_proxy("http://10.0.0.10:3128")
        config = parse_proxy_value("http://10.0.0.10:3128")
        count = 20
        for i in range(count):
            world.template(f"lt-{i}")
            world.nodegroup("prod", f"ng-{i}", template=f"lt-{i}")
        settings = Settings.from_env(world.env())
        all_prod = Scope(kind="all", clusters=("prod",))
        parameter = {"name": "/eks-proxy/config", "version": version}

        clients = AwsClients()
        calls = _counting(clients)
        plan_scope(clients, settings, all_prod, config)
        per_cluster = sum(calls[op] for op in ("ListNodegroups", "DescribeCluster", "DescribeSubnets", "DescribeVpcs"))
        out_of_date = (sum(calls.values()) - per_cluster) / count
        rows.append(("engine: AWS calls per out-of-date node group (plan)", f"{out_of_date:.1f}"))

        step_clients = AwsClients()
        step_calls = _counting(step_clients)
        for i in range(10):  # a cold container per node group (a fresh context cache): the context is read each time
            step = StepContext(step_clients, settings)
            run_step({"action": "refresh", "cluster": "prod", "nodegroup": f"ng-{i}", "parameter": parameter}, step)
        cold = dict(step_calls)
        step_calls.clear()
        step = StepContext(step_clients, settings)
        for i in range(10, 20):  # one warm container: the context is reused (ContextCache, 5 minutes)
            run_step({"action": "refresh", "cluster": "prod", "nodegroup": f"ng-{i}", "parameter": parameter}, step)
        warm = sum(step_calls.values()) / 10
        detail = ", ".join(f"{op} {n / 10:g}" for op, n in sorted(cold.items()))
        rows.append(
            (
                "engine: AWS calls per refreshed node group (refresh step)",
                f"{sum(cold.values()) / 10:.1f} in a cold container ({detail}); {warm:.1f} in a warm one",
            )
        )

        for i in range(count):  # move every node group to its new version: now all up to date
            world.clients["eks"].delete_nodegroup(clusterName="prod", nodegroupName=f"ng-{i}")
            world.nodegroup("prod", f"ng-{i}", template=f"lt-{i}", version=2)
        clients = AwsClients()
        calls = _counting(clients)
        decisions = plan_scope(clients, settings, all_prod, config)
        assert all(d.outcome.value == "up_to_date" for d in decisions), [d.to_log() for d in decisions]
        up_to_date = (sum(calls.values()) - per_cluster) / count
        rows.append(("engine: AWS calls per up-to-date node group (goal <= 3)", f"{up_to_date:.1f}"))
        rows.append(
            ("engine: AWS calls per cluster and plan (ListNodegroups/100, DescribeCluster, VPC)", f"{per_cluster}")
        )

        server.reset()
        world = build_world(server)
        world.put_proxy("http://10.0.0.10:3128")
        world.template("shared")
        layout = {"prod": 110, "staging": 25, "batch": 15}
        for cluster, count in layout.items():
            world.cluster(cluster)
            for i in range(count):
                world.nodegroup(cluster, f"ng-{i:03d}", template="shared")
        settings = Settings.from_env(world.env(CLUSTER_NAMES="prod,staging,batch"))
        scope = Scope(kind="all", clusters=tuple(layout))
        clients = AwsClients()
        start = time.perf_counter()
        decisions = plan_scope(clients, settings, scope, config)
        elapsed = time.perf_counter() - start
        assert len(decisions) == 150
        rows.append(("engine: reconcile 150 node groups / 3 clusters (moto server)", f"{elapsed:.2f} s"))
    finally:
        server.stop()
    return rows


def figures() -> list[tuple[str, str]]:
    return import_figures() + aws_figures()


if __name__ == "__main__":
    for name, value in figures():
        print(f"{name:<80}  {value}")
