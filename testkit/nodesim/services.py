"""Real services for the node simulation: tinyproxy, squid with ssl-bump (a TLS-inspecting proxy), docker-registry
(TLS) and a fake IMDSv2.

Each starter returns a handle with ``url``, ``port``, ``stop()`` and a log. ``netns=None`` means the current
namespace (loopback is fine), so the same blocks serve the preflight tests. Example::

    ca = make_ca(tmp / "pki"); cert = issue_cert(ca, tmp / "pki", ["localhost", "127.0.0.1"])
    registry = start_registry("127.0.0.1", cert=cert.cert, key=cert.key, storage=tmp / "registry",
                              server_name="localhost")
    proxy = start_tinyproxy("127.0.0.1", allow=["127.0.0.1"], connect_ports=[registry.port])
    ...  # HTTPS_PROXY=proxy.url, GET registry.url + "/v2/" trusting ca.cert
    proxy.stop(); registry.stop()

Every process gets its own config file and port: the system services the Debian packages may have started are
never used. The system-wide tinyproxy/docker-registry config files are never read.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

from .netns import exec_prefix, run_in_netns

READY_TIMEOUT = 15.0
CLEAN_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


def free_port(address: str = "127.0.0.1", netns: str | None = None) -> int:
    """A TCP port free on ``address`` right now (in ``netns``)."""

    def pick() -> int:
        with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET) as s:
            s.bind((address, 0))
            return int(s.getsockname()[1])

    return run_in_netns(netns, pick)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


@dataclass
class Service:
    """A process we started (never a system service): stopping it kills its whole process group."""

    name: str
    address: str  # the listen address
    port: int
    netns: str | None
    process: subprocess.Popen[bytes]
    log_path: Path
    workdir: Path
    _own_workdir: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        """Terminate (then kill) the process group; idempotent."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        if self._own_workdir is not None:
            self._own_workdir.cleanup()
            self._own_workdir = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class ProxyService(Service):
    @property
    def url(self) -> str:
        """``http://address:port``: the form users store in the SSM parameter."""
        return f"http://{_url_host(self.address)}:{self.port}"


@dataclass
class RegistryService(Service):
    server_name: str = ""  # the host name clients use (must be in the certificate)

    @property
    def host(self) -> str:
        """``name:port`` as used in image references."""
        return f"{_url_host(self.server_name)}:{self.port}"

    @property
    def url(self) -> str:
        return f"https://{self.host}"

    def reference(self, repository: str, tag: str) -> str:
        """``docker://name:port/repository:tag`` for skopeo."""
        return f"docker://{self.host}/{repository}:{tag}"


def _workdir(workdir: Path | None, prefix: str) -> tuple[Path, tempfile.TemporaryDirectory[str] | None]:
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        return workdir, None
    tmp = tempfile.TemporaryDirectory(prefix=prefix)
    return Path(tmp.name), tmp


def _spawn(argv: Sequence[str], netns: str | None, log_path: Path, cwd: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [*exec_prefix(netns), *argv],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=dict(CLEAN_ENV),  # no REGISTRY_* or proxy variables leak in from the test process
            start_new_session=True,
        )


