"""The EKS bearer token for the Kubernetes API, made the way ``aws eks get-token`` and aws-iam-authenticator make it.

Token = ``k8s-aws-v1.`` + base64url (no padding) of a presigned STS ``GetCallerIdentity`` URL whose signature covers
the header ``x-k8s-aws-id: <cluster name>`` (the presigning is `eks_proxy.aws.sts`). `EksTokenSource` hands out a
fresh-enough token per request, re-signing well inside the URL's 60 seconds.

>>> from eks_proxy.aws.sts import example_credentials
>>> token = eks_token("prod", "eu-west-1", example_credentials())
>>> token.startswith("k8s-aws-v1.") and "=" not in token
True
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any

from eks_proxy.aws.sts import presigned_caller_identity_url

TOKEN_PREFIX = "k8s-aws-v1."  # noqa: S105 - a public format marker, not a secret
# Re-sign well inside the presigned URL's 60 s: signing is local HMAC work, far cheaper than a rejected request.
TOKEN_REUSE_SECONDS = 45.0


def eks_token(cluster_name: str, region: str, credentials: Any) -> str:
    """A bearer token for the Kubernetes API of ``cluster_name`` (botocore ``Credentials``; never logged)."""
    url = presigned_caller_identity_url(cluster_name, region, credentials)
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
