"""Fleet reads (issue 11): `plan_scope` (what dispatch, `eks-proxy plan` and `eks-proxy fleet` run) over 150 node
groups in 3 clusters (110 + 25 + 15) on the moto server, with a per-call latency injected into every AWS call (a
botocore `before-send` hook sleeping 40 ms, about what an EKS/EC2 call takes from a Lambda function in the region),
serially (1 worker) and with the default 8 workers, in one run; the figure is the ratio.

The clients are the engine's own (`AwsClients`: standard retry mode); the calls are counted with a `before-call`
hook. Every node group is out of date (the shared launch template has no proxy yet), the costlier case: 3 calls each.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
LATENCY_SECONDS = 0.040
LAYOUT = {"prod": 110, "staging": 25, "batch": 15}


def _instrumented(clients: Any, calls: Counter[str]) -> None:
    def slow(**_: Any) -> None:
        time.sleep(LATENCY_SECONDS)  # runs in the calling thread, just before the HTTP request

    for service in ("eks", "ec2"):
        client = getattr(clients, service)
        client.meta.events.register("before-call.*.*", lambda model, **_: calls.update([model.name]))
        client.meta.events.register("before-send.*.*", slow)


def figures() -> list[tuple[str, str]]:
    sys.path.insert(0, str(REPO))
    os.environ.update(
        {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "eu-west-1"}
    )
    from eks_proxy.aws.clients import AwsClients
    from eks_proxy.config import Settings
    from eks_proxy.engine.plan import READ_WORKERS, ContextCache, plan_scope
    from eks_proxy.engine.scope import Scope
    from eks_proxy.proxy.value import parse_proxy_value

    from testkit.engine_world import build_world
    from testkit.moto_server import MotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the emulator's access log
    server = MotoServer()
    server.start()
    os.environ["AWS_ENDPOINT_URL"] = server.url
    try:
        world = build_world(server)
        world.put_proxy("http://10.0.0.10:3128")
        world.template("shared")
        for cluster, count in LAYOUT.items():
            world.cluster(cluster)
            for i in range(count):
                world.nodegroup(cluster, f"ng-{i:03d}", template="shared")
        settings = Settings.from_env(world.env(CLUSTER_NAMES=",".join(LAYOUT)))
        scope = Scope(kind="all", clusters=tuple(LAYOUT))
        config = parse_proxy_value("http://10.0.0.10:3128")
        total = sum(LAYOUT.values())

        elapsed: dict[int, float] = {}
        counted: dict[int, Counter[str]] = {}
        for workers in (1, READ_WORKERS):
            clients = AwsClients()
            calls: Counter[str] = Counter()
            _instrumented(clients, calls)
            start = time.perf_counter()
            decisions = plan_scope(clients, settings, scope, config, ContextCache(), workers=workers)
            elapsed[workers] = time.perf_counter() - start
            counted[workers] = calls
            assert len(decisions) == total and all(d.needs_rollout for d in decisions)
        assert counted[1] == counted[READ_WORKERS], (counted[1], counted[READ_WORKERS])  # the same reads
        calls_total = sum(counted[1].values())
        per_cluster = sum(
            counted[1][op] for op in ("ListNodegroups", "DescribeCluster", "DescribeSubnets", "DescribeVpcs")
        )
        what = f"{total} node groups / 3 clusters, {LATENCY_SECONDS * 1000:.0f} ms injected per AWS call"
        return [
            (
                f"fleet: plan {what}: AWS calls",
                f"{calls_total} ({(calls_total - per_cluster) / total:.1f} per node group + {per_cluster} per-cluster)",
            ),
            (f"fleet: plan {what}: serial (1 worker)", f"{elapsed[1]:.1f} s"),
            (f"fleet: plan {what}: {READ_WORKERS} workers", f"{elapsed[READ_WORKERS]:.1f} s"),
            (
                f"fleet: plan {what}: serial / {READ_WORKERS} workers",
                f"{elapsed[1] / elapsed[READ_WORKERS]:.1f}x faster",
            ),
        ]
    finally:
        server.stop()


if __name__ == "__main__":
    for name, value in figures():
        print(f"{name:<100}  {value}")
