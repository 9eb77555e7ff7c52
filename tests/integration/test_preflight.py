"""Preflight against a REAL proxy (tinyproxy) and a REAL TLS registry (docker-registry) on loopback.

Every failure the issue lists is produced by the real thing, not a mock: a closed port, tinyproxy's own 403 for a
CONNECT port it does not allow, a certificate for another host or from an untrusted CA, and a peer that accepts a
connection and then never answers.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
from eks_proxy.checks.preflight import preflight, probe_registry
from eks_proxy.proxy.value import parse_proxy_value

from testkit.moto_server import MotoServer
from testkit.nodesim.netns import run_in_netns
from testkit.nodesim.pki import CertificateAuthority, ServerCert, issue_cert, make_ca
from testkit.nodesim.services import (
    ProxyService,
    RegistryService,
    start_registry,
    start_tinyproxy,
)
from testkit.nodesim.testbed import PROXY_IP, REGISTRY_NAME, REGISTRY_PORT, Testbed
from testkit.repo import free_port, load_handler, structured_logs
from testkit.tools import require_tool

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Pki:
    ca: CertificateAuthority
    other_ca: CertificateAuthority
    good: ServerCert  # localhost, 127.0.0.1
    wrong_host: ServerCert  # registry.other.test only


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    require_tool("openssl")
    base = tmp_path_factory.mktemp("pki")
    ca = make_ca(base / "ca")
    other_ca = make_ca(base / "other-ca", name="some other CA")
    return Pki(
        ca=ca,
        other_ca=other_ca,
        good=issue_cert(ca, base / "good", ["localhost", "127.0.0.1"]),
        wrong_host=issue_cert(ca, base / "wrong", ["registry.other.test"]),
    )


@pytest.fixture(scope="module")
def registry(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryService]:
    require_tool("docker-registry")
    handle = _registry(tmp_path_factory.mktemp("registry"), pki.good)
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def proxy(registry: RegistryService, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyService]:
    """tinyproxy allowing CONNECT to any port (each test brings its own far end)."""
    require_tool("tinyproxy")
    handle = start_tinyproxy(workdir=tmp_path_factory.mktemp("tinyproxy"), connect_ports=())
    yield handle
    handle.stop()


def _registry(directory: Path, cert: ServerCert) -> RegistryService:
    return start_registry(
        "127.0.0.1", cert=cert.cert, key=cert.key, storage=directory / "storage", server_name="localhost",
        workdir=directory,
    )  # fmt: skip


def test_ok_through_tinyproxy_to_tls_registry(proxy: ProxyService, registry: RegistryService, pki: Pki) -> None:
    config = parse_proxy_value(f"http://127.0.0.1:{proxy.port}")

    result = preflight(config, f"localhost:{registry.port}", cafile=str(pki.ca.cert))

    assert result.result == "ok", result.detail
    assert result.ok
    assert result.status == 200  # docker-registry without auth answers /v2/ with 200
    assert "Docker-Distribution-API-Version: registry/2.0" in result.detail
    assert set(result.latency_ms) == {"tcp", "connect", "tls", "get", "total"}
    out = result.as_output()
    assert out["ok"] is True and out["result"] == "ok"


def test_proxy_down_is_unreachable(registry: RegistryService, pki: Pki) -> None:
    closed = free_port()  # bound then released: nothing listens there

    result = probe_registry(f"http://127.0.0.1:{closed}", f"localhost:{registry.port}", cafile=str(pki.ca.cert))

    assert result.result == "proxy_unreachable"
    assert "connection refused" in result.detail
    assert not result.ok
    assert "tcp" not in result.latency_ms


def test_proxy_refusing_connect_reports_status(registry: RegistryService, pki: Pki, tmp_path: Path) -> None:
    require_tool("tinyproxy")
    strict = start_tinyproxy(workdir=tmp_path, connect_ports=[443])  # the registry's port is not allowed
    try:
        result = probe_registry(
            f"http://127.0.0.1:{strict.port}", f"localhost:{registry.port}", cafile=str(pki.ca.cert)
        )
    finally:
        strict.stop()

    assert result.result == "connect_refused"
    assert result.status == 403
    assert f"refused CONNECT localhost:{registry.port}: 403" in result.detail
    assert "tcp" in result.latency_ms and "connect" not in result.latency_ms


def test_registry_certificate_from_untrusted_ca(proxy: ProxyService, registry: RegistryService, pki: Pki) -> None:
    result = probe_registry(
        f"http://127.0.0.1:{proxy.port}", f"localhost:{registry.port}", cafile=str(pki.other_ca.cert)
    )

    assert result.result == "tls_failure"
    assert "certificate not trusted" in result.detail
    assert "connect" in result.latency_ms  # the proxy did its part


def test_registry_certificate_for_another_host(proxy: ProxyService, pki: Pki, tmp_path: Path) -> None:
    require_tool("docker-registry")
    impostor = _registry(tmp_path, pki.wrong_host)
    try:
        result = probe_registry(f"http://127.0.0.1:{proxy.port}", f"localhost:{impostor.port}", cafile=str(pki.ca.cert))
    finally:
        impostor.stop()

    assert result.result == "tls_failure"
    assert "Hostname mismatch" in result.detail or "hostname" in result.detail.lower()


def test_system_bundle_does_not_trust_a_private_registry(proxy: ProxyService, registry: RegistryService) -> None:
    """Without a CA override the system bundle is used, as in Lambda: a self-made CA is not trusted."""
    result = probe_registry(f"http://127.0.0.1:{proxy.port}", f"localhost:{registry.port}")

    assert result.result == "tls_failure"


class _Silent:
    """A TCP server that accepts every connection and never says a word (a stuck proxy or registry)."""

    def __init__(self, port: int = 0) -> None:
        self.sock = socket.create_server(("127.0.0.1", port))
        self.port = int(self.sock.getsockname()[1])
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._held.append(conn)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        for conn in self._held:
            conn.close()
        self.sock.close()


def test_proxy_that_never_answers_times_out(registry: RegistryService) -> None:
    silent = _Silent()
    try:
        result = probe_registry(f"http://127.0.0.1:{silent.port}", f"localhost:{registry.port}", io_timeout=0.5)
    finally:
        silent.stop()

    assert result.result == "timeout"
    assert "did not answer CONNECT within 0.5s" in result.detail
    assert "tcp" in result.latency_ms


def test_registry_that_never_answers_tls_times_out(proxy: ProxyService, pki: Pki) -> None:
    silent = _Silent()
    try:
        result = probe_registry(
            f"http://127.0.0.1:{proxy.port}", f"localhost:{silent.port}", io_timeout=0.5, cafile=str(pki.ca.cert)
        )
    finally:
        silent.stop()

    assert result.result == "timeout"
    assert "TLS handshake" in result.detail
    assert "connect" in result.latency_ms


def test_tls_server_that_is_not_a_registry(proxy: ProxyService, pki: Pki) -> None:
    """An HTTPS server answering 404 without the registry header: reachable, but no registry."""
    good = pki.good
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(good.cert), str(good.key))
    server = socket.create_server(("127.0.0.1", 0))
    port = int(server.getsockname()[1])

    def answer() -> None:
        conn, _ = server.accept()
        with context.wrap_socket(conn, server_side=True) as tls:
            tls.recv(4096)
            tls.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        result = probe_registry(f"http://127.0.0.1:{proxy.port}", f"localhost:{port}", cafile=str(pki.ca.cert))
    finally:
        thread.join(5)
        server.close()

    assert result.result == "registry_not_answering"
    assert result.status == 404
    assert "without a Docker-Distribution-API-Version header" in result.detail


def test_https_proxy_tls_in_tls(proxy: ProxyService, registry: RegistryService, pki: Pki) -> None:
    """An https:// proxy: TLS to the proxy first, then TLS with the registry inside that tunnel."""
    good = pki.good
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(good.cert), str(good.key))
    front = socket.create_server(("127.0.0.1", 0))
    front_port = int(front.getsockname()[1])

    def terminate_tls() -> None:
        # A TLS front for tinyproxy, like stunnel in front of squid: decrypt, forward both ways.
        conn, _ = front.accept()
        with (
            context.wrap_socket(conn, server_side=True) as tls,
            socket.create_connection(("127.0.0.1", proxy.port)) as upstream,
        ):
            tls.settimeout(0.05)
            upstream.settimeout(0.05)
            while True:
                moved = False
                for src, dst in ((tls, upstream), (upstream, tls)):
                    try:
                        data = src.recv(65536)
                    except (TimeoutError, ssl.SSLWantReadError):
                        continue
                    except OSError:
                        return
                    if not data:
                        return
                    dst.sendall(data)
                    moved = True
                if not moved:
                    continue

    thread = threading.Thread(target=terminate_tls, daemon=True)
    thread.start()
    try:
        result = probe_registry(
            f"https://localhost:{front_port}",
            f"localhost:{registry.port}",
            cafile=str(pki.ca.cert),
            proxy_cafile=str(pki.ca.cert),
        )
    finally:
        thread.join(5)
        front.close()

    assert result.result == "ok", result.detail
    assert "proxy_tls" in result.latency_ms
    assert result.detail.endswith(f"through proxy https://localhost:{front_port}")


