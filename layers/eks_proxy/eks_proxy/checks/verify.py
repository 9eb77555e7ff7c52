"""Pull verification: prove every node of a freshly rolled node group can pull an external image through the proxy.

For each node: one pod pinned to it (``nodeName``), image ``VERIFY_IMAGE`` with ``imagePullPolicy: Always`` (so
the node's containerd really goes out through the proxy), tolerating every taint, tiny resources, never restarted.
A node passes when its image is pulled (container running or finished, or an image id reported); it fails on
``ErrImagePull``/``ImagePullBackOff``/``InvalidImageName``/``ErrImageNeverPull`` with the kubelet's own event
message, or when nothing happened before the deadline (with the last status seen). The pods are always deleted.
Behind a TLS-inspecting proxy nothing changes here: the pull is the node's, and a new node trusts the value's CA
bundle by the time containerd starts (the boothook's anchor + ``update-ca-trust extract``; Bottlerocket's
``settings.pki``), so a passing pod also proves the bundle; a missing or wrong one fails with the kubelet's
``x509: certificate signed by unknown authority`` event.

Where the nodes come from (`eks_proxy.aws.ec2.nodegroup_node_names`): EC2 ``DescribeInstances`` of the running
instances tagged ``eks:cluster-name`` and ``eks:nodegroup-name`` (managed node groups tag their instances so), node
name = ``PrivateDnsName`` (the name EKS nodes register with). Listing Kubernetes nodes would need cluster-scoped
read; this way the function's access policy stays scoped to one namespace.

Concurrency: leftovers are found by ``eks-proxy/nodegroup=<name>``, so two node groups verified at once in the
same cluster never delete each other's pods (the state machine never verifies one node group twice at a time).

>>> pod = verification_pod("eks-proxy-verify-1a2b-0", "ip-10-0-1-7.eu-west-1.compute.internal",
...                        "docker.io/library/busybox:1.36", "eks-proxy-verify", run_id="1a2b", nodegroup="ng-a")
>>> pod["spec"]["nodeName"], pod["spec"]["containers"][0]["imagePullPolicy"], pod["spec"]["tolerations"]
('ip-10-0-1-7.eu-west-1.compute.internal', 'Always', [{'operator': 'Exists'}])
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from eks_proxy.checks.kube_client import KubernetesApiError, path

NodeOutcome = Literal["pulled", "failed", "timeout"]

MANAGED_BY = "eks-proxy"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_RUN = "eks-proxy/run"
LABEL_NODEGROUP = "eks-proxy/nodegroup"
# The Kubernetes group the verify function's EKS access entry maps its role to; `access_manifest` binds it to a Role
# in the verification namespace that holds exactly what `verify_pulls` calls (EKS access policies cannot be narrower
# than AmazonEKSEditPolicy, which would also grant deployments, secrets, services ... in that namespace).
VERIFY_GROUP = "eks-proxy:verify"
# What the verification pods need, as (API group, resource, verbs): every request `verify_pulls` makes is one of these.
ROLE_RULES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("", "pods", ("create", "list", "delete")),
    ("", "events", ("list",)),
)
# Pod Security admission: the namespace enforces the "restricted" standard; `verification_pod` complies with it.
NAMESPACE_LABELS: dict[str, str] = {
    LABEL_MANAGED_BY: MANAGED_BY,
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
    "pod-security.kubernetes.io/audit": "restricted",
    "pod-security.kubernetes.io/warn": "restricted",
}
# Waiting reasons that mean the pull itself failed (kubelet's images.ErrImagePull and friends).
PULL_FAILURES = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"})
# Waiting reasons that only happen after the image is on the node: the pull succeeded, the start did not.
AFTER_PULL = frozenset({"CreateContainerConfigError", "CreateContainerError", "RunContainerError", "StartError"})


class KubernetesApi(Protocol):
    """What verification needs from a Kubernetes client (:class:`eks_proxy.checks.kube_client.KubernetesClient`)."""

    def get(self, path: str, **query: str) -> dict[str, Any]: ...

    def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]: ...

    def delete(self, path: str, **query: str) -> dict[str, Any]: ...


class VerificationError(Exception):
    """Verification could not run at all (no access, namespace missing): one line saying what to do."""


@dataclass(frozen=True)
class NodeResult:
    node: str
    result: NodeOutcome
    message: str

    def as_output(self) -> dict[str, str]:
        return {"node": self.node, "result": self.result, "message": self.message}


@dataclass(frozen=True)
class Verification:
    """The verify task output of the engine contract (docs/ARCHITECTURE.md)."""

    ok: bool
    nodes: tuple[NodeResult, ...]
    summary: str
    cleanup_errors: tuple[str, ...] = field(default=())

    @property
    def passed(self) -> int:
        return sum(1 for n in self.nodes if n.result == "pulled")

    @property
    def failed(self) -> int:
        return len(self.nodes) - self.passed

    def as_output(self) -> dict[str, Any]:
        return {"ok": self.ok, "nodes": [n.as_output() for n in self.nodes], "summary": self.summary}


@dataclass(frozen=True)
class PodState:
    """What one look at a pod says: ``result`` None while undecided; ``status`` a short text for timeouts."""

    result: Literal["pulled", "failed"] | None
    status: str
    message: str = ""


def verification_pod(
    name: str, node: str, image: str, namespace: str, *, run_id: str, nodegroup: str
) -> dict[str, Any]:
    """The pod that proves ``node`` can pull ``image``; passes the "restricted" Pod Security Standard."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                LABEL_MANAGED_BY: MANAGED_BY,
                "app.kubernetes.io/name": "eks-proxy-verify",
                LABEL_RUN: run_id,
                LABEL_NODEGROUP: nodegroup,
            },
            "annotations": {"eks-proxy/node": node},
        },
        "spec": {
            "nodeName": node,  # bypasses the scheduler: the pod lands exactly there, or nowhere
            "restartPolicy": "Never",
            "tolerations": [{"operator": "Exists"}],
            "terminationGracePeriodSeconds": 0,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 65534,
                "runAsGroup": 65534,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "pull",
                    "image": image,
                    "imagePullPolicy": "Always",
                    "resources": {
                        "requests": {"cpu": "5m", "memory": "8Mi"},
                        "limits": {"cpu": "50m", "memory": "32Mi"},
                    },
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }


