"""Pure parts of preflight and verification: pod classification, kubelet messages, the pod manifest, docstrings."""

from __future__ import annotations

import doctest
from typing import Any

import eks_proxy.aws.sts
import eks_proxy.checks.eks_token
import eks_proxy.checks.kube_client
import eks_proxy.checks.preflight
import eks_proxy.checks.verify
import pytest
from eks_proxy.checks.preflight import parse_registry
from eks_proxy.checks.verify import classify_pod, kubelet_message, verification_pod


def _pod(phase: str = "Pending", reason: str = "", image_id: str = "", state: dict[str, Any] | None = None) -> Any:
    if state is None:
        state = {"waiting": {"reason": reason, "message": f"{reason} message"}} if reason else {}
    return {"status": {"phase": phase, "containerStatuses": [{"imageID": image_id, "state": state}]}}


@pytest.mark.parametrize("reason", ["ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"])
def test_pull_failures(reason: str) -> None:
    state = classify_pod(_pod(reason=reason))
    assert state.result == "failed"
    assert state.status == f"Pending ({reason})"
    assert state.message == f"{reason} message"


@pytest.mark.parametrize(
    ("pod", "expected"),
    [
        (_pod("Running", state={"running": {"startedAt": "2026-11-25T01:00:00Z"}}, image_id="busybox@sha256:1"),
         "image pulled (busybox@sha256:1)"),
        (_pod("Succeeded", state={"terminated": {"exitCode": 0}}), "image pulled"),
        (_pod("Failed", state={"terminated": {"exitCode": 127, "reason": "StartError"}}), "image pulled"),
        (_pod(reason="CreateContainerConfigError"),
         "image pulled; container did not start: CreateContainerConfigError"),
        (_pod(reason="ContainerCreating", image_id="busybox@sha256:2"), "image pulled (busybox@sha256:2)"),
    ],
)  # fmt: skip
def test_pulled(pod: Any, expected: str) -> None:
    state = classify_pod(pod)
    assert state.result == "pulled"
    assert state.message == expected


def test_undecided_while_creating_or_unscheduled() -> None:
    assert classify_pod(_pod(reason="ContainerCreating")).result is None
    assert classify_pod(_pod(reason="ContainerCreating")).status == "Pending (ContainerCreating)"
    assert classify_pod({"status": {"phase": "Pending"}}).result is None
    assert classify_pod({}).status == "Pending"


def test_kubelet_rejection_is_a_failure() -> None:
    pod = {"status": {"phase": "Failed", "reason": "OutOfmemory", "message": "Node didn't have enough resource"}}
    state = classify_pod(pod)
    assert state.result == "failed"
    assert state.message == "OutOfmemory: Node didn't have enough resource"


def test_kubelet_message_prefers_the_pull_error() -> None:
    events = [
        {"type": "Normal", "reason": "Pulling", "message": 'Pulling image "busybox"'},
        {"type": "Warning", "reason": "Failed", "message": 'Failed to pull image "busybox": i/o timeout'},
        {"type": "Warning", "reason": "Failed", "message": "Error: ErrImagePull"},
        {"type": "Normal", "reason": "BackOff", "message": 'Back-off pulling image "busybox"'},
    ]
    assert kubelet_message(events) == 'Failed to pull image "busybox": i/o timeout'
    assert kubelet_message([{"type": "Warning", "message": "Error: ErrImagePull"}]) == "Error: ErrImagePull"
    assert kubelet_message([]) == ""


def test_pod_is_pinned_tolerant_tiny_and_restricted() -> None:
    pod = verification_pod("p", "node-1", "img:1", "ns", run_id="r1", nodegroup="ng-a")
    spec = pod["spec"]
    container = spec["containers"][0]
    assert spec["nodeName"] == "node-1"
    assert spec["restartPolicy"] == "Never"
    assert spec["automountServiceAccountToken"] is False
    assert container["resources"]["requests"] == {"cpu": "5m", "memory": "8Mi"}
    # Pod Security Standard "restricted": non-root, no escalation, all capabilities dropped, RuntimeDefault seccomp.
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "eks-proxy",
        "app.kubernetes.io/name": "eks-proxy-verify",
        "eks-proxy/run": "r1",
        "eks-proxy/nodegroup": "ng-a",
    }


@pytest.mark.parametrize("bad", ["", "host:port", "host:70000", "[::1]:x"])
def test_registry_probe_must_be_host_port(bad: str) -> None:
    with pytest.raises(ValueError, match="registry probe"):
        parse_registry(bad)


@pytest.mark.parametrize(
    "module",
    [
        eks_proxy.checks.preflight,
        eks_proxy.checks.eks_token,
        eks_proxy.aws.sts,
        eks_proxy.checks.kube_client,
        eks_proxy.checks.verify,
    ],
)
def test_docstring_examples(module: Any) -> None:
    failures, tried = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert tried > 0
    assert failures == 0