def test_proxy_that_cannot_reach_the_registry(proxy: ProxyService) -> None:
    """tinyproxy answers "500 Unable to connect" when the far side is closed: the proxy is up, the registry is not."""
    closed = free_port()

    result = probe_registry(f"http://127.0.0.1:{proxy.port}", f"localhost:{closed}")

    assert result.result == "registry_not_answering"
    assert result.status == 500
    assert f"could not reach localhost:{closed}" in result.detail


HOSTILE = "IGNORE-PREVIOUS <script>alarm-me</script> AKIAIOSFODNN7EXAMPLE"


class _Hostile:
    """A TCP server that answers every connection with the same scripted bytes: a proxy (or whatever the proxy
    address points at) trying to get its own text into our alarms, logs and execution history."""

    def __init__(self, answer: bytes) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self._answer = answer
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        # A timeout, not close() from another thread: a thread blocked in accept() keeps the listening socket (and
        # its port) alive after close(), answering whatever connects there later.
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(2)
            with conn:
                try:
                    conn.recv(4096)
                    conn.sendall(self._answer)
                except OSError:
                    pass

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@pytest.mark.parametrize(
    ("answer", "result", "status"),
    [
        (f"HTTP/1.1 403 {HOSTILE}\r\nX-Note: {HOSTILE}\r\n\r\n{HOSTILE}", "connect_refused", 403),
        (f'HTTP/1.1 407 {HOSTILE}\r\nProxy-Authenticate: Basic realm="{HOSTILE}"\r\n\r\n', "connect_refused", 407),
        (f"HTTP/1.1 502 {HOSTILE}\r\n\r\n{HOSTILE}", "registry_not_answering", 502),
        (f"{HOSTILE}\r\n\r\n", "connect_refused", None),
        (f"HTTP/1.1 200 {HOSTILE}\r\n\r\n{HOSTILE}\r\n", "tls_failure", None),
    ],
    ids=["403", "407", "502", "not-http", "200-then-text"],
)
def test_failure_text_never_carries_what_the_peer_served(answer: str, result: str, status: int | None) -> None:
    """Only the status code and our own words reach the result: a hostile reason phrase, header or body does not."""
    hostile = _Hostile(answer.encode())
    try:
        found = probe_registry(f"http://127.0.0.1:{hostile.port}", "registry.example:443", io_timeout=2)
    finally:
        hostile.stop()

    assert (found.result, found.status) == (result, status)
    for word in ("IGNORE", "script", "alarm-me", "AKIA"):
        assert word not in found.detail
    if status is not None:
        assert str(status) in found.detail