def classify_pod(pod: Mapping[str, Any]) -> PodState:
    """Decide from one pod object whether its image was pulled, failed to pull, or nothing is known yet.

    >>> classify_pod({"status": {"phase": "Pending", "containerStatuses": [{"imageID": "",
    ...     "state": {"waiting": {"reason": "ErrImagePull", "message": "rpc error"}}}]}}).result
    'failed'
    >>> classify_pod({"status": {"phase": "Pending"}}).status
    'Pending'
    """
    status = pod.get("status") or {}
    phase = str(status.get("phase") or "Pending")
    waiting_reason = ""
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        image_id = container.get("imageID") or ""
        if "running" in state or "terminated" in state:
            return PodState("pulled", phase, _pulled_message(container))
        waiting = state.get("waiting") or {}
        waiting_reason = str(waiting.get("reason") or "")
        if waiting_reason in PULL_FAILURES:
            return PodState("failed", f"{phase} ({waiting_reason})", str(waiting.get("message") or waiting_reason))
        if image_id or waiting_reason in AFTER_PULL:
            note = f"; container did not start: {waiting_reason}" if waiting_reason in AFTER_PULL else ""
            return PodState("pulled", phase, _pulled_message(container) + note)
    if phase == "Succeeded":
        return PodState("pulled", phase, "image pulled; container finished")
    if phase == "Failed":
        reason = str(status.get("reason") or "Failed")
        return PodState("failed", f"Failed ({reason})", f"{reason}: {status.get('message') or 'pod failed'}")
    return PodState(None, f"{phase} ({waiting_reason})" if waiting_reason else phase)


def _pulled_message(container: Mapping[str, Any]) -> str:
    image_id = container.get("imageID") or ""
    return f"image pulled ({image_id})" if image_id else "image pulled"


def kubelet_message(events: Iterable[Mapping[str, Any]]) -> str:
    """The most telling kubelet event: the last "Failed to pull image ..." warning, else the last warning."""
    warnings = [e for e in events if e.get("type") == "Warning" and e.get("message")]
    pulls = [e for e in warnings if "pull" in str(e.get("message", "")).lower() and "Error:" not in e["message"]]
    chosen = (pulls or warnings or [{}])[-1]
    return str(chosen.get("message") or "")


@dataclass
class _Tracked:
    node: str
    pod: str
    last_status: str = "not created"
    result: NodeResult | None = None


