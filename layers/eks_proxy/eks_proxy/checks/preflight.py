"""Preflight: prove the proxy in a new value can reach a container registry before any node group changes.

Runs in a function attached to the cluster's VPC, so it sees the network the nodes will see. It uses the proxy
named by the new value *explicitly* (never ``HTTPS_PROXY`` from the environment) and walks the exact path a node's
containerd takes for an HTTPS registry:

1. TCP connect to the proxy (and TLS to it when the proxy URL is ``https://``),
2. ``CONNECT registry:443 HTTP/1.1`` and read the status,
3. TLS with the registry through the tunnel (SNI + certificate verification),
4. ``GET /v2/``: a registry answers 200 or 401 with a ``Docker-Distribution-API-Version`` header.

Each step has a short timeout and its own result, so the operator reads *which* hop is broken. A result's
``detail`` is made of our own words, addresses from the value and status codes only: nothing the proxy or the far end
serves (reason phrases, bodies, status lines, header values) is echoed into logs, alarms or the execution history.
Pure stdlib (socket/ssl): no HTTP library would let us stop and report between the hops.

>>> r = probe_registry("http://127.0.0.1:9", "registry.example:443", connect_timeout=0.5)
>>> r.result, r.ok
('proxy_unreachable', False)
"""

from __future__ import annotations

import re
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from eks_proxy.proxy.value import ProxyConfig

Outcome = Literal[
    "ok",
    "proxy_unreachable",
    "connect_refused",
    "tls_failure",
    "registry_not_answering",
    "timeout",
    "invalid_value",
]

# Results that may clear up on their own (the proxy restarting, a registry hiccup, a network path converging): the
# rollout retries them with backoff before it gives up. A refused CONNECT (403/407), a TLS failure or an invalid
# value is a configuration problem: retrying would only delay the alarm.
TRANSIENT: frozenset[Outcome] = frozenset({"proxy_unreachable", "timeout", "registry_not_answering"})

DEFAULT_REGISTRY = "registry-1.docker.io:443"
_MAX_HEAD = 64 * 1024
_API_VERSION = re.compile(r"registry/[0-9]{1,3}(\.[0-9]{1,3}){0,2}")
_USER_AGENT = "eks-proxy-preflight/1"
# A proxy answering CONNECT with one of these could not reach the registry: the proxy works, its far side does not
# (tinyproxy says "500 Unable to connect", squid 503, others 502/504).
_GATEWAY_ERRORS = frozenset({500, 502, 503, 504})

_T = TypeVar("_T")


@dataclass(frozen=True)
class PreflightResult:
    """What the probe found; ``latency_ms`` holds one entry per completed hop (``tcp``, ``proxy_tls``,
    ``connect``, ``tls``, ``get``) and ``total``."""

    result: Outcome
    detail: str
    latency_ms: dict[str, float] = field(default_factory=dict)
    status: int | None = None  # the proxy's CONNECT status when it refused, or the registry's GET status

    @property
    def ok(self) -> bool:
        return self.result == "ok"

    @property
    def transient(self) -> bool:
        """A failure worth probing again later (see ``TRANSIENT``)."""
        return self.result in TRANSIENT

    def as_output(self) -> dict[str, Any]:
        """The preflight task output of the engine contract (docs/ARCHITECTURE.md)."""
        return {
            "ok": self.ok,
            "result": self.result,
            "detail": self.detail,
            "latency_ms": dict(self.latency_ms),
            "status": self.status,
        }


def invalid_value(detail: str) -> PreflightResult:
    """The result for a proxy value that does not parse (the detail is ProxyValueError's credential-free line)."""
    return PreflightResult(result="invalid_value", detail=detail)


def proxy_for_registry(config: ProxyConfig) -> str:
    """The proxy a node uses for an HTTPS registry: containerd follows ``HTTPS_PROXY`` for ``https://`` pulls."""
    return config.https_proxy


