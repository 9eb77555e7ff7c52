"""Pull verification against a local fake Kubernetes API server (HTTPS, EKS token checked), node names and the
cluster from the moto server over HTTP, driven through the real handler with a realistic task input.

moto's DescribeCluster answers with a made-up endpoint and a random "CA": the one seam in these tests is
``testkit.fake_k8s.PointedAtFake``, which passes DescribeCluster through to moto and swaps only those two fields for
the fake API server's, so the handler's own parsing of the answer still runs.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from eks_proxy.checks.eks_token import eks_token
from eks_proxy.checks.kube_client import KubernetesClient
from eks_proxy.checks.verify import LABEL_MANAGED_BY, LABEL_NODEGROUP, LABEL_RUN, VerificationError, verify_pulls

from testkit.fake_k8s import FakeKubernetes, Outcome, PointedAtFake
from testkit.moto_server import MotoServer
from testkit.nodesim.pki import ServerCert, issue_cert, make_ca
from testkit.repo import load_handler, structured_logs
from testkit.tools import require_tool

NAMESPACE = "eks-proxy-verify"
IMAGE = "docker.io/library/busybox:1.36"


class _Context:
    """The Lambda context fields Powertools reads."""

    function_name = "eks-proxy-VerifyFunction"
    function_version = "$LATEST"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:eks-proxy-VerifyFunction"
    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e812345678"
    remaining_ms = 300_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@pytest.fixture
def lambda_context() -> _Context:
    return _Context()


@pytest.fixture(scope="module")
def api_cert(tmp_path_factory: pytest.TempPathFactory) -> ServerCert:
    require_tool("openssl")
    base = tmp_path_factory.mktemp("k8s-pki")
    return issue_cert(make_ca(base / "ca", name="fake kubernetes CA"), base / "api", ["localhost", "127.0.0.1"])


@pytest.fixture
def fake(api_cert: ServerCert) -> Iterator[FakeKubernetes]:
    server = FakeKubernetes(api_cert).start()
    yield server
    server.stop()


@pytest.fixture
def handler(moto_server: MotoServer) -> ModuleType:
    return load_handler("verify", {"VERIFY_POLL_SECONDS": "0.05"})


@pytest.fixture
def seam(handler: ModuleType, fake: FakeKubernetes, monkeypatch: pytest.MonkeyPatch) -> list[PointedAtFake]:
    real = handler.cluster_access
    made: list[PointedAtFake] = []

    def pointed(eks: Any, name: str) -> Any:
        made.append(PointedAtFake(eks, fake))
        return real(made[-1], name)

    monkeypatch.setattr(handler, "cluster_access", pointed)
    return made


def _cluster_with_nodes(moto: MotoServer, nodegroups: dict[str, int], cluster: str = "prod") -> dict[str, list[str]]:
    """A cluster in moto and running instances tagged as EKS tags managed node group instances."""
    moto.client("eks").create_cluster(
        name=cluster,
        roleArn="arn:aws:iam::123456789012:role/eks-cluster",
        resourcesVpcConfig={"subnetIds": ["subnet-0a1b2c3d"]},
    )
    ec2 = moto.client("ec2")
    image_id = "ami-12c6146b"  # one of moto's built-in AMIs (listing them all costs seconds)
    names: dict[str, list[str]] = {}
    for nodegroup, count in nodegroups.items():
        tags = [{"Key": "eks:cluster-name", "Value": cluster}, {"Key": "eks:nodegroup-name", "Value": nodegroup}]
        reservation = ec2.run_instances(
            ImageId=image_id,
            MinCount=count,
            MaxCount=count,
            TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
        )
        names[nodegroup] = sorted(i["PrivateDnsName"] for i in reservation["Instances"])
    return names


def _task(nodegroup: str = "ng-a", timeout: int = 5) -> dict[str, Any]:
    """What the rollout state machine passes to the verify task (docs/ARCHITECTURE.md, engine contract)."""
    return {
        "cluster": "prod",
        "nodegroup": nodegroup,
        "image": IMAGE,
        "namespace": NAMESPACE,
        "timeout_seconds": timeout,
    }


def _script(fake: FakeKubernetes, nodes: list[str], *outcomes: Outcome) -> None:
    for node, outcome in zip(nodes, outcomes, strict=True):
        fake.outcomes[node] = outcome


def test_all_nodes_pull(
    handler: ModuleType, fake: FakeKubernetes, seam: list[PointedAtFake], moto_server: MotoServer, lambda_context: Any
) -> None:
    nodes = _cluster_with_nodes(moto_server, {"ng-a": 3, "ng-b": 1})["ng-a"]
    _script(fake, nodes, "pulled", "pulled", "pulled")

    out = handler.lambda_handler(_task(), lambda_context)

    assert out["ok"] is True, out
    assert [n["node"] for n in out["nodes"]] == nodes  # only ng-a's nodes, found through EC2
    assert {n["result"] for n in out["nodes"]} == {"pulled"}
    assert all("image pulled (docker.io/library/busybox@sha256:" in n["message"] for n in out["nodes"])
    assert out["summary"] == f"3/3 nodes of ng-a pulled {IMAGE}"
    assert seam[0].described == ["prod"]
    created = fake.calls("POST", "/pods")
    assert len(created) == 3
    pod = created[0].body
    assert pod is not None
    assert pod["spec"]["nodeName"] == nodes[0]
    assert pod["spec"]["containers"][0]["imagePullPolicy"] == "Always"
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["tolerations"] == [{"operator": "Exists"}]
    assert pod["metadata"]["labels"][LABEL_MANAGED_BY] == "eks-proxy"
    assert fake.pod_names() == []  # every pod deleted
    assert fake.unauthorized == 0  # every request carried a valid EKS token


def test_mixed_outcomes_fail_with_kubelet_message_and_timeout(
    handler: ModuleType,
    fake: FakeKubernetes,
    seam: list[PointedAtFake],
    moto_server: MotoServer,
    lambda_context: Any,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    nodes = _cluster_with_nodes(moto_server, {"ng-a": 3})["ng-a"]
    _script(fake, nodes, "pulled", "err_image_pull", "never_scheduled")

    out = handler.lambda_handler(_task(timeout=1), lambda_context)

    assert out["ok"] is False
    by_node = {n["node"]: n for n in out["nodes"]}
    assert by_node[nodes[0]]["result"] == "pulled"
    failed = by_node[nodes[1]]
    assert failed["result"] == "failed"
    assert failed["message"].startswith("Pending (ErrImagePull): Failed to pull image")
    assert "proxyconnect tcp: dial tcp 10.0.0.10:3128: connect: connection refused" in failed["message"]
    stuck = by_node[nodes[2]]
    assert stuck["result"] == "timeout"
    assert stuck["message"].startswith("image not pulled within 1s; last status: Pending")
    assert out["summary"].startswith("1/3 nodes of ng-a pulled")
    assert fake.pod_names() == []  # deleted on failure and on timeout too
    assert len(fake.calls("DELETE", "/pods/")) == 3
    per_node = {getattr(r, "node", None): getattr(r, "result", None) for r in caplog.records if hasattr(r, "node")}
    assert per_node == {nodes[0]: "pulled", nodes[1]: "failed", nodes[2]: "timeout"}  # one log line per node
    emf = capsys.readouterr().out
    assert '"VerifyNodesPassed":[1.0]' in emf and '"VerifyNodesFailed":[2.0]' in emf
    assert "k8s-aws-v1." not in caplog.text + emf  # the token never reaches the logs


def test_leftovers_of_this_nodegroup_are_cleaned_first(
    handler: ModuleType, fake: FakeKubernetes, seam: list[PointedAtFake], moto_server: MotoServer, lambda_context: Any
) -> None:
    nodes = _cluster_with_nodes(moto_server, {"ng-a": 1})["ng-a"]
    _script(fake, nodes, "pulled")
    mine = {LABEL_MANAGED_BY: "eks-proxy", LABEL_NODEGROUP: "ng-a", LABEL_RUN: "0ld0ld00"}
    theirs = {LABEL_MANAGED_BY: "eks-proxy", LABEL_NODEGROUP: "ng-b", LABEL_RUN: "c0ffee00"}
    fake.seed_pod(NAMESPACE, "eks-proxy-verify-0ld0ld00-0", mine)
    fake.seed_pod(NAMESPACE, "eks-proxy-verify-c0ffee00-0", theirs)  # ng-b verifying at the same time
    fake.seed_pod(NAMESPACE, "someone-elses-pod", {"app": "web"})

    out = handler.lambda_handler(_task(), lambda_context)

    assert out["ok"] is True
    assert fake.pod_names() == ["eks-proxy-verify-c0ffee00-0", "someone-elses-pod"]
    first_delete = fake.requests.index(fake.calls("DELETE")[0])
    first_create = fake.requests.index(fake.calls("POST", "/pods")[0])
    assert first_delete < first_create  # leftovers go before new pods are made


def test_missing_namespace_without_rights_is_a_clear_error(
    handler: ModuleType, fake: FakeKubernetes, seam: list[PointedAtFake], moto_server: MotoServer, lambda_context: Any
) -> None:
    nodes = _cluster_with_nodes(moto_server, {"ng-a": 2})["ng-a"]
    _script(fake, nodes, "pulled", "pulled")
    fake.namespaces.discard(NAMESPACE)

    out = handler.lambda_handler(_task(), lambda_context)

    assert out["ok"] is False
    assert out["nodes"] == []
    assert "eks-proxy verify-access --namespace eks-proxy-verify | kubectl apply -f -" in out["summary"]
    assert fake.pods == {}


def test_missing_namespace_is_created_when_allowed(
    handler: ModuleType, fake: FakeKubernetes, seam: list[PointedAtFake], moto_server: MotoServer, lambda_context: Any
) -> None:
    nodes = _cluster_with_nodes(moto_server, {"ng-a": 1})["ng-a"]
    _script(fake, nodes, "pulled")
    fake.namespaces.discard(NAMESPACE)
    fake.allow_namespace_create = True

    out = handler.lambda_handler(_task(), lambda_context)

    assert out["ok"] is True
    assert NAMESPACE in fake.namespaces
    labels = fake.namespace_labels[NAMESPACE]  # created enforcing the restricted Pod Security Standard
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["pod-security.kubernetes.io/warn"] == labels["pod-security.kubernetes.io/audit"] == "restricted"


def _manifest_rbac(namespace: str = NAMESPACE) -> dict[tuple[str, str], set[str]]:
    """What the Role of `eks-proxy verify-access` grants, read from the CLI's own output (as kubectl would)."""
    import subprocess
    import sys

    import yaml

    cli = Path(sys.executable).with_name("eks-proxy")
    text = subprocess.run(
        [str(cli), "verify-access", "--namespace", namespace], check=True, capture_output=True, text=True
    ).stdout
    documents = {d["kind"]: d for d in yaml.safe_load_all(text)}
    assert documents["Namespace"]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    binding = documents["RoleBinding"]
    assert binding["subjects"] == [
        {"kind": "Group", "name": "eks-proxy:verify", "apiGroup": "rbac.authorization.k8s.io"}
    ]
    assert binding["roleRef"]["name"] == documents["Role"]["metadata"]["name"]
    assert documents["Role"]["metadata"]["namespace"] == namespace
    return {
        (namespace, resource): set(rule["verbs"])
        for rule in documents["Role"]["rules"]
        for resource in rule["resources"]
        if rule["apiGroups"] == [""]
    }