def _wait_ready(service: Service, probe: Callable[[], bool]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    last: Exception | None = None
    while time.monotonic() < deadline:
        if not service.running:
            service.stop()
            raise RuntimeError(f"{service.name} exited at start (rc={service.process.returncode}):\n{service.log()}")
        try:
            if run_in_netns(service.netns, probe):
                return
        except OSError as exc:
            last = exc
        time.sleep(0.05)
    service.stop()
    raise RuntimeError(f"{service.name} not ready on {service.address}:{service.port} ({last}):\n{service.log()}")


def _tcp_probe(address: str, port: int) -> Callable[[], bool]:
    def probe() -> bool:
        with socket.create_connection((address, port), timeout=1):
            return True

    return probe


def start_tinyproxy(
    listen: str = "127.0.0.1",
    port: int | None = None,
    *,
    allow: Iterable[str] = ("127.0.0.1",),
    connect_ports: Iterable[int] = (443,),
    netns: str | None = None,
    workdir: Path | None = None,
    timeout: int = 30,
) -> ProxyService:
    """Start tinyproxy on ``listen:port`` with our own config.

    ``allow``: client addresses/CIDRs allowed (others get 403); ``connect_ports``: ports CONNECT may reach (others
    get 403, which is how to simulate a proxy refusing CONNECT). ``port=None`` picks a free port.
    """
    port = port or free_port(listen, netns)
    directory, own = _workdir(workdir, "nsim-tinyproxy-")
    config = directory / f"tinyproxy-{port}.conf"
    lines = [
        f"Port {port}",
        f"Listen {listen}",
        f"Timeout {timeout}",
        "MaxClients 64",
        "LogLevel Info",
        'ViaProxyName "nodesim-proxy"',
        *(f"Allow {a}" for a in allow),
        *(f"ConnectPort {p}" for p in connect_ports),
    ]
    config.write_text("\n".join(lines) + "\n")
    log_path = directory / f"tinyproxy-{port}.log"
    process = _spawn(["tinyproxy", "-d", "-c", str(config)], netns, log_path, directory)
    service = ProxyService("tinyproxy", listen, port, netns, process, log_path, directory, own)
    _wait_ready(service, _tcp_probe(listen, port))
    return service


SQUID = "/usr/sbin/squid"
SQUID_CERTGEN = "/usr/lib/squid/security_file_certgen"
SQUID_USER = "proxy"  # Debian's squid user: squid refuses to run as root


def start_squid_bump(
    listen: str = "127.0.0.1",
    port: int | None = None,
    *,
    signing_cert: Path,
    signing_key: Path,
    upstream_ca: Path,
    allow: Iterable[str] = ("127.0.0.1",),
    netns: str | None = None,
) -> ProxyService:
    """A TLS-inspecting proxy: squid (Debian's squid-openssl) with ssl-bump on ``listen:port``.

    Every CONNECT is bumped: squid terminates the client's TLS with a certificate for the requested host that it
    generates and signs with ``signing_cert``/``signing_key`` (the "corporate CA"), and opens its own TLS to the
    server, trusting only ``upstream_ca``. A client that does not trust the corporate CA fails with "certificate
    signed by unknown authority", exactly as nodes behind a bank's inspecting proxy do. ``allow``: client CIDRs.

    squid drops root for the ``proxy`` user, so its files live in a directory of their own (not under pytest's
    0700 temporary directory) owned by that user; ``-n`` gives its shared-memory segments a name of their own.
    """
    port = port or free_port(listen, netns)
    own = tempfile.TemporaryDirectory(prefix="nsim-squid-")
    directory = Path(own.name)
    for source, name in ((signing_cert, "signing.crt"), (signing_key, "signing.key"), (upstream_ca, "upstream.crt")):
        (directory / name).write_bytes(source.read_bytes())
    done = subprocess.run(
        [SQUID_CERTGEN, "-c", "-s", str(directory / "ssl_db"), "-M", "4MB"], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"security_file_certgen -c failed: {done.stderr.strip()}")
    name = f"nsim{os.getpid()}x{port}"
    acls = "\n".join(f"acl clients src {cidr}" for cidr in allow)
    (directory / "squid.conf").write_text(
        f"""http_port {_url_host(listen)}:{port} ssl-bump generate-host-certificates=on \
dynamic_cert_mem_cache_size=4MB tls-cert={directory}/signing.crt tls-key={directory}/signing.key
sslcrtd_program {SQUID_CERTGEN} -s {directory}/ssl_db -M 4MB
sslcrtd_children 2 startup=1 idle=1
acl step1 at_step SslBump1
ssl_bump peek step1
ssl_bump bump all
tls_outgoing_options cafile={directory}/upstream.crt
{acls}
http_access allow clients
http_access deny all
cache_effective_user {SQUID_USER}
pid_filename {directory}/squid.pid
cache_log {directory}/cache.log
access_log stdio:{directory}/access.log
cache deny all
cache_mem 8 MB
coredump_dir {directory}
netdb_filename none
pinger_enable off
visible_hostname nodesim-inspecting-proxy
shutdown_lifetime 1 seconds
"""
    )
    subprocess.run(["chown", "-R", SQUID_USER, str(directory)], check=True)
    log_path = directory / "squid.out"
    process = _spawn([SQUID, "-N", "-n", name, "-f", str(directory / "squid.conf")], netns, log_path, directory)
    service = ProxyService("squid (ssl-bump)", listen, port, netns, process, log_path, directory, own)
    _wait_ready(service, _tcp_probe(listen, port))
    return service


def start_registry(
    listen: str = "127.0.0.1",
    port: int | None = None,
    *,
    cert: Path,
    key: Path,
    storage: Path,
    server_name: str | None = None,
    ca: Path | None = None,
    netns: str | None = None,
    workdir: Path | None = None,
) -> RegistryService:
    """Start docker-registry (distribution v2) serving TLS on ``listen:port`` with storage in ``storage``.

    ``server_name`` is the host name clients use (default: ``listen``); it must be in ``cert``. When ``ca`` is
    given, readiness is checked with full verification (else only TCP).
    """
    port = port or free_port(listen, netns)
    directory, own = _workdir(workdir, "nsim-registry-")
    storage.mkdir(parents=True, exist_ok=True)
    config = directory / f"registry-{port}.yml"
    config.write_text(
        json.dumps(  # JSON is YAML: no yaml dependency, no quoting surprises
            {
                "version": 0.1,
                "log": {"level": "info", "formatter": "text", "accesslog": {"disabled": False}},
                "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": True}},
                "http": {
                    "addr": f"{_url_host(listen)}:{port}",
                    "tls": {"certificate": str(cert), "key": str(key)},
                    "headers": {"X-Content-Type-Options": ["nosniff"]},
                },
            },
            indent=2,
        )
        + "\n"
    )
    log_path = directory / f"registry-{port}.log"
    process = _spawn(["docker-registry", "serve", str(config)], netns, log_path, directory)
    service = RegistryService(
        "docker-registry", listen, port, netns, process, log_path, directory, own, server_name=server_name or listen
    )
    probe = _registry_probe(listen, port, service.server_name, ca) if ca else _tcp_probe(listen, port)
    _wait_ready(service, probe)
    return service


