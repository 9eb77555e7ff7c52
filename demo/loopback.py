"""A real HTTP CONNECT proxy and a TLS registry stand-in on 127.0.0.1, so the demo's preflight runs for real.

The preflight handler walks the path a node's containerd takes: TCP to the proxy, `CONNECT registry:443`, TLS with
the registry's name verified, `GET /v2/`. Here the proxy knows one upstream name (`REGISTRY_HOST`, resolved to the
local registry) and refuses every other CONNECT with 403; the registry answers `/v2/` like a Docker registry (401
with `Docker-Distribution-API-Version`). Its certificate comes from a throw-away CA made with
`testkit.nodesim.pki` (the openssl CLI), handed to the preflight as `PREFLIGHT_CA_BUNDLE`.
Nothing leaves the machine.
"""

from __future__ import annotations

import select
import socket
import socketserver
import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

REGISTRY_HOST = "registry.demo.internal"


class _RegistryHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = 401 if self.path.startswith("/v2/") else 404
        self.send_response(status)
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        self.send_header("WWW-Authenticate", f'Bearer realm="https://{REGISTRY_HOST}/token"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return None


class _ConnectHandler(socketserver.BaseRequestHandler):
    """`CONNECT host:port` to the one known upstream; anything else is refused like a real proxy's ACL would."""

    upstreams: ClassVar[dict[str, tuple[str, int]]] = {}

    def handle(self) -> None:
        client: socket.socket = self.request
        client.settimeout(10)
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 8192:
            chunk = client.recv(4096)
            if not chunk:
                return
            head += chunk
        method, _, target = head.split(b"\r\n", 1)[0].decode("latin-1").partition(" ")
        target = target.split(" ", 1)[0]
        upstream = self.upstreams.get(target) if method == "CONNECT" else None
        if upstream is None:
            client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        with socket.create_connection(upstream, timeout=10) as server:
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            _pipe(client, server)


def _pipe(a: socket.socket, b: socket.socket) -> None:
    peers = {a: b, b: a}
    while True:
        readable, _, _ = select.select(list(peers), [], [], 10)
        if not readable:
            return
        for sock in readable:
            data = sock.recv(65536)
            if not data:
                return
            peers[sock].sendall(data)


class _ThreadingTCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@dataclass
class Loopback:
    """The running proxy and registry; `close()` stops both."""

    proxy_port: int
    registry_port: int
    ca_bundle: Path
    _servers: tuple[Any, ...]

    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self.proxy_port}"

    @property
    def registry_probe(self) -> str:
        return f"{REGISTRY_HOST}:443"

    def close(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()


def _serve(server: Any) -> None:
    threading.Thread(target=server.serve_forever, name=f"demo-{type(server).__name__}", daemon=True).start()


def start_loopback(workdir: Path) -> Loopback:
    """Start the registry stand-in (TLS, cert for REGISTRY_HOST) and the CONNECT proxy; raises if openssl is missing."""
    from testkit.nodesim.pki import issue_cert, make_ca

    ca = make_ca(workdir / "ca", name="eks-proxy demo CA")
    cert = issue_cert(ca, workdir / "registry", [REGISTRY_HOST])
    registry = ThreadingHTTPServer(("127.0.0.1", 0), _RegistryHandler)
    registry.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert.cert), str(cert.key))
    registry.socket = context.wrap_socket(registry.socket, server_side=True)
    registry_port = int(registry.server_address[1])
    _ConnectHandler.upstreams = {f"{REGISTRY_HOST}:443": ("127.0.0.1", registry_port)}
    proxy = _ThreadingTCPServer(("127.0.0.1", 0), _ConnectHandler)
    for server in (registry, proxy):
        _serve(server)
    return Loopback(int(proxy.server_address[1]), registry_port, ca.cert, (proxy, registry))


def start_kubernetes(workdir: Path) -> Any:
    """testkit.fake_k8s's Kubernetes API server on loopback, with its own throw-away CA."""
    from testkit.fake_k8s import FakeKubernetes
    from testkit.nodesim.pki import issue_cert, make_ca

    ca = make_ca(workdir / "k8s-ca", name="eks-proxy demo Kubernetes CA")
    return FakeKubernetes(issue_cert(ca, workdir / "k8s-api", ["localhost", "127.0.0.1"])).start()
