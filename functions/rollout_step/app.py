"""RolloutStepFunction: one step of the rollout state machine, picked by the `action` field.

Thin: settings at cold start, no AWS call at import, the actions live in `eks_proxy.engine.steps`. Named errors
(`NodegroupBusy`, `ThrottlingException`, `InvalidRolloutInput`) propagate so the state machine can retry or stop.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.typing import LambdaContext
from eks_proxy.aws.clients import AwsClients
from eks_proxy.config import Settings
from eks_proxy.engine.plan import ContextCache
from eks_proxy.engine.steps import NodegroupBusy, StepContext, ThrottlingException, run_step
from eks_proxy.metrics import emit

SETTINGS = Settings.from_env()
logger = Logger()
copy_config_to_registered_loggers(source_logger=logger, include={"eks_proxy"})  # the package's logs, as JSON
metrics = Metrics()
clients = AwsClients()  # clients are created on first use, not at import
contexts = ContextCache()  # cluster facts, reused by a warm container for a few minutes


def _metric(name: str, value: float, **dimensions: str) -> None:
    emit(metrics, name, value, dimensions)


@logger.inject_lambda_context(correlation_id_path="change_id || input.change_id")
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(action=event.get("action"), cluster=event.get("cluster"), nodegroup=event.get("nodegroup"))
    try:
        return run_step(event, StepContext(clients, SETTINGS, metric=_metric, cache=contexts))
    except (NodegroupBusy, ThrottlingException) as retried:  # the state machine retries these with backoff
        logger.warning("step will be retried", extra={"error": type(retried).__name__, "reason": str(retried)})
        raise
    except Exception as error:
        logger.exception("step failed", extra={"error": type(error).__name__})
        raise
