"""Talk to an EKS cluster's Kubernetes API from Lambda: the EKS bearer token and a minimal JSON client.

The token is what ``aws eks get-token`` and aws-iam-authenticator produce: ``k8s-aws-v1.`` + base64url (no padding)
of a presigned STS ``GetCallerIdentity`` URL whose signature covers the header ``x-k8s-aws-id: <cluster name>``.
The API server hands that URL to STS to learn who we are; nothing here sends it to STS ourselves.

The client is ``http.client`` + ``ssl`` from the standard library: the verification needs six endpoints (pods,
events, namespaces), so a client library would add megabytes (lightkube with its dependencies: ~9 MB unpacked;
the official client: ~100 MB) for JSON we can write in a few lines. No dependency on the runtime's urllib3 version.

>>> token = eks_token("prod", "eu-west-1", _example_credentials())
>>> token.startswith("k8s-aws-v1.") and "=" not in token
True
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

TOKEN_PREFIX = "k8s-aws-v1."  # noqa: S105 - a public format marker, not a secret
CLUSTER_ID_HEADER = "x-k8s-aws-id"
PRESIGN_EXPIRES_SECONDS = 60
# Re-sign well inside the presigned URL's 60 s: signing is local HMAC work, far cheaper than a rejected request.
TOKEN_REUSE_SECONDS = 45.0
_STS_QUERY = "Action=GetCallerIdentity&Version=2011-06-15"


def sts_host(region: str) -> str:
    """The regional STS endpoint the token is presigned for (the API server only accepts STS hosts).

    >>> sts_host("eu-west-1"), sts_host("cn-north-1")
    ('sts.eu-west-1.amazonaws.com', 'sts.cn-north-1.amazonaws.com.cn')
    """
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"sts.{region}.{suffix}"


def eks_token(cluster_name: str, region: str, credentials: Any) -> str:
    """A bearer token for the Kubernetes API of ``cluster_name`` (botocore ``Credentials``; never logged).

    Signed exactly as aws-iam-authenticator's reference does it: botocore's ``RequestSigner`` presigns
    ``GET https://sts.<region>.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15`` for 60 seconds with
    ``x-k8s-aws-id`` among the signed headers.
    """
    from botocore.hooks import HierarchicalEmitter  # botocore comes with the Lambda runtime; imported when used
    from botocore.model import ServiceId
    from botocore.signers import RequestSigner

    emitter = HierarchicalEmitter()  # RequestSigner keeps only a weak reference: hold it for the whole call
    signer = RequestSigner(ServiceId("sts"), region, "sts", "v4", credentials, emitter)
    request = {
        "method": "GET",
        "url": f"https://{sts_host(region)}/?{_STS_QUERY}",
        "body": {},
        "headers": {CLUSTER_ID_HEADER: cluster_name},
        "context": {},
    }
    url: str = signer.generate_presigned_url(
        request, region_name=region, expires_in=PRESIGN_EXPIRES_SECONDS, operation_name=""
    )
    return TOKEN_PREFIX + base64.urlsafe_b64encode(url.encode("utf-8")).decode("ascii").rstrip("=")


class EksTokenSource:
    """Hands out a fresh-enough token for one cluster; re-signs after ``TOKEN_REUSE_SECONDS``."""

    def __init__(
        self, cluster_name: str, region: str, credentials: Any, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._cluster = cluster_name
        self._region = region
        self._credentials = credentials
        self._clock = clock
        self._token = ""
        self._signed_at = float("-inf")

    def __call__(self) -> str:
        now = self._clock()
        if now - self._signed_at >= TOKEN_REUSE_SECONDS:
            self._token = eks_token(self._cluster, self._region, self._credentials)
            self._signed_at = now
        return self._token

    def __repr__(self) -> str:  # never show the token
        return f"EksTokenSource(cluster={self._cluster!r}, region={self._region!r})"


@dataclass(frozen=True)
class ClusterAccess:
    """Where a cluster's API server is and which CA signs its certificate (from DescribeCluster)."""

    name: str
    endpoint: str  # https://ABC.gr7.eu-west-1.eks.amazonaws.com
    ca_pem: str


