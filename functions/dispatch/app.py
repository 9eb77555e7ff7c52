"""DispatchFunction: one EventBridge event (SSM change, EKS/EC2 CloudTrail call, daily sweep) -> maybe one rollout.

Thin: settings are parsed at cold start (a missing variable fails loudly here), no AWS call happens at import,
everything else is `eks_proxy.engine.dispatch.dispatch`. Logs are JSON with the event id as correlation id.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.typing import LambdaContext
from eks_proxy.aws.clients import AwsClients
from eks_proxy.config import Settings
from eks_proxy.engine.dispatch import dispatch
from eks_proxy.metrics import (
    DRIFT_PERSISTING,
    INVALID_VALUE,
    NODEGROUPS_SKIPPED,
    PARAMETER_DELETED,
    ROLLOUT_STARTED,
    emit,
)
from eks_proxy.model import Outcome

SETTINGS = Settings.from_env(required=("CLUSTER_NAMES", "ALARM_TOPIC_ARN", "STATE_MACHINE_ARN"))
logger = Logger()
copy_config_to_registered_loggers(source_logger=logger, include={"eks_proxy"})  # the package's logs, as JSON
metrics = Metrics()
clients = AwsClients()  # clients are created on first use, not at import


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = dispatch(event, clients, SETTINGS)
    if result.status == "parameter_deleted":
        emit(metrics, PARAMETER_DELETED, 1)
    elif result.status == "invalid_value":
        emit(metrics, INVALID_VALUE, 1)
    elif result.status == "started":
        emit(metrics, ROLLOUT_STARTED, 1)
    skipped = Counter(d.cluster for d in result.decisions if d.outcome is Outcome.OUT_OF_SCOPE)
    for cluster, count in sorted(skipped.items()):
        emit(metrics, NODEGROUPS_SKIPPED, count, {"cluster": cluster})
    for cluster, count in sorted((result.drift or {}).items()):  # sweeps: 0 too, so the alarm clears
        emit(metrics, DRIFT_PERSISTING, count, {"cluster": cluster})
    logger.info("dispatched", extra=result.to_dict())
    return result.to_dict()
