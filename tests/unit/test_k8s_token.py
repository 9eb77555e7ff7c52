"""The EKS bearer token: decoded and checked field by field, and compared with `aws eks get-token`'s own way."""

from __future__ import annotations

import base64
import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from botocore.credentials import Credentials
from eks_proxy.checks.eks_token import EksTokenSource, eks_token

CREDS = Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "session-token-example")
FROZEN = datetime.datetime(2026, 11, 25, 1, 2, 3)


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore stamps X-Amz-Date from botocore.auth.get_current_datetime: pin it so two signings are comparable."""
    import botocore.auth

    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: FROZEN)


def _decode(token: str) -> str:
    assert token.startswith("k8s-aws-v1.")
    body = token.removeprefix("k8s-aws-v1.")
    assert "=" not in body, "base64url without padding"
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()


def test_token_is_a_presigned_get_caller_identity_url(frozen_clock: None) -> None:
    url = _decode(eks_token("prod", "eu-west-1", CREDS))

    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert parts.scheme == "https"
    assert parts.netloc == "sts.eu-west-1.amazonaws.com"
    assert query["Action"] == "GetCallerIdentity"
    assert query["Version"] == "2011-06-15"
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert query["X-Amz-Credential"] == "AKIAIOSFODNN7EXAMPLE/20261125/eu-west-1/sts/aws4_request"
    assert query["X-Amz-Date"] == "20261125T010203Z"
    assert query["X-Amz-Expires"] == "60"
    assert query["X-Amz-SignedHeaders"].split(";") == ["host", "x-k8s-aws-id"]
    assert query["X-Amz-Security-Token"] == "session-token-example"
    assert len(query["X-Amz-Signature"]) == 64
    # The cluster name is signed, never sent in the URL (the API server adds the header when it calls STS).
    assert "prod" not in url


def _aws_cli_get_token(cluster: str, region: str) -> str:
    """`aws eks get-token`'s recipe (awscli/customizations/eks/get_token.py): an STS client whose
    GetCallerIdentity gets the x-k8s-aws-id header injected before signing, presigned for 60 s."""
    sts = boto3.session.Session().client(
        "sts",
        region_name=region,
        aws_access_key_id=CREDS.access_key,
        aws_secret_access_key=CREDS.secret_key,
        aws_session_token=CREDS.token,
    )

    def keep_cluster_id(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if "x-k8s-aws-id" in params:
            context["x-k8s-aws-id"] = params.pop("x-k8s-aws-id")

    def add_header(request: Any, **_: Any) -> None:
        if "x-k8s-aws-id" in request.context:
            request.headers["x-k8s-aws-id"] = request.context["x-k8s-aws-id"]

    sts.meta.events.register("provide-client-params.sts.GetCallerIdentity", keep_cluster_id)
    sts.meta.events.register("before-sign.sts.GetCallerIdentity", add_header)
    url = sts.generate_presigned_url(
        "get_caller_identity", Params={"x-k8s-aws-id": cluster}, ExpiresIn=60, HttpMethod="GET"
    )
    return "k8s-aws-v1." + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


@pytest.mark.parametrize("region", ["eu-west-1", "us-east-1"])
def test_token_matches_aws_cli_presigning(frozen_clock: None, monkeypatch: pytest.MonkeyPatch, region: str) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)  # the real STS host, as in Lambda

    assert eks_token("prod-cluster", region, CREDS) == _aws_cli_get_token("prod-cluster", region)


def test_signature_depends_on_the_cluster_name(frozen_clock: None) -> None:
    """The header is part of the signature: a token for one cluster is useless for another."""
    assert eks_token("prod", "eu-west-1", CREDS) != eks_token("staging", "eu-west-1", CREDS)


def test_token_source_reuses_then_resigns(monkeypatch: pytest.MonkeyPatch) -> None:
    import eks_proxy.checks.eks_token as k8s

    signed: list[str] = []
    monkeypatch.setattr(k8s, "eks_token", lambda cluster, region, creds: signed.append(cluster) or f"t{len(signed)}")
    now = [0.0]
    source = EksTokenSource("prod", "eu-west-1", CREDS, clock=lambda: now[0])

    assert source() == "t1"
    now[0] = 44.0
    assert source() == "t1"  # reused inside the window
    now[0] = 45.0
    assert source() == "t2"  # re-signed before the presigned URL's 60 s run out
    assert signed == ["prod", "prod"]
    assert "t2" not in repr(source)
