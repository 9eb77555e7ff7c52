"""Preflight through a REAL TLS-inspecting proxy (squid ssl-bump) to a REAL TLS registry, on loopback.

squid re-signs the registry's certificate with a corporate CA. The registry's own CA stands in for the system CAs
(``cafile``, ``PREFLIGHT_CA_BUNDLE``); the corporate CA is trusted only when the proxy value names it as its CA
bundle: without it the preflight fails with ``tls_failure`` and says what to do.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
from eks_proxy.checks.preflight import preflight
from eks_proxy.proxy.ca_bundle import parse_ca_bundle
from eks_proxy.proxy.value import parse_proxy_value

from testkit.moto_server import MotoServer
from testkit.nodesim.pki import CertificateAuthority, issue_cert, make_ca
from testkit.nodesim.services import ProxyService, RegistryService, start_registry, start_squid_bump
from testkit.repo import load_handler
from testkit.tools import require_tool

pytestmark = pytest.mark.slow
VALUE = {"ca_bundle": "/eks-proxy/ca-bundle"}


@dataclass(frozen=True)
class Inspection:
    public_ca: CertificateAuthority  # signs the registry's real certificate
    corp_ca: CertificateAuthority  # the inspecting proxy signs with it
    registry: RegistryService
    proxy: ProxyService

    @property
    def registry_probe(self) -> str:
        return f"localhost:{self.registry.port}"

    def value(self, **extra: str) -> str:
        return json.dumps({"http_proxy": f"http://127.0.0.1:{self.proxy.port}", **extra})


@pytest.fixture(scope="module")
def inspection(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Inspection]:
    require_tool("openssl", "docker-registry", "/usr/sbin/squid", "/usr/lib/squid/security_file_certgen")
    base = tmp_path_factory.mktemp("inspection")
    public_ca = make_ca(base / "public", name="public CA stand-in")
    corp_ca = make_ca(base / "corp", name="Example Corp TLS Inspection CA")
    cert = issue_cert(public_ca, base / "public", ["localhost", "127.0.0.1"])
    registry = start_registry(
        "127.0.0.1", cert=cert.cert, key=cert.key, storage=base / "storage", server_name="localhost", workdir=base
    )
    try:
        proxy = start_squid_bump(
            signing_cert=corp_ca.cert, signing_key=corp_ca.key, upstream_ca=public_ca.cert, allow=["127.0.0.1"]
        )
    except BaseException:
        registry.stop()
        raise
    yield Inspection(public_ca, corp_ca, registry, proxy)
    proxy.stop()
    registry.stop()


def test_without_the_bundle_tls_fails_and_says_what_to_do(inspection: Inspection) -> None:
    config = parse_proxy_value(inspection.value())
    result = preflight(config, inspection.registry_probe, cafile=str(inspection.public_ca.cert))
    assert result.result == "tls_failure", result.detail
    assert "certificate not trusted" in result.detail
    assert '"ca_bundle"' in result.detail  # the hint: a TLS-inspecting proxy needs its CA bundle named


def test_with_the_bundle_the_registry_answers_through_the_inspection(inspection: Inspection) -> None:
    bundle = parse_ca_bundle(inspection.corp_ca.cert.read_text())
    config = parse_proxy_value(inspection.value(**VALUE)).with_ca_bundle(bundle)
    result = preflight(config, inspection.registry_probe, cafile=str(inspection.public_ca.cert))
    assert result.result == "ok", result.detail
    assert result.status == 200


def test_a_bundle_that_does_not_sign_what_the_proxy_presents_fails(inspection: Inspection, tmp_path: Path) -> None:
    other = make_ca(tmp_path / "other", name="Some Other CA")
    config = parse_proxy_value(inspection.value(**VALUE)).with_ca_bundle(parse_ca_bundle(other.cert.read_text()))
    result = preflight(config, inspection.registry_probe, cafile=str(inspection.public_ca.cert))
    assert result.result == "tls_failure"
    assert "does not sign what the proxy presents" in result.detail


class _Context:
    function_name = "eks-proxy-PreflightFunction"
    function_version = "$LATEST"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:eks-proxy-PreflightFunction"
    aws_request_id = "0d6a4b1e-1f55-4c36-9a6b-7e1c2f3a4b5c"


@pytest.fixture
def handler(moto_server: MotoServer, inspection: Inspection) -> ModuleType:
    return load_handler("preflight", {"PREFLIGHT_CA_BUNDLE": str(inspection.public_ca.cert)})


def test_handler_reads_the_bundle_the_value_names(
    handler: ModuleType, moto_server: MotoServer, inspection: Inspection
) -> None:
    ssm = moto_server.client("ssm")
    ssm.put_parameter(Name="/eks-proxy/config", Type="String", Value=inspection.value(**VALUE), Overwrite=True)
    task = {"parameter": {"name": "/eks-proxy/config", "version": 1}, "registry": inspection.registry_probe}

    missing = handler.lambda_handler(task, _Context())
    assert missing["result"] == "invalid_value" and "does not exist" in missing["detail"], missing

    ssm.put_parameter(Name="/eks-proxy/ca-bundle", Type="String", Value=inspection.corp_ca.cert.read_text())
    out = handler.lambda_handler(task, _Context())
    assert out["ok"] is True, out

    rotated = make_ca(inspection.public_ca.cert.parent.parent / "rotated", name="Example Corp CA 2027")
    ssm.put_parameter(Name="/eks-proxy/ca-bundle", Type="String", Value=rotated.cert.read_text(), Overwrite=True)
    wrong = handler.lambda_handler(task, _Context())  # the latest bundle is read: it no longer matches the proxy
    assert wrong["result"] == "tls_failure", wrong
