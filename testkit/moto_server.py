"""A moto server on loopback, reached over HTTP by boto3 exactly as real AWS would be."""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from testkit.repo import free_port


class MotoServer:
    """One in-process moto server (``ThreadedMotoServer``) on a free port of 127.0.0.1."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()

    def reset(self) -> None:
        req = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        urllib.request.urlopen(req, timeout=60).read()  # a reset on a loaded machine can take more than 10 s

    def client(self, service: str, region: str = "eu-west-1") -> Any:
        import boto3

        return boto3.client(service, region_name=region, endpoint_url=self.url)

    def execute_state_machines(self, execute: bool) -> None:
        """Switch moto's Step Functions engine on (executions run the ASL for real) or off (moto's default)."""
        body = json.dumps({"stepfunctions": {"execute_state_machine": execute}}).encode()
        request = urllib.request.Request(f"{self.url}/moto-api/config", data=body, method="POST")
        urllib.request.urlopen(request, timeout=10).read()


@contextmanager
def serving() -> Iterator[MotoServer]:
    """A started server with AWS_ENDPOINT_URL pointing at it (restored and the server stopped on exit)."""
    server = MotoServer()
    server.start()
    old = os.environ.get("AWS_ENDPOINT_URL")
    os.environ["AWS_ENDPOINT_URL"] = server.url
    try:
        yield server
    finally:
        if old is None:
            os.environ.pop("AWS_ENDPOINT_URL", None)
        else:
            os.environ["AWS_ENDPOINT_URL"] = old
        server.stop()
