"""The plan for a scope: `reconcile_nodegroup` fed with what AWS says now (read-only).

`plan_scope` is what dispatch (and `eks-proxy plan`) runs; `decide` is the per node group read-and-decide that
`engine/refresh.py` reuses before its one write. `ContextCache` holds each cluster's NO_PROXY facts.

Cost per node group (figures in bench/bench_engine.py): up to date = DescribeNodegroup + one
DescribeLaunchTemplateVersions; out of date adds one paginated DescribeLaunchTemplateVersions (reuse candidates).
Per cluster, once: ListNodegroups (100 per page), DescribeCluster, DescribeSubnets/DescribeVpcs.

Reads run concurrently, `READ_WORKERS` at a time (boto3 clients are thread-safe; the clients' standard retry mode
backs off on throttling): the clusters' listings first, then the node groups. 150 node groups with 40 ms per call:
bench/bench_fleet.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING

from eks_proxy.aws.clients import AwsClients
from eks_proxy.aws.ec2 import get_template_version, later_versions, vpc_cidrs
from eks_proxy.aws.eks import NodegroupNotFound, describe_cluster, describe_nodegroup, list_nodegroups
from eks_proxy.config import Settings
from eks_proxy.engine.reconcile import reconcile_nodegroup
from eks_proxy.model import Decision, NodegroupState, Outcome
from eks_proxy.proxy.no_proxy import NodeContext
from eks_proxy.proxy.value import ProxyConfig

if TYPE_CHECKING:
    from eks_proxy.engine.scope import Scope

# DescribeNodegroup statuses while an update of the node group runs (its launch template version is about to move).
UPDATING_STATUSES = frozenset({"UPDATING"})


# Concurrent reads of plan_scope: well within EKS's and EC2's request rates, and under botocore's default
# connection pool of 10 per client.
READ_WORKERS = 8


@dataclass
class ContextCache:
    """NodeContext per cluster: DescribeCluster + VPC CIDRs are read once per cluster, then reused for
    `max_age_seconds` (a warm rollout step container reuses them across node groups of one rollout)."""

    max_age_seconds: float = 300.0
    contexts: dict[str, NodeContext] = field(default_factory=dict)
    _read_at: dict[str, float] = field(default_factory=dict)
    _locks: dict[str, threading.Lock] = field(default_factory=dict, repr=False)
    _guard: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def get(self, clients: AwsClients, cluster: str) -> NodeContext:
        """The cluster's context; concurrent callers for one cluster wait for one read (thread-safe)."""
        with self._guard:
            lock = self._locks.setdefault(cluster, threading.Lock())
        with lock:
            return self._get(clients, cluster)

    def _get(self, clients: AwsClients, cluster: str) -> NodeContext:
        now = time.monotonic()
        if cluster not in self.contexts or now - self._read_at.get(cluster, now) > self.max_age_seconds:
            info = describe_cluster(clients.eks, cluster)
            self.contexts[cluster] = NodeContext(
                region=clients.region,
                service_cidr=info.service_cidr,
                cluster_endpoint=info.endpoint,
                vpc_cidrs=vpc_cidrs(clients.ec2, info.vpc_id, info.subnet_ids),
            )
            self._read_at[cluster] = now
        return self.contexts[cluster]


def decide(
    clients: AwsClients, settings: Settings, state: NodegroupState, config: ProxyConfig, context: NodeContext
) -> Decision:
    """Two-phase decision: the reuse candidates are read only when the current version is out of date."""
    lt = state.launch_template
    current = get_template_version(clients.ec2, lt) if lt else None
    decide_now = partial(
        reconcile_nodegroup,
        state,
        current,
        config,
        context,
        opt_out_tag_key=settings.opt_out_tag_key,
        os_hint_tag_key=settings.os_hint_tag_key,
    )
    decision = decide_now()
    if decision.outcome is Outcome.CREATE_VERSION and lt and current:
        candidates = later_versions(clients.ec2, lt, current.number)
        if candidates:
            decision = decide_now(candidates=candidates)
    return decision


def _nodegroups(clients: AwsClients, scope: Scope, pool: ThreadPoolExecutor) -> Iterator[tuple[str, str]]:
    if scope.kind == "nodegroup" and scope.nodegroup:
        yield from ((cluster, scope.nodegroup) for cluster in scope.clusters)
        return
    listings = pool.map(lambda cluster: (cluster, list(list_nodegroups(clients.eks, cluster))), scope.clusters)
    for cluster, nodegroups in listings:
        yield from ((cluster, nodegroup) for nodegroup in nodegroups)


def _plan_one(
    clients: AwsClients,
    settings: Settings,
    scope: Scope,
    config: ProxyConfig,
    cache: ContextCache,
    cluster: str,
    nodegroup: str,
) -> Decision | None:
    try:
        state = describe_nodegroup(clients.eks, cluster, nodegroup)
    except NodegroupNotFound as gone:
        return Decision(cluster, nodegroup, Outcome.OUT_OF_SCOPE, reason=str(gone))
    lt = state.launch_template
    if scope.kind == "launch_template" and not scope.uses_template(lt.id if lt else None, lt.name if lt else None):
        return None
    return _landing(state, decide(clients, settings, state, config, cache.get(clients, cluster)))


def _landing(state: NodegroupState, decision: Decision) -> Decision:
    """A node group being updated (ours, a teammate's, a revert) still reports the version it is leaving: "up to
    date" says nothing about where it is going. It needs a rollout, whose refresh waits for that update to land and
    decides from the version it landed on."""
    if state.status in UPDATING_STATUSES and decision.outcome is Outcome.UP_TO_DATE:
        return replace(
            decision,
            outcome=Outcome.CREATE_VERSION,
            reason=f"node group is {state.status}: decided again once that update lands",
        )
    return decision


def plan_scope(
    clients: AwsClients,
    settings: Settings,
    scope: Scope,
    config: ProxyConfig,
    cache: ContextCache | None = None,
    *,
    workers: int = READ_WORKERS,
) -> list[Decision]:
    """Every node group of `scope` with its decision (read-only), sorted by cluster and node group.

    For a launch template scope, node groups using another template are left out of the result. The reads run
    `workers` at a time (1: serially); the decisions do not depend on it.
    """
    cache = cache or ContextCache()
    clients.eks, clients.ec2  # noqa: B018 - create the clients before the threads share them
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="plan") as pool:
        pairs = list(_nodegroups(clients, scope, pool))
        found = pool.map(lambda pair: _plan_one(clients, settings, scope, config, cache, *pair), pairs)
        decisions = [decision for decision in found if decision is not None]
    return sorted(decisions, key=lambda d: (d.cluster, d.nodegroup))
