"""STS: the presigned ``GetCallerIdentity`` URL that an EKS bearer token wraps (signed here, never sent by us).

The API server hands that URL to STS to learn who we are. Signing is local HMAC work with botocore's
``RequestSigner``, exactly as aws-iam-authenticator's reference does it: ``GET
https://sts.<region>.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15``, valid 60 seconds, with the header
``x-k8s-aws-id: <cluster name>`` among the signed headers (a URL for one cluster is useless for another).

>>> url = presigned_caller_identity_url("prod", "eu-west-1", example_credentials())
>>> url.startswith("https://sts.eu-west-1.amazonaws.com/?Action=GetCallerIdentity") and "x-k8s-aws-id" in url
True
"""

from __future__ import annotations

from typing import Any

CLUSTER_ID_HEADER = "x-k8s-aws-id"
PRESIGN_EXPIRES_SECONDS = 60
_STS_QUERY = "Action=GetCallerIdentity&Version=2011-06-15"


def sts_host(region: str) -> str:
    """The regional STS endpoint the token is presigned for (the API server only accepts STS hosts).

    >>> sts_host("eu-west-1"), sts_host("cn-north-1")
    ('sts.eu-west-1.amazonaws.com', 'sts.cn-north-1.amazonaws.com.cn')
    """
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"sts.{region}.{suffix}"


def presigned_caller_identity_url(cluster_name: str, region: str, credentials: Any) -> str:
    """The presigned STS URL for ``cluster_name`` (botocore ``Credentials``; the URL is a secret: never logged)."""
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
    return url


def example_credentials() -> Any:
    """AWS's documented example key pair, for examples and tests (signs nothing anyone accepts)."""
    from botocore.credentials import Credentials

    return Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