def test_verification_needs_no_more_than_the_role_it_documents(
    handler: ModuleType, fake: FakeKubernetes, seam: list[PointedAtFake], moto_server: MotoServer, lambda_context: Any
) -> None:
    """Exactly the Role of `eks-proxy verify-access` (RBAC enforced by the fake API server) in a namespace enforcing
    the restricted Pod Security Standard: a pull, a failed pull (events read), leftovers deleted, all work."""
    nodes = _cluster_with_nodes(moto_server, {"ng-a": 2})["ng-a"]
    _script(fake, nodes, "pulled", "err_image_pull")
    fake.rbac = _manifest_rbac()
    fake.namespace_labels[NAMESPACE] = {"pod-security.kubernetes.io/enforce": "restricted"}
    fake.seed_pod(NAMESPACE, "eks-proxy-verify-old-0", {LABEL_MANAGED_BY: "eks-proxy", LABEL_NODEGROUP: "ng-a"})

    out = handler.lambda_handler(_task(), lambda_context)

    assert fake.forbidden == []
    assert [n["result"] for n in out["nodes"]] == ["pulled", "failed"]
    assert out["nodes"][1]["message"].startswith("Pending (ErrImagePull): Failed to pull image")  # from the events
    assert fake.pod_names() == []
    fake.rbac[(NAMESPACE, "pods")].discard("delete")  # one verb less and it shows: the check is real
    handler.lambda_handler(_task(), lambda_context)
    assert fake.forbidden and all(f.startswith("delete pods") for f in fake.forbidden)


