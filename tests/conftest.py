"""Fixtures shared by the whole suite: tool requirements, the moto server, event samples, handler loading."""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import os
import shutil
import socket
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
EVENTS = REPO / "events"
FUNCTIONS = REPO / "functions"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

# Never let a test reach real AWS: fake credentials and a fixed region for every test process.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_SESSION_TOKEN", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")
os.environ.setdefault("AWS_REGION", "eu-west-1")
os.environ.pop("AWS_PROFILE", None)
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "EksProxyTest")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "eks-proxy-test")


def require_tool(*names: str) -> None:
    """Skip when a tool is missing on a developer machine; fail under CI, where .ci/run must have installed it."""
    missing = [n for n in names if shutil.which(n) is None]
    if not missing:
        return
    message = f"required tool(s) not installed: {', '.join(missing)}"
    if IN_CI:
        pytest.fail(message + " (CI must install them: see .ci/run)")
    pytest.skip(message)


def require_root() -> None:
    if os.geteuid() == 0:
        return
    if IN_CI:
        pytest.fail("the node simulation needs root (network namespaces)")
    pytest.skip("needs root for network namespaces")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load_event(name: str) -> dict[str, Any]:
    """One sample from events/, exactly as `sam local invoke -e events/<name>` would send it."""
    path = EVENTS / (name if name.endswith(".json") else f"{name}.json")
    return json.loads(path.read_text())  # type: ignore[no-any-return]


@pytest.fixture
def event() -> Any:
    return load_event


@pytest.fixture(autouse=True)
def _restore_environment() -> Iterator[None]:
    """load_handler and the moto fixtures write into os.environ; every test gets it back as it was."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def load_handler(function: str, env: dict[str, str] | None = None) -> ModuleType:
    """Import functions/<function>/app.py under a unique module name (several functions each have an app.py)."""
    if env:
        os.environ.update(env)
    path = FUNCTIONS / function / "app.py"
    name = f"handler_{function}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def structured_logs(module: ModuleType) -> io.StringIO:
    """Send a handler module's JSON log lines (Powertools Logger -> stdout) to a buffer the test can read."""
    buffer = io.StringIO()
    for log_handler in module.logger.handlers:
        if isinstance(log_handler, logging.StreamHandler):
            log_handler.setStream(buffer)
    return buffer


class MotoServer:
    """A moto server on loopback, reached over HTTP by boto3 exactly as real AWS would be."""

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
        urllib.request.urlopen(req, timeout=10).read()

    def client(self, service: str, region: str = "eu-west-1") -> Any:
        import boto3

        return boto3.client(service, region_name=region, endpoint_url=self.url)


@pytest.fixture(scope="session")
def moto_server_session() -> Iterator[MotoServer]:
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


@pytest.fixture
def moto_server(moto_server_session: MotoServer) -> Iterator[MotoServer]:
    """A clean moto server for each test (state reset before the test)."""
    moto_server_session.reset()
    os.environ["AWS_ENDPOINT_URL"] = moto_server_session.url
    yield moto_server_session
