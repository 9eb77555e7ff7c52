"""Every CloudWatch metric eks-proxy emits, in one place: its name, unit, dimensions, who emits it and what it counts.

The functions emit through `emit` (EMF via Powertools, namespace `POWERTOOLS_METRICS_NAMESPACE`, default `EksProxy`),
which refuses a name or a dimension set that is not registered here. The dashboard and the alarms in template.yaml
name only metrics registered here, and tests/integration/test_dashboard.py holds them against this registry and
against the EMF lines the functions actually print. To add a metric: add a constant and a `MetricSpec`, emit it
with `emit` (or `StepContext.metric` in the rollout step), then show it on the dashboard.

Powertools adds the `service` dimension to every metric, so a metric registered with dimensions `("cluster",)` is
stored with the dimension set `cluster, service`; the dashboard's per-cluster widgets read it with
`SELECT SUM(<name>) FROM SCHEMA(EksProxy, cluster, service) GROUP BY cluster`.

Pure: no Powertools import at module level (the verify and preflight handlers import this on their cold start).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

NAMESPACE = "EksProxy"  # template.yaml POWERTOOLS_METRICS_NAMESPACE; the alarms and the dashboard read it
SERVICE_DIMENSION = "service"  # added by Powertools to every metric (POWERTOOLS_SERVICE_NAME)
CLUSTER = "cluster"


@dataclass(frozen=True)
class MetricSpec:
    """One metric: its unit (a CloudWatch unit name), extra dimensions (besides `service`), emitter and meaning."""

    name: str
    unit: str
    dimensions: tuple[str, ...]
    emitted_by: str
    meaning: str

    @property
    def dimension_set(self) -> tuple[str, ...]:
        """The dimension set CloudWatch stores it with (sorted, `service` included), as Powertools writes it."""
        return tuple(sorted({*self.dimensions, SERVICE_DIMENSION}))


# dispatch
ROLLOUT_STARTED = "RolloutStarted"
PARAMETER_DELETED = "ParameterDeleted"
INVALID_VALUE = "InvalidProxyValue"
# rollout step (the state machine's tasks)
NODEGROUPS_REFRESHED = "NodegroupsRefreshed"
NODEGROUPS_ROLLED = "NodegroupsRolled"
NODEGROUPS_FAILED = "NodegroupsFailed"
NODEGROUPS_SKIPPED = "NodegroupsSkipped"
NODEGROUPS_ROLLED_BACK = "NodegroupsRolledBack"
ROLLOUT_FAILED = "RolloutFailed"
# outcomes of the rollout safety work (registered here so every emitter shares the names)
NODEGROUPS_GONE = "NodegroupsGone"
NODEGROUPS_MOVED_ON = "NodegroupsMovedOn"
NODEGROUPS_SUPERSEDED = "NodegroupsSuperseded"
NODEGROUPS_NOT_STARTED = "NodegroupsNotStarted"
ROLLBACK_FAILED = "RollbackFailed"
DRIFT_PERSISTING = "DriftPersisting"
# preflight
PREFLIGHT_FAILED = "PreflightFailed"
PREFLIGHT_LATENCY = "PreflightLatency"
PREFLIGHT_RETRIED = "PreflightRetried"
# verify
VERIFY_NODES_PASSED = "VerifyNodesPassed"
VERIFY_NODES_FAILED = "VerifyNodesFailed"
VERIFY_ERRORS = "VerifyErrors"

_COUNT = "Count"
_PER_CLUSTER = (CLUSTER,)

REGISTRY: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec(ROLLOUT_STARTED, _COUNT, (), "dispatch", "a rollout execution was started (duplicates not counted)"),
        MetricSpec(PARAMETER_DELETED, _COUNT, (), "dispatch", "the proxy parameter was deleted (nothing changed)"),
        MetricSpec(INVALID_VALUE, _COUNT, (), "dispatch", "the parameter holds an invalid value (nothing changed)"),
        MetricSpec(
            NODEGROUPS_SKIPPED,
            _COUNT,
            _PER_CLUSTER,
            "dispatch, rollout step",
            "node groups out of scope when planned (dispatch) or skipped by the rollout (record)",
        ),
        MetricSpec(
            NODEGROUPS_REFRESHED, _COUNT, _PER_CLUSTER, "rollout step", "launch template versions created (refresh)"
        ),
        MetricSpec(NODEGROUPS_ROLLED, _COUNT, _PER_CLUSTER, "rollout step", "node groups rolled and verified"),
        MetricSpec(NODEGROUPS_FAILED, _COUNT, _PER_CLUSTER, "rollout step", "node groups whose rollout failed"),
        MetricSpec(
            NODEGROUPS_ROLLED_BACK,
            _COUNT,
            _PER_CLUSTER,
            "rollout step",
            "failed node groups rolled back to the version they ran before",
        ),
        MetricSpec(
            NODEGROUPS_GONE, _COUNT, _PER_CLUSTER, "rollout step", "node groups (or their template) deleted mid-rollout"
        ),
        MetricSpec(
            NODEGROUPS_MOVED_ON,
            _COUNT,
            _PER_CLUSTER,
            "rollout step",
            "failed node groups not rolled back because someone else changed them meanwhile",
        ),
        MetricSpec(ROLLBACK_FAILED, _COUNT, _PER_CLUSTER, "rollout step", "rollbacks that did not succeed"),
        MetricSpec(
            NODEGROUPS_SUPERSEDED,
            _COUNT,
            _PER_CLUSTER,
            "rollout step",
            "node groups a rollout left to a newer parameter version's rollout (which runs next)",
        ),
        MetricSpec(
            NODEGROUPS_NOT_STARTED,
            _COUNT,
            _PER_CLUSTER,
            "rollout step",
            "node groups not started because another node group of the rollout failed first",
        ),
        MetricSpec(ROLLOUT_FAILED, _COUNT, (), "rollout step", "rollouts that failed (notify_failure; alarm)"),
        MetricSpec(
            DRIFT_PERSISTING,
            _COUNT,
            _PER_CLUSTER,
            "dispatch (sweeps)",
            "node groups without the current value although their rollout ended, plus those only a person can fix "
            "(unmergeable user data, custom AMI without OS hint); 0 when clean (alarm DriftPersistingAlarm)",
        ),
        MetricSpec(PREFLIGHT_FAILED, _COUNT, (), "preflight", "0 per passed, 1 per failed preflight (Sum = failures)"),
        MetricSpec(PREFLIGHT_LATENCY, "Milliseconds", (), "preflight", "the whole probe through the proxy"),
        MetricSpec(
            PREFLIGHT_RETRIED, _COUNT, (), "preflight", "a transient preflight failure the state machine probes again"
        ),
        MetricSpec(VERIFY_NODES_PASSED, _COUNT, (), "verify", "nodes whose verification pod pulled the image"),
        MetricSpec(VERIFY_NODES_FAILED, _COUNT, (), "verify", "nodes whose verification pod did not pull the image"),
        MetricSpec(VERIFY_ERRORS, _COUNT, (), "verify", "verifications that could not run (API, access, namespace)"),
    )
}


class UnknownMetric(ValueError):
    """A metric name, or a dimension set, that is not in the registry (a programming error: fails loudly)."""


def spec_of(name: str, dimensions: Mapping[str, str] | None = None) -> MetricSpec:
    """The registered spec of `name`; UnknownMetric when it is not registered or the dimensions differ."""
    spec = REGISTRY.get(name)
    if spec is None:
        raise UnknownMetric(f"metric {name!r} is not registered in eks_proxy.metrics")
    given = tuple(sorted(dimensions or {}))
    if given != tuple(sorted(spec.dimensions)):
        raise UnknownMetric(f"metric {name!r} takes dimensions {list(spec.dimensions)}, got {list(given)}")
    return spec


def emit(metrics: Any, name: str, value: float, dimensions: Mapping[str, str] | None = None) -> None:
    """Emit one registered metric through a Powertools `Metrics` object.

    Without dimensions it joins the invocation's batch (`add_metric`, flushed by `log_metrics`); with dimensions it
    is written at once as its own EMF line (`single_metric`), so one invocation can count several clusters.
    """
    from aws_lambda_powertools.metrics import MetricUnit, single_metric

    spec = spec_of(name, dimensions)
    unit = MetricUnit(spec.unit)
    if not dimensions:
        metrics.add_metric(name=name, unit=unit, value=value)
        return
    with single_metric(
        name=name, unit=unit, value=value, namespace=metrics.namespace, default_dimensions=metrics.default_dimensions
    ) as metric:
        for key, dimension_value in sorted(dimensions.items()):
            metric.add_dimension(name=key, value=dimension_value)