def test_a_pod_that_breaks_the_restricted_standard_is_refused_by_the_fake(fake: FakeKubernetes) -> None:
    """The fake's admission check is real: a root pod is refused in a restricted namespace."""
    fake.namespace_labels[NAMESPACE] = {"pod-security.kubernetes.io/enforce": "restricted"}
    root = {"metadata": {"name": "root"}, "spec": {"containers": [{"name": "c", "image": IMAGE}]}}
    status, answer = fake.handle("POST", f"/api/v1/namespaces/{NAMESPACE}/pods", {}, root)
    assert status == 403 and "runAsNonRoot" in answer["message"]


def test_the_task_cannot_choose_the_image(
    handler: ModuleType, fake: FakeKubernetes, seam: list[PointedAtFake], moto_server: MotoServer, lambda_context: Any
) -> None:
    """Whoever can invoke the function gets VERIFY_IMAGE on the nodes, never an image of their choice."""
    nodes = _cluster_with_nodes(moto_server, {"ng-a": 1})["ng-a"]
    _script(fake, nodes, "pulled")
    buffer = structured_logs(handler)

    handler.lambda_handler({**_task(), "image": "evil.example/miner:latest"}, lambda_context)

    [pod] = fake.calls("POST", "/pods")
    assert pod.body is not None and pod.body["spec"]["containers"][0]["image"] == IMAGE
    assert "task image ignored" in buffer.getvalue()