def _registry_probe(address: str, port: int, server_name: str, ca: Path) -> Callable[[], bool]:
    context = ssl.create_default_context(cafile=str(ca))

    def probe() -> bool:
        with (
            socket.create_connection((address, port), timeout=2) as raw,
            context.wrap_socket(raw, server_hostname=server_name) as tls,
        ):
            tls.sendall(f"GET /v2/ HTTP/1.1\r\nHost: {server_name}:{port}\r\nConnection: close\r\n\r\n".encode())
            return tls.recv(64).startswith(b"HTTP/1.1 200")

    return probe


# --- fake instance metadata service (IMDSv2 only) -------------------------------------------------------------


@dataclass(frozen=True)
class ImdsRequest:
    method: str
    path: str
    token: str | None  # the X-aws-ec2-metadata-token header sent, if any
    status: int  # 0: never answered (hanging)


@dataclass
class FakeImds:
    """An in-process IMDS that, like a launch template with ``HttpTokens: required``, answers only IMDSv2.

    PUT /latest/api/token with ``X-aws-ec2-metadata-token-ttl-seconds`` (1..21600) returns a token; a GET without
    a valid ``X-aws-ec2-metadata-token`` gets 401; a PUT carrying ``X-Forwarded-For`` (i.e. sent through a proxy)
    gets 403, as on EC2. Every request is recorded in ``requests``.
    """

    address: str
    port: int
    netns: str | None
    metadata: Mapping[str, str]
    requests: list[ImdsRequest] = field(default_factory=list)
    hanging: bool = False  # accept connections but never answer (an overloaded or wedged IMDS)
    _release: threading.Event = field(default_factory=threading.Event)
    _tokens: dict[str, float] = field(default_factory=dict)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://{_url_host(self.address)}:{self.port}"

    def record(self, method: str, path: str, token: str | None, status: int) -> None:
        with self._lock:
            self.requests.append(ImdsRequest(method, path, token, status))

    def issue_token(self, ttl: int) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = time.monotonic() + ttl
        return token

    def token_valid(self, token: str | None) -> bool:
        with self._lock:
            return token is not None and self._tokens.get(token, 0.0) > time.monotonic()

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def hang(self, on: bool) -> None:
        """While on, requests are accepted and never answered; turning it off releases the waiting ones."""
        self.hanging = on
        if on:
            self._release.clear()
        else:
            self._release.set()

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeImds:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def default_metadata(
    *,
    mac: str = "0e:49:61:0f:c3:11",
    local_ipv4: str = "10.0.1.20",
    vpc_cidrs: Sequence[str] = ("10.0.0.0/16",),
    region: str = "eu-west-1",
    instance_id: str = "i-0123456789abcdef0",
) -> dict[str, str]:
    """The metadata paths a proxy boothook reads, with realistic values (paths without the /latest prefix)."""
    az = f"{region}a"
    base = f"meta-data/network/interfaces/macs/{mac}/"
    data = {
        "meta-data/instance-id": instance_id,
        "meta-data/mac": mac,
        "meta-data/local-ipv4": local_ipv4,
        "meta-data/local-hostname": f"ip-{local_ipv4.replace('.', '-')}.{region}.compute.internal",
        "meta-data/placement/region": region,
        "meta-data/placement/availability-zone": az,
        "meta-data/network/interfaces/macs/": f"{mac}/",
        base + "vpc-ipv4-cidr-block": vpc_cidrs[0],
        base + "vpc-ipv4-cidr-blocks": "\n".join(vpc_cidrs),
        base + "subnet-ipv4-cidr-block": local_ipv4.rsplit(".", 1)[0] + ".0/24",
        base + "local-ipv4s": local_ipv4,
        "dynamic/instance-identity/document": json.dumps(
            {"instanceId": instance_id, "region": region, "availabilityZone": az, "privateIp": local_ipv4}
        ),
    }
    data["meta-data/"] = "\n".join(sorted({k.split("/")[1] for k in data if k.startswith("meta-data/")} - {""}))
    return data