def preflight(
    config: ProxyConfig,
    registry: str = DEFAULT_REGISTRY,
    *,
    connect_timeout: float = 3.0,
    io_timeout: float = 5.0,
    cafile: str | None = None,
    proxy_cafile: str | None = None,
) -> PreflightResult:
    """Probe ``registry`` through the HTTPS proxy of ``config`` (see :func:`probe_registry`).

    A TLS-inspecting proxy: the CA bundle the value names (``config.ca_bundle``) is trusted in addition to the
    system CAs, as the nodes will trust it once their boothook installed it; without one, a re-signed registry
    certificate fails as ``tls_failure`` with a hint to name the bundle.
    """
    bundle = config.ca_bundle
    result = probe_registry(
        proxy_for_registry(config),
        registry,
        connect_timeout=connect_timeout,
        io_timeout=io_timeout,
        cafile=cafile,
        proxy_cafile=proxy_cafile,
        cadata=bundle.pem if bundle else None,
    )
    if result.result == "tls_failure" and "certificate not trusted" in result.detail:
        hint = (
            f"; the CA bundle {config.ca_bundle_parameter or ''} ({len(bundle.certificates)} certificate(s)) "
            "does not sign what the proxy presents"
            if bundle
            else '; a TLS-inspecting proxy? name its CA bundle in the value ("ca_bundle": "/eks-proxy/ca-bundle")'
        )
        result = replace(result, detail=result.detail + hint)
    return result


class PreflightNotReady(RuntimeError):
    """A transient preflight failure the state machine retries with backoff (the class name is the error name)."""

    def __init__(self, result: PreflightResult) -> None:
        super().__init__(f"{result.result}: {result.detail}")
        self.result = result


class _Failed(Exception):
    def __init__(self, result: Outcome, detail: str, status: int | None = None) -> None:
        super().__init__(detail)
        self.result: Outcome = result
        self.detail = detail
        self.status = status