def test_no_running_nodes_is_nothing_to_verify(
    handler: ModuleType, fake: FakeKubernetes, seam: list[PointedAtFake], moto_server: MotoServer, lambda_context: Any
) -> None:
    _cluster_with_nodes(moto_server, {"ng-other": 1})

    out = handler.lambda_handler(_task(), lambda_context)

    assert out == {"ok": True, "nodes": [], "summary": "node group ng-a has no running nodes: nothing to verify"}
    assert fake.calls("POST") == []


def test_unknown_cluster_fails_cleanly(handler: ModuleType, moto_server: MotoServer, lambda_context: Any) -> None:
    with pytest.raises(Exception, match=r"ResourceNotFound|No cluster found"):
        handler.lambda_handler(_task(), lambda_context)


def test_bad_input_is_refused(handler: ModuleType, lambda_context: Any) -> None:
    with pytest.raises(Exception, match="nodegroup"):
        handler.lambda_handler({"cluster": "prod", "nodegroup": "ng a; rm -rf /"}, lambda_context)


# -- the library directly: failure modes the handler cannot script ------------------------------------------------


def _client(fake: FakeKubernetes, token: str | None = None) -> KubernetesClient:
    from botocore.credentials import Credentials

    creds = Credentials("AKIDEXAMPLE", "secret")
    return KubernetesClient(
        fake.url, fake.ca_pem, (lambda: token) if token else (lambda: eks_token("prod", "eu-west-1", creds))
    )


def test_pods_deleted_when_creation_breaks_halfway(fake: FakeKubernetes) -> None:
    nodes = ["ip-10-0-1-1.eu-west-1.compute.internal", "ip-10-0-1-2.eu-west-1.compute.internal"]
    fake.seed_pod(NAMESPACE, "eks-proxy-verify-feedbeef-1", {"app": "squatter"})  # the second name is taken: 409

    with pytest.raises(VerificationError, match="409"):
        verify_pulls(
            _client(fake),
            nodes,
            nodegroup="ng-a",
            image=IMAGE,
            namespace=NAMESPACE,
            timeout_seconds=5,
            run_id="feedbeef",
        )

    assert fake.pod_names() == ["eks-proxy-verify-feedbeef-1"]  # ours deleted, the squatter untouched
    assert [r.path for r in fake.calls("DELETE")] == [
        f"/api/v1/namespaces/{NAMESPACE}/pods/eks-proxy-verify-feedbeef-0"
    ]