def cluster_access(eks: Any, cluster_name: str) -> ClusterAccess:
    """Read the API endpoint and CA of ``cluster_name`` with ``eks:DescribeCluster``."""
    cluster = eks.describe_cluster(name=cluster_name)["cluster"]
    endpoint = cluster.get("endpoint") or ""
    ca_data = (cluster.get("certificateAuthority") or {}).get("data") or ""
    if not endpoint or not ca_data:
        raise KubernetesApiError(0, "NotReady", f"cluster {cluster_name} has no API endpoint or CA yet")
    return ClusterAccess(cluster_name, endpoint, base64.b64decode(ca_data).decode("ascii"))


class KubernetesApiError(Exception):
    """A request the API server refused (``status`` 0: it was never answered); message from its Status object."""

    def __init__(self, status: int, reason: str, message: str, kind: str = "") -> None:
        super().__init__(f"{status} {reason}: {message}" if status else message)
        self.status = status
        self.reason = reason
        self.message = message
        self.kind = kind  # Status.details.kind, e.g. "namespaces" when the namespace is missing


class KubernetesClient:
    """Just enough of the Kubernetes REST API: JSON in, JSON out, one kept-alive TLS connection.

    ``token`` is called for every request (see :class:`EksTokenSource`), so a long poll never sends a stale token.
    """

    def __init__(
        self,
        endpoint: str,
        ca_pem: str,
        token: Callable[[], str],
        *,
        timeout: float = 10.0,
    ) -> None:
        parts = urlsplit(endpoint)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError("the Kubernetes API endpoint must be an https:// URL")
        self._host = parts.hostname
        self._port = parts.port or 443
        self._context = ssl.create_default_context(cadata=ca_pem)
        self._token = token
        self._timeout = timeout
        self._conn: http.client.HTTPSConnection | None = None
        self.requests = 0  # how many API calls were made (the benchmark reports it)

    def __repr__(self) -> str:
        return f"KubernetesClient(https://{self._host}:{self._port})"

    def get(self, path: str, **query: str) -> dict[str, Any]:
        return self.request("GET", path, query=query)

    def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.request("POST", path, body=body)

    def delete(self, path: str, **query: str) -> dict[str, Any]:
        return self.request("DELETE", path, query=query)

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Send one request; return the decoded JSON body or raise :class:`KubernetesApiError`."""
        target = path + (f"?{urlencode(query)}" if query else "")
        payload = json.dumps(body).encode("utf-8") if body is not None else None
        headers = {"Accept": "application/json", "User-Agent": "eks-proxy"}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            reused = self._conn is not None
            conn = self._connection()
            headers["Authorization"] = f"Bearer {self._token()}"
            try:
                conn.request(method, target, body=payload, headers=headers)
                response = conn.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                self.close()
                if reused and attempt == 1:
                    continue  # the server closed an idle kept-alive connection: one fresh try
                raise KubernetesApiError(0, "Unreachable", f"Kubernetes API {self._host}: {exc}") from None
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                raise KubernetesApiError(0, "Unreachable", f"Kubernetes API {self._host}: {exc}") from None
            self.requests += 1
            if response.getheader("Connection", "").lower() == "close":
                self.close()
            return _decode(response.status, data)
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> http.client.HTTPSConnection:
        if self._conn is None:
            self._conn = http.client.HTTPSConnection(
                self._host, self._port, context=self._context, timeout=self._timeout
            )
        return self._conn


def _decode(status: int, data: bytes) -> dict[str, Any]:
    try:
        document = json.loads(data) if data else {}
    except ValueError:
        document = {}
    if not isinstance(document, dict):
        document = {}
    if 200 <= status < 300:
        return document
    details = document.get("details") or {}
    message = str(document.get("message") or data[:200].decode("utf-8", "replace") or "no message")
    raise KubernetesApiError(status, str(document.get("reason") or "Error"), message, str(details.get("kind") or ""))


def path(*segments: str) -> str:
    """An API path with each segment escaped: ``path("api/v1", "namespaces", ns, "pods")``.

    >>> path("api/v1", "namespaces", "eks-proxy-verify", "pods")
    '/api/v1/namespaces/eks-proxy-verify/pods'
    """
    head, *rest = segments
    return "/" + head.strip("/") + "".join("/" + quote(s, safe="") for s in rest)


def _example_credentials() -> Any:
    from botocore.credentials import Credentials

    return Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