def test_a_registry_header_value_is_echoed_only_in_its_known_shape(proxy: ProxyService, pki: Pki) -> None:
    """A TLS server claiming to be a registry with a hostile Docker-Distribution-API-Version value."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(pki.good.cert), str(pki.good.key))
    server = socket.create_server(("127.0.0.1", 0))
    port = int(server.getsockname()[1])

    def answer() -> None:
        conn, _ = server.accept()
        with context.wrap_socket(conn, server_side=True) as tls:
            tls.recv(4096)
            tls.sendall(
                f"HTTP/1.1 401 {HOSTILE}\r\nDocker-Distribution-API-Version: {HOSTILE}\r\n"
                "Content-Length: 0\r\nConnection: close\r\n\r\n".encode()
            )

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        found = probe_registry(f"http://127.0.0.1:{proxy.port}", f"localhost:{port}", cafile=str(pki.ca.cert))
    finally:
        thread.join(5)
        server.close()

    assert found.result == "ok"
    assert "IGNORE" not in found.detail and "script" not in found.detail
    assert "Docker-Distribution-API-Version: (set)" in found.detail


# -- the handler, as the state machine calls it: the value read from SSM at the pinned version -------------------


class _Context:
    function_name = "eks-proxy-PreflightFunction"
    function_version = "$LATEST"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:eks-proxy-PreflightFunction"
    aws_request_id = "0d6a4b1e-1f55-4c36-9a6b-7e1c2f3a4b5c"


@pytest.fixture
def handler(moto_server: MotoServer, pki: Pki) -> ModuleType:
    return load_handler("preflight", {"PREFLIGHT_CA_BUNDLE": str(pki.ca.cert), "PREFLIGHT_IO_TIMEOUT_SECONDS": "2"})


def _put(moto: MotoServer, *values: str) -> None:
    ssm = moto.client("ssm")
    for value in values:
        ssm.put_parameter(Name="/eks-proxy/config", Type="String", Value=value, Overwrite=True)


def test_handler_probes_the_pinned_version(
    handler: ModuleType,
    moto_server: MotoServer,
    proxy: ProxyService,
    registry: RegistryService,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Version 1 is the change under test; version 2 (latest, broken) must not be what is probed.
    _put(moto_server, f"http://127.0.0.1:{proxy.port}", f"http://127.0.0.1:{free_port()}")
    task = {"parameter": {"name": "/eks-proxy/config", "version": 1}, "registry": f"localhost:{registry.port}"}

    out = handler.lambda_handler(task, _Context())

    assert out["ok"] is True, out
    assert out["result"] == "ok"
    assert set(out["latency_ms"]) == {"tcp", "connect", "tls", "get", "total"}
    assert '"PreflightFailed":[0.0]' in capsys.readouterr().out


def test_handler_reports_the_latest_failure_when_pinned_to_it(
    handler: ModuleType, moto_server: MotoServer, proxy: ProxyService, registry: RegistryService
) -> None:
    _put(moto_server, f"http://127.0.0.1:{proxy.port}", f"http://127.0.0.1:{free_port()}")
    task = {"parameter": {"name": "/eks-proxy/config", "version": 2}, "registry": f"localhost:{registry.port}"}

    out = handler.lambda_handler(task, _Context())

    assert out["ok"] is False
    assert out["result"] == "proxy_unreachable"


def test_handler_raises_transient_failures_while_the_state_machine_has_retries(
    handler: ModuleType, moto_server: MotoServer, registry: RegistryService, capsys: pytest.CaptureFixture[str]
) -> None:
    """attempt < retries: PreflightNotReady (the Preflight state retries it); the last attempt returns the failure."""
    from eks_proxy.checks.preflight import PreflightNotReady

    _put(moto_server, f"http://127.0.0.1:{free_port()}")
    task = {"parameter": {"name": "/eks-proxy/config", "version": 1}, "registry": f"localhost:{registry.port}"}

    with pytest.raises(
        PreflightNotReady, match=r"^proxy_unreachable: proxy http://127\.0\.0\.1:\d+: connection refused"
    ):
        handler.lambda_handler(task | {"attempt": 0, "retries": 5}, _Context())
    assert '"PreflightRetried":[1.0]' in capsys.readouterr().out
    out = handler.lambda_handler(task | {"attempt": 5, "retries": 5}, _Context())
    assert (out["ok"], out["result"]) == (False, "proxy_unreachable")
    assert '"PreflightFailed":[1.0]' in capsys.readouterr().out


def test_handler_never_retries_a_configuration_failure(
    handler: ModuleType, moto_server: MotoServer, registry: RegistryService, tmp_path: Path
) -> None:
    """A 403 from the proxy is a configuration problem: returned at once, whatever retries are left."""
    require_tool("tinyproxy")
    strict = start_tinyproxy(workdir=tmp_path, connect_ports=[443])
    try:
        _put(moto_server, f"http://127.0.0.1:{strict.port}")
        task = {"parameter": {"name": "/eks-proxy/config", "version": 1}, "registry": f"localhost:{registry.port}"}
        out = handler.lambda_handler(task | {"attempt": 0, "retries": 5}, _Context())
    finally:
        strict.stop()
    assert (out["ok"], out["result"], out["status"]) == (False, "connect_refused", 403)


def test_handler_refuses_a_hostile_value_without_probing_or_echoing_it(
    handler: ModuleType, moto_server: MotoServer, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    _put(moto_server, "http://user:s3cret@10.0.0.10:3128")

    out = handler.lambda_handler({"parameter": {"name": "/eks-proxy/config", "version": 1}}, _Context())

    assert out["ok"] is False
    assert out["result"] == "invalid_value"
    assert "credentials" in out["detail"]
    assert "s3cret" not in out["detail"] + caplog.text
    assert out["latency_ms"] == {}  # nothing was contacted
    assert '"PreflightFailed":[1.0]' in capsys.readouterr().out


def test_handler_missing_version_is_invalid(handler: ModuleType, moto_server: MotoServer) -> None:
    _put(moto_server, "http://10.0.0.10:3128")

    out = handler.lambda_handler({"parameter": {"name": "/eks-proxy/config", "version": 9}}, _Context())

    assert out["result"] == "invalid_value"
    assert out["detail"] == "parameter /eks-proxy/config:9 not found"


# -- from the simulated private subnet: the function's view inside the cluster VPC ---------------------------------


@pytest.mark.netns
def test_from_the_private_subnet_through_the_testbed_proxy(testbed: Testbed) -> None:
    """The node namespace has no route out but the proxy; the proxy host resolves and reaches the registry."""
    assert testbed.ca and testbed.proxy
    assert testbed.connect_direct() != 0  # no way around the proxy
    log_before = len(testbed.proxy.log())

    result = run_in_netns(
        testbed.node,
        lambda: preflight(
            parse_proxy_value(testbed.proxy_value), f"{REGISTRY_NAME}:{REGISTRY_PORT}", cafile=str(testbed.ca.cert)
        ),
    )

    assert result.result == "ok", result.detail
    assert result.status in (200, 401)
    assert f"CONNECT {REGISTRY_NAME}:{REGISTRY_PORT}" in testbed.proxy.log()[log_before:]


@pytest.mark.netns
def test_dead_proxy_port_from_the_private_subnet(testbed: Testbed) -> None:
    result = run_in_netns(
        testbed.node,
        lambda: preflight(parse_proxy_value(testbed.dead_proxy_value), f"{REGISTRY_NAME}:{REGISTRY_PORT}"),
    )

    assert result.result == "proxy_unreachable"
    assert f"proxy http://{PROXY_IP}:" in result.detail


def test_ipv6_proxy(registry: RegistryService, pki: Pki, tmp_path: Path) -> None:
    """An IPv6 proxy address, bracketed in the value, as parse_proxy_value normalizes it."""
    require_tool("tinyproxy")
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this host")
    v6 = start_tinyproxy("::1", workdir=tmp_path, allow=["::1"], connect_ports=())
    try:
        result = preflight(
            parse_proxy_value(f"http://[::1]:{v6.port}"), f"localhost:{registry.port}", cafile=str(pki.ca.cert)
        )
    finally:
        v6.stop()

    assert result.result == "ok", result.detail
    assert f"through proxy http://[::1]:{v6.port}" in result.detail


def test_handler_logs_carry_the_change_id_as_correlation_id(handler: ModuleType, moto_server: MotoServer) -> None:
    """The saved query "what did the last rollout do" filters on correlation_id: the preflight's lines must have it."""
    _put(moto_server, "http://user:s3cret@10.0.0.10:3128")
    task = {"change_id": "evt-42", "parameter": {"name": "/eks-proxy/config", "version": 1}}

    buffer = structured_logs(handler)
    handler.lambda_handler(task, _Context())

    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    assert lines
    assert {line.get("correlation_id") for line in lines} == {"evt-42"}