def verify_pulls(
    api: KubernetesApi,
    nodes: Sequence[str],
    *,
    nodegroup: str,
    image: str,
    namespace: str,
    timeout_seconds: float,
    poll_seconds: float = 2.0,
    run_id: str | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Verification:
    """Verify that every node in ``nodes`` pulls ``image``; always deletes the pods it created.

    Raises :class:`VerificationError` when it cannot run at all (forbidden, namespace missing and not creatable);
    per-node failures are results, not exceptions.
    """
    if not nodes:
        return Verification(True, (), f"node group {nodegroup} has no running nodes: nothing to verify")
    run = run_id or secrets.token_hex(4)
    pods_path = path("api/v1", "namespaces", namespace, "pods")
    tracked = [_Tracked(node, f"eks-proxy-verify-{run}-{i}") for i, node in enumerate(nodes)]
    created: list[str] = []
    cleanup_errors: list[str] = []
    try:
        cleanup_errors += _delete_leftovers(api, namespace, nodegroup)
        for item in tracked:
            body = verification_pod(item.pod, item.node, image, namespace, run_id=run, nodegroup=nodegroup)
            _create_pod(api, namespace, pods_path, body)
            created.append(item.pod)
            item.last_status = "Pending"
        deadline = clock() + timeout_seconds
        while True:
            try:
                _observe(api, namespace, pods_path, run, tracked)
            except KubernetesApiError as exc:
                if not _transient(exc):
                    raise
                # A blip of the API server is not a verdict on the proxy: keep polling until the deadline.
            if all(item.result for item in tracked) or clock() >= deadline:
                break
            sleep(min(poll_seconds, max(0.0, deadline - clock())))
        for item in tracked:
            if item.result is None:
                item.result = _timed_out(api, namespace, item, timeout_seconds)
    except KubernetesApiError as exc:
        raise VerificationError(_explain(exc, namespace)) from None
    finally:
        for name in created:
            cleanup_errors += _delete_pod(api, namespace, name)
    results = tuple(item.result for item in tracked if item.result)
    return _summarize(results, nodegroup, image, tuple(cleanup_errors))


def _summarize(
    results: tuple[NodeResult, ...], nodegroup: str, image: str, cleanup_errors: tuple[str, ...]
) -> Verification:
    passed = sum(1 for r in results if r.result == "pulled")
    ok = passed == len(results)
    summary = f"{passed}/{len(results)} nodes of {nodegroup} pulled {image}"
    if not ok:
        first = next(r for r in results if r.result != "pulled")
        summary += f"; first failure: {first.node}: {first.result}: {first.message}"
    if cleanup_errors:
        summary += f"; {len(cleanup_errors)} pod(s) could not be deleted"
    return Verification(ok, results, summary, cleanup_errors)


def _observe(api: KubernetesApi, namespace: str, pods_path: str, run: str, tracked: list[_Tracked]) -> None:
    """One poll: a single LIST for all pods of this run, then events only for pods that just failed."""
    listing = api.get(pods_path, labelSelector=f"{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_RUN}={run}")
    by_name = {p.get("metadata", {}).get("name"): p for p in listing.get("items") or []}
    for item in tracked:
        if item.result is not None:
            continue
        pod = by_name.get(item.pod)
        if pod is None:
            item.result = NodeResult(item.node, "failed", f"pod {item.pod} disappeared before its image was pulled")
            continue
        state = classify_pod(pod)
        item.last_status = state.status
        if state.result == "pulled":
            item.result = NodeResult(item.node, "pulled", state.message)
        elif state.result == "failed":
            message = kubelet_message(_events(api, namespace, item.pod)) or state.message
            item.result = NodeResult(item.node, "failed", f"{state.status}: {message}")


def _timed_out(api: KubernetesApi, namespace: str, item: _Tracked, timeout_seconds: float) -> NodeResult:
    last_event = ""
    try:
        events = _events(api, namespace, item.pod)
        last_event = str(events[-1].get("message") or "") if events else ""
    except KubernetesApiError:
        pass  # the timeout is the finding; a missing detail must not hide it
    detail = f"; last event: {last_event}" if last_event else "; no events (pod never reached the node?)"
    return NodeResult(
        item.node, "timeout", f"image not pulled within {timeout_seconds:g}s; last status: {item.last_status}{detail}"
    )


def _events(api: KubernetesApi, namespace: str, pod: str) -> list[Mapping[str, Any]]:
    listing = api.get(
        path("api/v1", "namespaces", namespace, "events"),
        fieldSelector=f"involvedObject.kind=Pod,involvedObject.name={pod}",
    )
    items: list[Mapping[str, Any]] = listing.get("items") or []
    return items


def _create_pod(api: KubernetesApi, namespace: str, pods_path: str, body: Mapping[str, Any]) -> None:
    try:
        api.create(pods_path, body)
    except KubernetesApiError as exc:
        if exc.status != 404 or exc.kind != "namespaces":
            raise
        _create_namespace(api, namespace)
        api.create(pods_path, body)


def _create_namespace(api: KubernetesApi, namespace: str) -> None:
    """Create the namespace when allowed (cluster-scoped access); a namespace-scoped policy cannot."""
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": dict(NAMESPACE_LABELS)}}
    try:
        api.create(path("api/v1", "namespaces"), body)
    except KubernetesApiError as exc:
        if exc.status == 409:
            return  # created meanwhile
        if exc.status == 403:
            raise VerificationError(
                f"namespace {namespace} does not exist and this function may not create it (its rights are scoped to "
                f"that namespace): create it once with `eks-proxy verify-access --namespace {namespace} | kubectl "
                "apply -f -`"
            ) from None
        raise


def _delete_leftovers(api: KubernetesApi, namespace: str, nodegroup: str) -> list[str]:
    """Delete pods an earlier, interrupted run of this node group left behind."""
    selector = f"{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_NODEGROUP}={nodegroup}"
    listing = api.get(path("api/v1", "namespaces", namespace, "pods"), labelSelector=selector)
    errors: list[str] = []
    for pod in listing.get("items") or []:
        name = str(pod.get("metadata", {}).get("name") or "")
        if name:
            errors += _delete_pod(api, namespace, name)
    return errors


def _delete_pod(api: KubernetesApi, namespace: str, name: str) -> list[str]:
    try:
        api.delete(path("api/v1", "namespaces", namespace, "pods", name), gracePeriodSeconds="0")
    except KubernetesApiError as exc:
        if exc.status == 404:
            return []
        return [f"{name}: {exc}"]
    return []


def _transient(exc: KubernetesApiError) -> bool:
    return exc.status == 0 or exc.status == 429 or exc.status >= 500


def _explain(exc: KubernetesApiError, namespace: str) -> str:
    if exc.status == 401:
        return (
            "the Kubernetes API rejected the function's token (401): give the function's role an EKS access entry "
            "(or an aws-auth mapping)"
        )
    if exc.status == 403:
        return (
            f"the function may not manage pods/events in namespace {namespace} (403): bind its Kubernetes group "
            f"{VERIFY_GROUP} there with `eks-proxy verify-access --namespace {namespace} | kubectl apply -f -`"
        )
    return f"Kubernetes API error: {exc}"


def access_manifest(namespace: str, group: str = VERIFY_GROUP) -> str:
    """The Kubernetes objects the verify function needs in a cluster, as YAML for ``kubectl apply -f -``.

    The namespace (Pod Security "restricted" enforced), a Role with exactly ``ROLE_RULES`` in it, and a RoleBinding
    of that Role to ``group`` (the template's access entries map the function's role to ``VERIFY_GROUP``).

    >>> print(access_manifest("eks-proxy-verify").splitlines()[3])
      name: eks-proxy-verify
    """
    labels = "".join(f"    {key}: {value}\n" for key, value in NAMESPACE_LABELS.items())
    rules = "".join(
        f'  - apiGroups: ["{api_group}"]\n    resources: [{resource}]\n    verbs: [{", ".join(verbs)}]\n'
        for api_group, resource, verbs in ROLE_RULES
    )
    return (
        "apiVersion: v1\nkind: Namespace\nmetadata:\n"
        f"  name: {namespace}\n  labels:\n{labels}"
        "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n"
        f"  name: eks-proxy-verify\n  namespace: {namespace}\nrules:\n{rules}"
        "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n"
        f"  name: eks-proxy-verify\n  namespace: {namespace}\n"
        f'subjects:\n  - kind: Group\n    name: "{group}"\n    apiGroup: rbac.authorization.k8s.io\n'
        "roleRef:\n  kind: Role\n  name: eks-proxy-verify\n  apiGroup: rbac.authorization.k8s.io\n"
    )
