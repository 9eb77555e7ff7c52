"""A minimal JSON client for an EKS cluster's Kubernetes API, from Lambda.

``http.client`` + ``ssl`` from the standard library: the verification needs six endpoints (pods, events,
namespaces), so a client library would add megabytes (lightkube with its dependencies: ~9 MB unpacked; the official
client: ~100 MB) for JSON we can write in a few lines. No dependency on the runtime's urllib3 version. The bearer
token comes from `eks_proxy.checks.eks_token`, the endpoint and CA from `eks_proxy.aws.eks.cluster_access`.

>>> KubernetesClient("http://10.0.0.1", "", lambda: "")
Traceback (most recent call last):
...
ValueError: the Kubernetes API endpoint must be an https:// URL
"""

from __future__ import annotations

import http.client
import json
import ssl
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, urlencode, urlsplit


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
