"""Node simulation: boot rendered user data on a simulated private-subnet node and pull through a real proxy.

Real: tinyproxy, docker-registry (TLS, distribution v2), skopeo (the Go container-image stack containerd also
uses, honouring HTTP(S)_PROXY/NO_PROXY the same way), iproute2 namespaces and routing, bash running the boothooks,
curl talking to a fake IMDS over TCP. Simulated: cloud-init (MIME parsing + running parts), nodeadm (NodeConfig
merge + environment files), systemd (environment derivation from drop-ins, systemctl stubbed), the IMDS itself.
"""

from __future__ import annotations

import http.client
import ssl
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.integration.nodesim.image import build_oci_image, pull_image, push_image
from tests.integration.nodesim.pki import issue_cert, make_ca
from tests.integration.nodesim.services import start_registry, start_tinyproxy

TOOLS = ("tinyproxy", "docker-registry", "skopeo", "ip", "unshare", "openssl")

pytestmark = pytest.mark.netns


def _registry_v2_via_proxy(proxy_port: int, registry_port: int, ca: Path) -> tuple[int, str | None]:
    """GET https://localhost:<registry>/v2/ tunnelled through the proxy with CONNECT (as the preflight does)."""
    conn = http.client.HTTPSConnection(
        "127.0.0.1", proxy_port, timeout=10, context=ssl.create_default_context(cafile=str(ca))
    )
    conn.set_tunnel("localhost", registry_port)
    try:
        conn.request("GET", "/v2/")
        response = conn.getresponse()
        return response.status, response.getheader("Docker-Distribution-API-Version")
    finally:
        conn.close()


def test_building_blocks_on_loopback(tmp_path: Path) -> None:
    """The blocks other tests reuse (issue 4's preflight): real proxy + TLS registry on loopback, no namespace."""
    require_tool("tinyproxy", "docker-registry", "skopeo", "openssl")
    ca = make_ca(tmp_path / "pki")
    cert = issue_cert(ca, tmp_path / "pki", ["localhost", "127.0.0.1"])
    with start_registry(
        "127.0.0.1", cert=cert.cert, key=cert.key, storage=tmp_path / "storage", server_name="localhost", ca=ca.cert
    ) as registry:
        image = build_oci_image(tmp_path / "oci")
        push_image(image, registry.reference("nodesim/hello", image.tag), ca.trust_dir)
        # Go never proxies loopback, so this pull is direct: it proves push + pull, not the proxy.
        pulled = pull_image(registry.reference("nodesim/hello", image.tag), tmp_path / "pulled", ca.trust_dir, env={})
        assert pulled.ok, pulled.stderr
        assert pulled.file_content("hello.txt") == image.payload

        with start_tinyproxy("127.0.0.1", allow=["127.0.0.1"], connect_ports=[registry.port]) as proxy:
            assert proxy.url == f"http://127.0.0.1:{proxy.port}"
            status, api_version = _registry_v2_via_proxy(proxy.port, registry.port, ca.cert)
            assert (status, api_version) == (200, "registry/2.0")
            assert f"localhost:{registry.port}" in proxy.log()  # the tunnel really went through tinyproxy

        with (
            start_tinyproxy("127.0.0.1", allow=["127.0.0.1"], connect_ports=[443]) as refusing,
            pytest.raises(OSError, match="403"),
        ):
            _registry_v2_via_proxy(refusing.port, registry.port, ca.cert)
        assert not refusing.running