@dataclass(frozen=True)
class _Endpoint:
    host: str  # without IPv6 brackets, as socket and SNI want it
    port: int

    @property
    def authority(self) -> str:
        """``host:port`` as it appears in a CONNECT line or a Host header (IPv6 in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def _parse_proxy_url(proxy_url: str) -> tuple[str, _Endpoint]:
    parts = urlsplit(proxy_url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise _Failed("invalid_value", "proxy must be an http:// or https:// URL with a host")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise _Failed("invalid_value", "proxy URL has an invalid port") from None
    return scheme, _Endpoint(parts.hostname, port)


def parse_registry(registry: str) -> tuple[str, int]:
    """Split ``host[:port]`` (port 443 when absent; IPv6 in brackets).

    >>> parse_registry("registry-1.docker.io:443"), parse_registry("[fd00::5]:5000"), parse_registry("quay.io")
    (('registry-1.docker.io', 443), ('fd00::5', 5000), ('quay.io', 443))
    """
    text = registry.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest.removeprefix(":") if rest else ""
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    if not host or (port_text and not port_text.isdigit()):
        raise ValueError(f"registry probe must be host:port, got {registry!r}")
    port = int(port_text) if port_text else 443
    if not 1 <= port <= 65535:
        raise ValueError(f"registry probe port out of range in {registry!r}")
    return host, port


def probe_registry(
    proxy_url: str,
    registry: str = DEFAULT_REGISTRY,
    *,
    connect_timeout: float = 3.0,
    io_timeout: float = 5.0,
    cafile: str | None = None,
    proxy_cafile: str | None = None,
    cadata: str | None = None,
) -> PreflightResult:
    """Reach ``registry`` (``host:port``) through the proxy at ``proxy_url`` and classify what happens.

    ``cafile`` replaces the system CA bundle for the registry's certificate (tests use a throw-away CA);
    ``proxy_cafile`` does the same for an ``https://`` proxy; ``cadata`` (PEM, a TLS-inspecting proxy's CA bundle)
    is trusted in addition, for both. Never raises for network trouble: every failure is a
    :class:`PreflightResult` with a one-line ``detail``.

    >>> probe_registry("ftp://proxy:21").result
    'invalid_value'
    """
    latency: dict[str, float] = {}
    started = time.perf_counter()
    status: int | None = None
    sock: socket.socket | None = None
    try:
        scheme, proxy = _parse_proxy_url(proxy_url)
        try:
            reg_host, reg_port = parse_registry(registry)
        except ValueError as exc:
            raise _Failed("invalid_value", str(exc)) from None
        target = _Endpoint(reg_host, reg_port)
        where = f"proxy {scheme}://{proxy.authority}"

        with _hop(latency, "tcp"):
            sock = _connect(proxy, connect_timeout, where)
        sock.settimeout(io_timeout)
        if scheme == "https":
            with _hop(latency, "proxy_tls"):
                sock = _tls_to_proxy(sock, proxy, _context(proxy_cafile, cadata), where, io_timeout)

        with _hop(latency, "connect"):
            pending = _send_connect(sock, target, where, io_timeout)

        tunnel = _TunnelTls(sock, _context(cafile, cadata), target.host, pending)
        with _hop(latency, "tls"):
            _guard(
                tunnel.handshake,
                io_timeout,
                timeout_detail=f"TLS handshake with {target.authority} through {where} did not finish",
                tls_detail=f"TLS with {target.authority} through {where} failed",
            )

        with _hop(latency, "get"):
            status, headers = _get_v2(tunnel, target, where, io_timeout)
        version = _api_version(headers.get("docker-distribution-api-version"))
        if status in (200, 401) and version:
            detail = (
                f"registry {target.authority} answered GET /v2/ with {status} "
                f"(Docker-Distribution-API-Version: {version}) through {where}"
            )
            return _result("ok", detail, latency, started, status)
        missing = "" if version else " without a Docker-Distribution-API-Version header"
        raise _Failed(
            "registry_not_answering",
            f"{target.authority} answered GET /v2/ with {status}{missing} through {where}: not a container registry",
            status,
        )
    except _Failed as failure:
        return _result(failure.result, failure.detail, latency, started, failure.status)
    finally:
        if sock is not None:
            sock.close()


def _result(
    outcome: Outcome, detail: str, latency: dict[str, float], started: float, status: int | None
) -> PreflightResult:
    latency["total"] = round((time.perf_counter() - started) * 1000, 1)
    return PreflightResult(result=outcome, detail=detail, latency_ms=latency, status=status)


@contextmanager
def _hop(latency: dict[str, float], name: str) -> Iterator[None]:
    """Record the duration of one hop in milliseconds, only when it completes."""
    start = time.perf_counter()
    yield
    latency[name] = round((time.perf_counter() - start) * 1000, 1)


def _connect(proxy: _Endpoint, timeout: float, where: str) -> socket.socket:
    try:
        sock = socket.create_connection((proxy.host, proxy.port), timeout=timeout)
    except TimeoutError:
        raise _Failed("proxy_unreachable", f"{where}: TCP connect timed out after {timeout:g}s") from None
    except socket.gaierror as exc:
        raise _Failed("proxy_unreachable", f"{where}: cannot resolve host ({exc.strerror})") from None
    except ConnectionRefusedError:
        raise _Failed("proxy_unreachable", f"{where}: connection refused (nothing listens on that port)") from None
    except OSError as exc:
        raise _Failed("proxy_unreachable", f"{where}: {exc.strerror or exc}") from None
    # Small TLS records (Finished, then GET) must not wait for a delayed ACK: 40 ms per hop otherwise.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _context(cafile: str | None, cadata: str | None) -> ssl.SSLContext:
    """Verifying context: the system CAs (or ``cafile`` instead), plus ``cadata`` when given."""
    context = ssl.create_default_context(cafile=cafile)
    if cadata:
        context.load_verify_locations(cadata=cadata)
    return context


def _tls_to_proxy(
    sock: socket.socket, proxy: _Endpoint, context: ssl.SSLContext, where: str, timeout: float
) -> ssl.SSLSocket:
    return _guard(
        lambda: context.wrap_socket(sock, server_hostname=proxy.host),
        timeout,
        timeout_detail=f"TLS handshake with {where} did not finish",
        tls_detail=f"TLS with {where} failed",
    )


def _guard(op: Callable[[], _T], timeout: float, *, timeout_detail: str, tls_detail: str) -> _T:
    """Run a TLS step, mapping socket/ssl errors to results."""
    try:
        return op()
    except TimeoutError:
        raise _Failed("timeout", f"{timeout_detail} within {timeout:g}s") from None
    except ssl.SSLCertVerificationError as exc:
        raise _Failed("tls_failure", f"{tls_detail}: certificate not trusted ({exc.verify_message})") from None
    except ssl.SSLError as exc:
        raise _Failed("tls_failure", f"{tls_detail}: {exc.reason or exc}") from None
    except OSError as exc:
        raise _Failed("tls_failure", f"{tls_detail}: {exc.strerror or exc}") from None


def _send_connect(sock: socket.socket, target: _Endpoint, where: str, timeout: float) -> bytes:
    request = f"CONNECT {target.authority} HTTP/1.1\r\nHost: {target.authority}\r\nUser-Agent: {_USER_AGENT}\r\n\r\n"
    try:
        sock.sendall(request.encode("ascii"))
        status, _, _, pending = _read_head(sock.recv)
    except TimeoutError:
        raise _Failed(
            "timeout", f"{where} accepted the connection but did not answer CONNECT within {timeout:g}s"
        ) from None
    except _Closed:
        raise _Failed("connect_refused", f"{where} closed the connection without answering CONNECT") from None
    except _Malformed as exc:
        raise _Failed("connect_refused", f"{where} answered CONNECT with something that is not HTTP ({exc})") from None
    except OSError as exc:
        raise _Failed("proxy_unreachable", f"{where} dropped the connection: {exc.strerror or exc}") from None
    if 200 <= status < 300:
        return pending
    if status in _GATEWAY_ERRORS:
        raise _Failed(
            "registry_not_answering",
            f"{where} could not reach {target.authority}: CONNECT answered {status}",
            status,
        )
    hint = " (the proxy wants credentials; allow the nodes by source address)" if status == 407 else ""
    raise _Failed("connect_refused", f"{where} refused CONNECT {target.authority}: {status}{hint}", status)


def _get_v2(tunnel: _TunnelTls, target: _Endpoint, where: str, timeout: float) -> tuple[int, dict[str, str]]:
    host = target.authority.removesuffix(":443")
    request = f"GET /v2/ HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {_USER_AGENT}\r\nConnection: close\r\n\r\n"
    try:
        tunnel.sendall(request.encode("ascii"))
        status, _, headers, _ = _read_head(tunnel.recv)
    except TimeoutError:
        raise _Failed(
            "timeout", f"{target.authority} did not answer GET /v2/ within {timeout:g}s through {where}"
        ) from None
    except (_Closed, ssl.SSLError, OSError):
        raise _Failed(
            "registry_not_answering", f"{target.authority} closed the connection before answering GET /v2/"
        ) from None
    except _Malformed as exc:
        raise _Failed("registry_not_answering", f"{target.authority} answered GET /v2/ with non-HTTP ({exc})") from None
    return status, headers


def _api_version(value: str | None) -> str | None:
    """The registry's API version header, only in the shape registries send (``registry/2.0``): whatever the far
    end serves never reaches our results, logs or the execution history as free text."""
    if value is None:
        return None
    return value if _API_VERSION.fullmatch(value) else "(set)"


class _Closed(Exception):
    pass


class _Malformed(Exception):
    pass


def _read_head(recv: Callable[[int], bytes]) -> tuple[int, str, dict[str, str], bytes]:
    """Read an HTTP response head; return status, reason, lower-cased headers and the bytes read past it."""
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        if len(buffer) > _MAX_HEAD:
            raise _Malformed("response head larger than 64 KiB")
        chunk = recv(4096)
        if not chunk:
            if buffer:
                raise _Malformed("connection closed inside the response head")
            raise _Closed()
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    lines = head.decode("iso-8859-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise _Malformed("no HTTP status line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), parts[2] if len(parts) > 2 else "", headers, rest


class _TunnelTls:
    """TLS over an already connected transport (a plain socket, or a TLS socket to an https:// proxy).

    ``ssl.SSLSocket`` cannot wrap another ``SSLSocket``; an ``SSLObject`` over memory BIOs can, so this one class
    covers TLS-in-TLS as well. ``pending`` holds bytes the proxy sent right after its CONNECT answer.
    """

    def __init__(self, transport: socket.socket, context: ssl.SSLContext, server_hostname: str, pending: bytes) -> None:
        self._transport = transport
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        if pending:
            self._incoming.write(pending)
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_hostname=server_hostname)

    def handshake(self) -> None:
        # The last flight (client Finished) leaves with the first request, in one segment: a relaying proxy with
        # Nagle on would otherwise hold the request until the registry ACKs the Finished (40 ms on Linux).
        self._pump(self._tls.do_handshake, flush=False)

    def sendall(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = self._pump(partial(self._tls.write, view))
            view = view[written:]

    def recv(self, size: int) -> bytes:
        try:
            return self._pump(lambda: self._tls.read(size))
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            return b""

    def _pump(self, op: Callable[[], _T], flush: bool = True) -> _T:
        while True:
            try:
                result = op()
            except ssl.SSLWantReadError:
                self._flush()
                data = self._transport.recv(16384)
                if data:
                    self._incoming.write(data)
                else:
                    self._incoming.write_eof()
                continue
            if flush:
                self._flush()
            return result

    def _flush(self) -> None:
        data = self._outgoing.read()
        if data:
            self._transport.sendall(data)
