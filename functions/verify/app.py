"""Verify task of the rollout: prove every node of a freshly rolled node group pulls an external image.

Input (engine contract): ``{"cluster", "nodegroup", "image", "namespace", "timeout_seconds"}``; namespace and
timeout fall back to ``VERIFY_NAMESPACE`` and ``VERIFY_TIMEOUT_SECONDS``. The image is always ``VERIFY_IMAGE``: an
``image`` in the task other than that is ignored (logged as a warning), so invoking the function cannot run an
arbitrary image on the nodes.
Output: ``{"ok", "nodes": [{"node", "result", "message"}], "summary"}``; the state machine takes its failure path
when ``ok`` is false. The Kubernetes token is never logged.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.typing import LambdaContext
from eks_proxy.aws.clients import AwsClients
from eks_proxy.aws.ec2 import nodegroup_node_names
from eks_proxy.aws.eks import ClusterNotReady, cluster_access
from eks_proxy.checks.eks_token import EksTokenSource
from eks_proxy.checks.kube_client import KubernetesApiError, KubernetesClient
from eks_proxy.checks.verify import Verification, VerificationError, verify_pulls
from eks_proxy.config import Settings
from eks_proxy.engine.contracts import VerifyTask
from eks_proxy.metrics import VERIFY_ERRORS, VERIFY_NODES_FAILED, VERIFY_NODES_PASSED, emit

logger = Logger()
copy_config_to_registered_loggers(source_logger=logger, include={"eks_proxy"})  # the package's logs, as JSON
metrics = Metrics()
SETTINGS = Settings.from_env(required=())  # a malformed VERIFY_* variable fails at cold start
clients = AwsClients()  # clients are created on first use, not at import
CLEANUP_RESERVE_SECONDS = 30  # deleting the pods of a large node group, with the API server's latency


def _budget(timeout: int, context: LambdaContext) -> int:
    """Never poll past the function's own timeout: the pods must still be deleted afterwards."""
    remaining = context.get_remaining_time_in_millis() // 1000 - CLEANUP_RESERVE_SECONDS
    return max(1, min(timeout, remaining))


@logger.inject_lambda_context(log_event=False, correlation_id_path="change_id")
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    task = VerifyTask.from_event(event)  # bad input: contracts.ValidationError, nothing touched
    # The image is the stack's VerifyImage, whatever the task says: whoever can invoke this function must not be
    # able to run an image of their choice on every node of a node group.
    image = SETTINGS.verify_image
    if task.image and task.image != image:
        logger.warning("task image ignored", extra={"asked": task.image[:200], "image": image})
    namespace = task.namespace or SETTINGS.verify_namespace
    timeout = _budget(task.timeout_seconds or SETTINGS.verify_timeout_seconds, context)
    logger.append_keys(cluster=task.cluster, nodegroup=task.nodegroup)
    nodes: list[str] = []
    try:
        access = cluster_access(clients.eks, task.cluster)
        token = EksTokenSource(task.cluster, clients.region, clients.credentials())
        api = KubernetesClient(access.endpoint, access.ca_pem, token)
        try:
            nodes = nodegroup_node_names(clients.ec2, task.cluster, task.nodegroup)
            logger.info("verifying pulls", extra={"nodes": nodes, "image": image, "namespace": namespace})
            result = verify_pulls(
                api,
                nodes,
                nodegroup=task.nodegroup,
                image=image,
                namespace=namespace,
                timeout_seconds=timeout,
                poll_seconds=SETTINGS.verify_poll_seconds,
            )
        finally:
            api.close()
    except (VerificationError, KubernetesApiError, ClusterNotReady) as exc:
        logger.error("verification could not run", extra={"reason": str(exc), "nodes": nodes})
        emit(metrics, VERIFY_ERRORS, 1)
        result = Verification(False, (), f"verification of {task.nodegroup} could not run: {exc}")
    for node in result.nodes:
        log = logger.info if node.result == "pulled" else logger.warning
        log("node verified", extra={"node": node.node, "result": node.result, "detail": node.message})
    for problem in result.cleanup_errors:
        logger.warning("verification pod not deleted", extra={"problem": problem})
    emit(metrics, VERIFY_NODES_PASSED, result.passed)
    emit(metrics, VERIFY_NODES_FAILED, result.failed)
    logger.info(result.summary, extra={"ok": result.ok})
    return result.as_output()