def test_rejected_token_says_what_to_grant(fake: FakeKubernetes) -> None:
    with pytest.raises(VerificationError, match="access entry"):
        verify_pulls(
            _client(fake, token="not-an-eks-token"), ["n1"], nodegroup="ng-a", image=IMAGE, namespace=NAMESPACE,
            timeout_seconds=5,
        )  # fmt: skip
    assert fake.unauthorized >= 1


def test_fake_api_server_checks_the_token(fake: FakeKubernetes, tmp_path: Path) -> None:
    """The fake's token check can fail: a presigned URL without the signed cluster header is refused."""
    assert fake.check_token("Bearer " + eks_token_without_header()) == "x-k8s-aws-id is not signed"


def eks_token_without_header() -> str:
    from botocore.credentials import Credentials
    from botocore.hooks import HierarchicalEmitter
    from botocore.model import ServiceId
    from botocore.signers import RequestSigner

    emitter = HierarchicalEmitter()
    signer = RequestSigner(ServiceId("sts"), "eu-west-1", "sts", "v4", Credentials("AKID", "s"), emitter)
    url = signer.generate_presigned_url(
        {"method": "GET", "url": "https://sts.eu-west-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15",
         "body": {}, "headers": {}, "context": {}},
        region_name="eu-west-1", expires_in=60, operation_name="",
    )  # fmt: skip
    return "k8s-aws-v1." + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


def test_budget_leaves_time_to_delete_the_pods(
    handler: ModuleType, fake: FakeKubernetes, seam: list[PointedAtFake], moto_server: MotoServer, lambda_context: Any
) -> None:
    """Asked for 240 s with 31 s of Lambda time left: polls for 1 s, then still deletes every pod."""
    nodes = _cluster_with_nodes(moto_server, {"ng-a": 1})["ng-a"]
    _script(fake, nodes, "never_scheduled")
    lambda_context.remaining_ms = 31_000

    out = handler.lambda_handler(_task(timeout=240), lambda_context)

    assert out["nodes"][0]["result"] == "timeout"
    assert out["nodes"][0]["message"].startswith("image not pulled within 1s")
    assert fake.pod_names() == []


def test_defaults_come_from_the_environment(
    handler: ModuleType, fake: FakeKubernetes, seam: list[PointedAtFake], moto_server: MotoServer, lambda_context: Any
) -> None:
    """A task input with only cluster and node group (or nulls) uses VERIFY_IMAGE / VERIFY_NAMESPACE."""
    nodes = _cluster_with_nodes(moto_server, {"ng-a": 1})["ng-a"]
    _script(fake, nodes, "pulled")

    out = handler.lambda_handler(
        {"cluster": "prod", "nodegroup": "ng-a", "image": None, "namespace": None, "timeout_seconds": None},
        lambda_context,
    )

    assert out["ok"] is True
    pod = fake.calls("POST", "/pods")[0]
    assert pod.path == "/api/v1/namespaces/eks-proxy-verify/pods"
    assert pod.body is not None and pod.body["spec"]["containers"][0]["image"] == "docker.io/library/busybox:1.36"


def test_api_server_blips_while_polling_are_ridden_out(fake: FakeKubernetes) -> None:
    nodes = ["ip-10-0-1-1.eu-west-1.compute.internal"]
    fake.outcomes[nodes[0]] = "pulled"
    fake.failing_polls = 2

    result = verify_pulls(
        _client(fake), nodes, nodegroup="ng-a", image=IMAGE, namespace=NAMESPACE, timeout_seconds=10, poll_seconds=0.01
    )

    assert result.ok, result.summary
    assert fake.failing_polls == 0  # both 503s were seen, and polling went on
    assert fake.pod_names() == []


def test_handler_logs_carry_the_change_id_as_correlation_id(
    handler: ModuleType,
    fake: FakeKubernetes,
    seam: list[PointedAtFake],
    moto_server: MotoServer,
    lambda_context: Any,
) -> None:
    """The saved query "what did the last rollout do" filters on correlation_id: the verify lines must have it."""
    _cluster_with_nodes(moto_server, {"ng-other": 1})

    buffer = structured_logs(handler)
    handler.lambda_handler({**_task(), "change_id": "evt-42"}, lambda_context)

    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    assert lines
    assert {line.get("correlation_id") for line in lines} == {"evt-42"}
