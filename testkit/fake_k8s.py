"""A local fake Kubernetes API server: HTTPS with a test CA, just the endpoints pull verification uses.

Endpoints: namespaces (get, create), pods (create, get, list with labelSelector, delete), events (list with
fieldSelector). Every request needs ``Authorization: Bearer k8s-aws-v1.<base64url presigned STS URL>`` whose URL
is a GetCallerIdentity presigned with ``x-k8s-aws-id`` signed, as EKS's authenticator checks it.

Each node gets a scripted outcome, played when the kubelet would: the first look at a new pod shows it Pending
(ContainerCreating), the next ones show the outcome:

- ``pulled``:          container terminated (exit 0) with an imageID, phase Succeeded, a Normal "Pulled" event
- ``err_image_pull``:  waiting ErrImagePull + the kubelet's Warning events ("Failed to pull image ...")
- ``never_scheduled``: stays Pending with no container status and no events (a node that never picks it up)

Every request is recorded (method, path, query, body) so tests can prove pods were always deleted.

Example::

    fake = FakeKubernetes(cert, outcomes={"ip-10-0-1-7.eu-west-1.compute.internal": "pulled"})
    fake.start(); ...; fake.stop()
    fake.url, fake.ca_pem          # what DescribeCluster would return (endpoint, CA)
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from testkit.nodesim.pki import ServerCert

Outcome = Literal["pulled", "err_image_pull", "never_scheduled"]

PULL_ERROR = (
    'failed to pull and unpack image "{image}": failed to resolve reference "{image}": failed to do request: '
    'Head "https://registry-1.docker.io/v2/library/busybox/manifests/1.36": '
    "proxyconnect tcp: dial tcp 10.0.0.10:3128: connect: connection refused"
)


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    body: dict[str, Any] | None


@dataclass
class _Pod:
    obj: dict[str, Any]
    looks: int = 0  # how many times it was read: the scripted outcome appears from the second look on


@dataclass
class FakeKubernetes:
    cert: ServerCert
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    namespaces: set[str] = field(default_factory=lambda: {"default", "kube-system", "eks-proxy-verify"})
    allow_namespace_create: bool = False  # a namespace-scoped access policy cannot create namespaces
    cluster: str = "prod"
    requests: list[Recorded] = field(default_factory=list)
    pods: dict[tuple[str, str], _Pod] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    unauthorized: int = 0  # requests refused for a bad token
    failing_polls: int = 0  # the next N pod LISTs of a run answer 503 (an API server blip)
    # RBAC as a namespaced Role would grant it: {(namespace, resource): {verbs}}; None = everything allowed.
    rbac: dict[tuple[str, str], set[str]] | None = None
    namespace_labels: dict[str, dict[str, str]] = field(default_factory=dict)  # Pod Security labels, per namespace
    forbidden: list[str] = field(default_factory=list)  # "verb resource in namespace" refused by rbac
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> FakeKubernetes:
        fake = self

        class Handler(_Handler):
            api = fake

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(self.cert.cert), str(self.cert.key))
        server.socket = context.wrap_socket(server.socket, server_side=True)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    @property
    def ca_pem(self) -> str:
        return self.cert.ca.read_text()

    # -- test helpers ----------------------------------------------------------------------------------------
    def seed_pod(self, namespace: str, name: str, labels: dict[str, str], node: str = "ip-old") -> None:
        """A pod already there (e.g. left behind by an interrupted earlier run)."""
        self.pods[(namespace, name)] = _Pod(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": namespace, "labels": labels},
                "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}]},
                "status": {"phase": "Pending"},
            }
        )

    def pod_names(self, namespace: str = "eks-proxy-verify") -> list[str]:
        return sorted(name for ns, name in self.pods if ns == namespace)

    def calls(self, method: str, fragment: str = "") -> list[Recorded]:
        return [r for r in self.requests if r.method == method and fragment in r.path]

    # -- the API ---------------------------------------------------------------------------------------------
    def handle(self, method: str, path: str, query: dict[str, str], body: dict[str, Any] | None) -> tuple[int, Any]:
        parts = [p for p in path.split("/") if p]
        with self._lock:
            if parts[:2] != ["api", "v1"]:
                return _status(404, "NotFound", f"the server could not find the requested resource ({path})")
            rest = parts[2:]
            denied = self._authorize(method, rest)
            if denied is not None:
                return denied
            if rest == ["namespaces"] and method == "POST":
                return self._create_namespace(body or {})
            if len(rest) == 2 and rest[0] == "namespaces" and method == "GET":
                if rest[1] in self.namespaces:
                    return 200, {"kind": "Namespace", "metadata": {"name": rest[1]}, "status": {"phase": "Active"}}
                return _status(404, "NotFound", f'namespaces "{rest[1]}" not found', kind="namespaces")
            if len(rest) >= 3 and rest[0] == "namespaces":
                namespace, resource, name = rest[1], rest[2], (rest[3] if len(rest) > 3 else None)
                if resource == "pods":
                    return self._pods(method, namespace, name, query, body)
                if resource == "events" and method == "GET" and name is None:
                    return 200, {"kind": "EventList", "items": self._events(namespace, query)}
            return _status(405, "MethodNotAllowed", f"{method} {path} is not served by the fake")

    def _create_namespace(self, body: dict[str, Any]) -> tuple[int, Any]:
        name = body.get("metadata", {}).get("name", "")
        if not self.allow_namespace_create:
            return _status(
                403,
                "Forbidden",
                'namespaces is forbidden: User "arn:aws:sts::123456789012:assumed-role/eks-proxy-verify/fn" '
                'cannot create resource "namespaces" in API group "" at the cluster scope',
                kind="namespaces",
            )
        if name in self.namespaces:
            return _status(409, "AlreadyExists", f'namespaces "{name}" already exists', kind="namespaces")
        self.namespaces.add(name)
        self.namespace_labels[name] = dict(body.get("metadata", {}).get("labels") or {})
        return 201, body

    def _authorize(self, method: str, rest: list[str]) -> tuple[int, Any] | None:
        """Kubernetes RBAC for a namespaced Role: the verb from the method (and whether a name is given)."""
        if self.rbac is None:
            return None
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, resource, named = rest[1], rest[2], len(rest) > 3
        else:
            namespace, resource, named = "", rest[0] if rest else "", len(rest) > 1  # cluster scope
        verb = {"POST": "create", "DELETE": "delete"}.get(method, "get" if named else "list")
        if verb in self.rbac.get((namespace, resource), set()):
            return None
        where = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
        self.forbidden.append(f"{verb} {resource} {where}")
        return _status(403, "Forbidden", f'{resource} is forbidden: cannot {verb} resource "{resource}" {where}')

    def _restricted_violations(self, pod: dict[str, Any]) -> list[str]:
        """What Pod Security admission's "restricted" level would refuse (the checks that apply to our pods)."""
        spec = pod.get("spec") or {}
        pod_context = spec.get("securityContext") or {}
        problems = []
        for container in spec.get("containers") or []:
            context = container.get("securityContext") or {}
            if not (context.get("runAsNonRoot") or pod_context.get("runAsNonRoot")):
                problems.append("runAsNonRoot != true")
            seccomp = (context.get("seccompProfile") or pod_context.get("seccompProfile") or {}).get("type")
            if seccomp not in ("RuntimeDefault", "Localhost"):
                problems.append("seccompProfile")
            if context.get("allowPrivilegeEscalation") is not False:
                problems.append("allowPrivilegeEscalation != false")
            if "ALL" not in ((context.get("capabilities") or {}).get("drop") or []):
                problems.append("unrestricted capabilities")
            if context.get("privileged"):
                problems.append("privileged")
            if 0 in (context.get("runAsUser"), pod_context.get("runAsUser")):
                problems.append("runAsUser=0")
        if spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC"):
            problems.append("host namespaces")
        if any("hostPath" in volume for volume in spec.get("volumes") or []):
            problems.append("hostPath volumes")
        return problems

    def _pods(
        self, method: str, namespace: str, name: str | None, query: dict[str, str], body: dict[str, Any] | None
    ) -> tuple[int, Any]:
        if method == "POST" and name is None:
            if namespace not in self.namespaces:
                return _status(404, "NotFound", f'namespaces "{namespace}" not found', kind="namespaces")
            assert body is not None
            if self.namespace_labels.get(namespace, {}).get("pod-security.kubernetes.io/enforce") == "restricted":
                problems = self._restricted_violations(body)
                if problems:
                    return _status(403, "Forbidden", f"violates PodSecurity restricted:latest: {', '.join(problems)}")
            pod_name = body["metadata"]["name"]
            if (namespace, pod_name) in self.pods:
                return _status(409, "AlreadyExists", f'pods "{pod_name}" already exists', kind="pods")
            obj = json.loads(json.dumps(body))
            obj["status"] = {"phase": "Pending"}
            self.pods[(namespace, pod_name)] = _Pod(obj)
            return 201, obj
        if method == "GET" and name is None:
            selector = _parse_selector(query.get("labelSelector", ""))
            if self.failing_polls and "eks-proxy/run" in selector:
                self.failing_polls -= 1
                return _status(503, "ServiceUnavailable", "the server is currently unable to handle the request")
            items = [
                self._look(pod)
                for (ns, _), pod in sorted(self.pods.items())
                if ns == namespace and _matches(pod.obj["metadata"].get("labels") or {}, selector)
            ]
            return 200, {"kind": "PodList", "items": items}
        pod = self.pods.get((namespace, name or ""))
        if pod is None:
            return _status(404, "NotFound", f'pods "{name}" not found', kind="pods")
        if method == "GET":
            return 200, self._look(pod)
        if method == "DELETE":
            del self.pods[(namespace, name or "")]
            return 200, pod.obj
        return _status(405, "MethodNotAllowed", f"{method} pods")

    def _look(self, pod: _Pod) -> dict[str, Any]:
        """Return the pod as the kubelet would have moved it along by now."""
        pod.looks += 1
        node = pod.obj["spec"].get("nodeName", "")
        outcome = self.outcomes.get(node, "never_scheduled")
        if outcome == "never_scheduled" or "containers" not in pod.obj["spec"]:
            return pod.obj
        image = pod.obj["spec"]["containers"][0]["image"]
        if pod.looks == 1:
            pod.obj["status"] = {
                "phase": "Pending",
                "containerStatuses": [
                    {"name": "pull", "image": image, "imageID": "", "ready": False, "restartCount": 0,
                     "state": {"waiting": {"reason": "ContainerCreating"}}}
                ],
            }  # fmt: skip
            self._event(pod, "Normal", "Pulling", f'Pulling image "{image}"')
            return pod.obj
        if pod.looks == 2 and outcome == "pulled":
            digest = "sha256:" + "ab" * 32
            pod.obj["status"] = {
                "phase": "Succeeded",
                "containerStatuses": [
                    {"name": "pull", "image": image, "imageID": f"{image.split(':')[0]}@{digest}", "ready": False,
                     "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
                ],
            }  # fmt: skip
            self._event(pod, "Normal", "Pulled", f'Successfully pulled image "{image}" in 1.2s')
        elif pod.looks == 2 and outcome == "err_image_pull":
            message = PULL_ERROR.format(image=image)
            pod.obj["status"] = {
                "phase": "Pending",
                "containerStatuses": [
                    {"name": "pull", "image": image, "imageID": "", "ready": False, "restartCount": 0,
                     "state": {"waiting": {"reason": "ErrImagePull",
                                           "message": f"rpc error: code = Unknown desc = {message}"}}}
                ],
            }  # fmt: skip
            self._event(pod, "Warning", "Failed", f'Failed to pull image "{image}": {message}')
            self._event(pod, "Warning", "Failed", "Error: ErrImagePull")
        return pod.obj

    def _event(self, pod: _Pod, kind: str, reason: str, message: str) -> None:
        meta = pod.obj["metadata"]
        self.events.append(
            {
                "kind": "Event",
                "metadata": {"name": f"{meta['name']}.{len(self.events)}", "namespace": meta["namespace"]},
                "involvedObject": {"kind": "Pod", "name": meta["name"], "namespace": meta["namespace"]},
                "type": kind,
                "reason": reason,
                "message": message,
                "source": {"component": "kubelet", "host": pod.obj["spec"].get("nodeName", "")},
            }
        )

    def _events(self, namespace: str, query: dict[str, str]) -> list[dict[str, Any]]:
        wanted = _parse_selector(query.get("fieldSelector", ""))
        out = []
        for event in self.events:
            if event["metadata"]["namespace"] != namespace:
                continue
            fields = {f"involvedObject.{k}": v for k, v in event["involvedObject"].items()}
            if _matches(fields, wanted):
                out.append(event)
        return out

    def check_token(self, header: str) -> str | None:
        """None when the bearer token is an EKS token for this cluster's STS check, else why not."""
        prefix = "Bearer k8s-aws-v1."
        if not header.startswith(prefix):
            return "no EKS bearer token"
        body = header.removeprefix(prefix)
        try:
            url = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
        except ValueError:
            return "token is not base64url"
        parts = urlsplit(url)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if not parts.netloc.startswith("sts.") or query.get("Action") != "GetCallerIdentity":
            return "token is not a presigned STS GetCallerIdentity URL"
        if "x-k8s-aws-id" not in query.get("X-Amz-SignedHeaders", "").split(";"):
            return "x-k8s-aws-id is not signed"
        if query.get("X-Amz-Expires") != "60":
            return "X-Amz-Expires is not 60"
        return None


class PointedAtFake:
    """An EKS client whose DescribeCluster comes from moto, with endpoint + CA swapped for the fake API server's.

    moto's DescribeCluster answers with a made-up endpoint and a random "CA": this is the one seam between the verify
    handler and the fake API server; the handler's own parsing of the answer still runs. `described` lists the
    clusters asked for.
    """

    def __init__(self, eks: Any, fake: FakeKubernetes) -> None:
        self._eks = eks
        self._fake = fake
        self.described: list[str] = []

    def describe_cluster(self, name: str) -> dict[str, Any]:
        answer: dict[str, Any] = self._eks.describe_cluster(name=name)  # moto over HTTP: the cluster must exist
        self.described.append(answer["cluster"]["name"])
        answer["cluster"]["endpoint"] = self._fake.url
        answer["cluster"]["certificateAuthority"] = {"data": base64.b64encode(self._fake.ca_pem.encode()).decode()}
        return answer


class _Handler(BaseHTTPRequestHandler):
    api: FakeKubernetes
    protocol_version = "HTTP/1.1"  # keep-alive, like a real API server
    disable_nagle_algorithm = True  # as Go's net/http does: no 40 ms delayed-ACK stall between header and body

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self, method: str) -> None:
        split = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(split.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.api.requests.append(Recorded(method, split.path, query, body))
        problem = self.api.check_token(self.headers.get("Authorization", ""))
        if problem:
            self.api.unauthorized += 1
            status, payload = _status(401, "Unauthorized", problem)
        else:
            status, payload = self.api.handle(method, split.path, query, body)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")


def _status(code: int, reason: str, message: str, kind: str = "") -> tuple[int, dict[str, Any]]:
    status: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if kind:
        status["details"] = {"kind": kind}
    return code, status


def _parse_selector(text: str) -> dict[str, str]:
    out = {}
    for term in filter(None, text.split(",")):
        key, _, value = term.partition("=")
        out[key.strip()] = value.strip()
    return out


def _matches(labels: dict[str, str], selector: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())