def _imds_handler(imds: FakeImds) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "EC2ws"
        sys_version = ""

        def log_message(self, format: str, *args: Any) -> None:  # quiet: requests are recorded instead
            pass

        def _send(self, status: int, body: str = "", headers: Mapping[str, str] | None = None) -> None:
            token = self.headers.get("X-aws-ec2-metadata-token")
            imds.record(self.command, self.path, token, status)
            payload = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(payload)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        def _hang(self) -> bool:
            if not imds.hanging:
                return False
            imds.record(self.command, self.path, self.headers.get("X-aws-ec2-metadata-token"), 0)
            imds._release.wait(600)  # until hang(False) or stop(): longer than any boot may take
            self.close_connection = True
            return True

        def do_PUT(self) -> None:
            if self._hang():
                return None
            if self.path != "/latest/api/token":
                return self._send(404)
            if self.headers.get("X-Forwarded-For"):
                return self._send(403)
            ttl_text = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", "")
            if not ttl_text.isdigit() or not 1 <= int(ttl_text) <= 21600:
                return self._send(400)
            token = imds.issue_token(int(ttl_text))
            self._send(200, token, {"X-aws-ec2-metadata-token-ttl-seconds": ttl_text})

        def do_GET(self) -> None:
            if self._hang():
                return None
            if not imds.token_valid(self.headers.get("X-aws-ec2-metadata-token")):
                return self._send(401)
            path = self.path.split("?", 1)[0]
            if not path.startswith("/latest/"):
                return self._send(404)
            value = imds.metadata.get(path.removeprefix("/latest/"))
            if value is None:
                return self._send(404, "Not Found")
            self._send(200, value)

    return Handler


def start_imds(
    address: str = "169.254.169.254",
    port: int = 80,
    *,
    netns: str | None = None,
    metadata: Mapping[str, str] | None = None,
) -> FakeImds:
    """Serve a :class:`FakeImds` on ``address:port`` inside ``netns`` (the listening socket lives there; the
    server threads live in this process, so requests are visible to the test directly)."""
    imds = FakeImds(address, port, netns, dict(metadata or default_metadata()))

    def bind() -> ThreadingHTTPServer:
        server = ThreadingHTTPServer((address, port), _imds_handler(imds), bind_and_activate=False)
        server.allow_reuse_address = True
        server.server_bind()
        server.server_activate()
        return server

    server = run_in_netns(netns, bind)
    server.daemon_threads = True
    imds._server = server
    imds._thread = threading.Thread(target=server.serve_forever, name="fake-imds", daemon=True)
    imds._thread.start()
    return imds
