"""Fixtures shared by the whole suite, thin wrappers over testkit/: the moto server, event samples, environment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from testkit import moto_eks_updates, moto_lambda_handlers
from testkit.moto_server import MotoServer, serving
from testkit.repo import load_event

# Never let a test reach real AWS: fake credentials and a fixed region for every test process.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_SESSION_TOKEN", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")
os.environ.setdefault("AWS_REGION", "eu-west-1")
os.environ.pop("AWS_PROFILE", None)
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "EksProxyTest")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "eks-proxy-test")


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


@pytest.fixture(scope="session")
def moto_server_session() -> Iterator[MotoServer]:
    """One moto server per test process, with our extensions (EKS updates, the Lambda bridge) installed before it
    serves its first request; everything else is stock moto."""
    moto_eks_updates.install()
    moto_lambda_handlers.install()
    with serving() as server:
        yield server


@pytest.fixture
def moto_server(moto_server_session: MotoServer) -> Iterator[MotoServer]:
    """A clean moto server for each test (state reset before the test)."""
    moto_server_session.reset()
    os.environ["AWS_ENDPOINT_URL"] = moto_server_session.url
    yield moto_server_session
