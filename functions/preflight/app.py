"""Preflight task of the rollout: before any launch template changes, prove the new proxy reaches a registry.

Input (engine contract): ``{"parameter": {"name", "version"}, "registry": "host:port"}``; the proxy value is read
here at exactly that version (never carried in the execution history) and used explicitly, never from the
environment. ``registry`` falls back to ``REGISTRY_PROBE``.
Output: ``{"ok", "result", "detail", "latency_ms", "status"}``; ``ok`` false stops the rollout before any change.
A transient failure (proxy unreachable, timeout, registry not answering) while the state machine still has retries
(``attempt < retries``) raises ``PreflightNotReady`` instead: the Preflight state retries it with backoff (minutes),
and only the last attempt's failure is returned (and alarmed).

Optional environment (read through `eks_proxy.config.Settings`): ``PREFLIGHT_CONNECT_TIMEOUT_SECONDS`` (3),
``PREFLIGHT_IO_TIMEOUT_SECONDS`` (5) and ``PREFLIGHT_CA_BUNDLE`` (a PEM file replacing the system CAs, for a
private registry). A TLS-inspecting proxy's CA comes from the value's ``ca_bundle`` parameter (read here, latest
version): trusted in addition to the system CAs, as the nodes trust it.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.typing import LambdaContext
from eks_proxy.aws.clients import AwsClients
from eks_proxy.aws.ssm import ParameterNotFound, attach_ca_bundle, read_parameter
from eks_proxy.checks.preflight import PreflightNotReady, PreflightResult, invalid_value, preflight
from eks_proxy.config import Settings
from eks_proxy.engine.contracts import ParameterRef, PreflightTask
from eks_proxy.metrics import PREFLIGHT_FAILED, PREFLIGHT_LATENCY, PREFLIGHT_RETRIED, emit
from eks_proxy.proxy.value import ProxyValueError, parse_proxy_value

logger = Logger()
copy_config_to_registered_loggers(source_logger=logger, include={"eks_proxy"})  # the package's logs, as JSON
metrics = Metrics()
SETTINGS = Settings.from_env(required=())  # a malformed PREFLIGHT_* variable fails at cold start
clients = AwsClients()  # clients are created on first use, not at import


def _read_value(parameter: ParameterRef) -> str | PreflightResult:
    """The value at the pinned version, or an ``invalid_value`` result when that version does not exist."""
    try:
        return read_parameter(clients.ssm, parameter.name, parameter.version or None).value
    except ParameterNotFound as missing:
        return invalid_value(str(missing))


@logger.inject_lambda_context(log_event=False, correlation_id_path="change_id")
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    task = PreflightTask.from_event(event)  # bad input: contracts.ValidationError, nothing contacted
    registry = task.registry or SETTINGS.registry_probe
    logger.append_keys(parameter=task.parameter.name, parameter_version=task.parameter.version, registry=registry)
    value = _read_value(task.parameter)
    if isinstance(value, PreflightResult):
        result = value
    else:
        try:
            # The CA bundle the value names (a TLS-inspecting proxy), latest version, trusted for the probe.
            config = attach_ca_bundle(clients.ssm, parse_proxy_value(value), allowed=SETTINGS.ca_bundle_parameter_name)
        except ProxyValueError as error:
            result = invalid_value(str(error))  # one line, never the value itself
        else:
            bundle = config.ca_bundle.describe() if config.ca_bundle else None
            logger.info("probing", extra={"proxy": config.https_proxy, "ca_bundle": bundle})
            result = preflight(
                config,
                registry,
                connect_timeout=SETTINGS.preflight_connect_timeout_seconds,
                io_timeout=SETTINGS.preflight_io_timeout_seconds,
                cafile=SETTINGS.preflight_ca_bundle or None,
            )
    fields = {"result": result.result, "latency_ms": result.latency_ms, "status": result.status}
    if result.transient and task.retry_left:
        logger.warning(result.detail, extra=fields | {"attempt": task.attempt, "retries": task.retries})
        emit(metrics, PREFLIGHT_RETRIED, 1)
        raise PreflightNotReady(result)
    log = logger.info if result.ok else logger.error
    log(result.detail, extra=fields)
    emit(metrics, PREFLIGHT_FAILED, 0 if result.ok else 1)
    total = result.latency_ms.get("total")
    if isinstance(total, int | float):
        emit(metrics, PREFLIGHT_LATENCY, total)
    return result.as_output()
