"""The boto3 clients the engine uses, created lazily (never at import: handler cold starts stay cheap).

Every client honours `AWS_ENDPOINT_URL` (botocore reads it), which is how the tests and `make demo` point everything
at a moto server.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from botocore.config import Config

# Standard retry mode backs off on throttling; the state machine retries the rest.
_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=30)


class AwsClients:
    """The boto3 clients the engine uses, created on first use (one session per instance)."""

    def __init__(self, region: str | None = None, session: Any = None) -> None:
        self._region = region
        self._session = session

    @property
    def session(self) -> Any:
        if self._session is None:
            import boto3  # deferred: importing boto3 is the bulk of a cold start, done once per process

            self._session = boto3.session.Session()
        return self._session

    def _client(self, service: str) -> Any:
        return self.session.client(service, region_name=self._region, config=_CONFIG)

    def credentials(self) -> Any:
        """The session's credentials (botocore `Credentials`, refreshed by botocore): for presigning, never logged."""
        return self.session.get_credentials()

    @cached_property
    def eks(self) -> Any:
        return self._client("eks")

    @cached_property
    def ec2(self) -> Any:
        return self._client("ec2")

    @cached_property
    def ssm(self) -> Any:
        return self._client("ssm")

    @cached_property
    def sfn(self) -> Any:
        return self._client("stepfunctions")

    @cached_property
    def sns(self) -> Any:
        return self._client("sns")

    @cached_property
    def cloudformation(self) -> Any:
        return self._client("cloudformation")

    @property
    def region(self) -> str:
        return str(self.eks.meta.region_name)
