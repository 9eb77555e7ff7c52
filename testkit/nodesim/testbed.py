"""The node-simulation topology: a node in a private subnet whose only way out is an HTTP proxy.

::

    node ns  nsim-node-<run>       proxy ns  nsim-proxy-<run>          internet ns  nsim-inet-<run>
    eth0 10.0.1.20/24  <--veth-->  eth0 10.0.1.10/24
    lo   169.254.169.254 (IMDS)    tinyproxy 10.0.1.10:3128
                                   squid ssl-bump 10.0.1.10:3129 (on demand: TLS-inspecting)
                                   eth1 192.168.77.1/24  <--veth-->    eth0 192.168.77.2/24
                                   (ip_forward=0: it only proxies)     docker-registry :443 TLS
                                                                       "registry.example.test"

The node has NO route beyond 10.0.1.0/24, so the registry is reachable only through tinyproxy. Every namespace's
/etc/hosts maps registry.example.test to 192.168.77.2, so a failed pull is about routing/proxying, never DNS.
The VPC CIDR served by the fake IMDS is 10.0.0.0/16. Addresses are only ever used inside these namespaces.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from . import netns
from .boot import BOOT_TIMEOUT, BootResult, NodeDisk, boot
from .image import OciImage, PullResult, build_oci_image, pull_image, push_image
from .pki import CertificateAuthority, ServerCert, issue_cert, make_ca
from .services import (
    FakeImds,
    ProxyService,
    RegistryService,
    default_metadata,
    start_imds,
    start_registry,
    start_squid_bump,
    start_tinyproxy,
)

NODE_IP = "10.0.1.20"
PROXY_IP = "10.0.1.10"
NODE_SUBNET = "10.0.1.0/24"
VPC_CIDR = "10.0.0.0/16"
PROXY_PORT = 3128
INSPECTING_PROXY_PORT = 3129  # squid ssl-bump on the proxy host, started on demand
DEAD_PROXY_PORT = 3999  # on the proxy host, nothing listens: connection refused
PROXY_UPLINK_IP = "192.168.77.1"
REGISTRY_IP = "192.168.77.2"
REGISTRY_NAME = "registry.example.test"
REGISTRY_PORT = 443
IMDS_IP = "169.254.169.254"
IMAGE_REPOSITORY = "nodesim/hello"
IMAGE_TAG = "1.0"
INSTANCE_ID = "i-0123456789abcdef0"


@dataclass
class Testbed:
    __test__ = False  # not a test class, despite the name

    directory: Path
    run_id: str
    node: str  # namespace names
    proxy_host: str
    internet: str
    ca: CertificateAuthority | None = None
    cert: ServerCert | None = None
    proxy: ProxyService | None = None
    registry: RegistryService | None = None
    imds: FakeImds | None = None
    image: OciImage | None = None
    corp_ca: CertificateAuthority | None = None  # the TLS-inspecting proxy's signing CA
    inspecting_proxy: ProxyService | None = None
    _counter: Iterator[int] = field(default_factory=itertools.count)

    # --- what tests use ------------------------------------------------------------------------------------

    @property
    def proxy_value(self) -> str:
        """The SSM parameter value pointing at the live proxy."""
        return f"http://{PROXY_IP}:{PROXY_PORT}"

    @property
    def dead_proxy_value(self) -> str:
        """A value pointing at a port of the proxy host where nothing listens."""
        return f"http://{PROXY_IP}:{DEAD_PROXY_PORT}"

    @property
    def image_reference(self) -> str:
        assert self.registry
        return self.registry.reference(IMAGE_REPOSITORY, IMAGE_TAG)

    def new_disk(self, name: str = "node") -> NodeDisk:
        """A fresh node disk (a new instance); boot it several times to simulate reboots.

        Its image trusts the registry's CA (the stand-in for the public roots an AMI ships), not the corporate CA.
        """
        disk = NodeDisk(self.directory / "disks" / f"{name}-{next(self._counter)}")
        assert self.ca
        disk.install_image_trust(self.ca.cert.read_bytes())
        return disk

    @property
    def inspecting_proxy_value(self) -> str:
        """The address of the TLS-inspecting proxy (call :meth:`start_inspecting_proxy` first)."""
        return f"http://{PROXY_IP}:{INSPECTING_PROXY_PORT}"

    def start_inspecting_proxy(self) -> ProxyService:
        """squid with ssl-bump on the proxy host (once per testbed): it re-signs the registry's certificate with
        the corporate CA (``corp_ca``, made here) and trusts the registry's real CA upstream."""
        if self.inspecting_proxy is None:
            assert self.ca
            self.corp_ca = make_ca(self.directory / "corp-pki", name="Example Corp TLS Inspection CA")
            self.inspecting_proxy = start_squid_bump(
                PROXY_IP,
                INSPECTING_PROXY_PORT,
                signing_cert=self.corp_ca.cert,
                signing_key=self.corp_ca.key,
                upstream_ca=self.ca.cert,
                allow=[NODE_SUBNET],
                netns=self.proxy_host,
            )
        return self.inspecting_proxy

    def pull_with_node_trust(self, env: Mapping[str, str], disk: NodeDisk) -> PullResult:
        """Pull the test image from the node with ``env``, trusting exactly the node's system trust store.

        What containerd trusts on Amazon Linux is /etc/pki/tls/certs/ca-bundle.crt: the image's extracted bundle,
        or the one the node's ``update-ca-trust extract`` rebuilt (after a boothook added an anchor). skopeo runs
        outside the node's mount namespace, so Go's default path is pointed at that node file (SSL_CERT_FILE) and
        its certificate directory at an empty one: no CA of the test process or the host is trusted.
        """
        destination = self.directory / "pulls" / f"pull-{next(self._counter)}"
        empty = self.directory / "pulls" / "no-extra-trust"
        empty.mkdir(parents=True, exist_ok=True)
        trust = {"SSL_CERT_FILE": str(disk.node_file("/etc/pki/tls/certs/ca-bundle.crt")), "SSL_CERT_DIR": str(empty)}
        return pull_image(self.image_reference, destination, empty, env={**env, **trust}, netns=self.node)

    def boot(
        self,
        user_data: bytes,
        disk: NodeDisk | None = None,
        *,
        nodeadm_environment: bool = True,
        timeout: float = BOOT_TIMEOUT,
    ) -> BootResult:
        """Boot ``user_data`` on the node (a fresh disk unless one is given); see :func:`.boot.boot`."""
        return boot(
            user_data,
            disk=disk or self.new_disk(),
            netns=self.node,
            instance_id=INSTANCE_ID,
            nodeadm_environment=nodeadm_environment,
            timeout=timeout,
        )

    def pull(self, env: Mapping[str, str]) -> PullResult:
        """Pull the test image from the node with exactly ``env`` (plus PATH), trusting the test CA."""
        assert self.ca
        destination = self.directory / "pulls" / f"pull-{next(self._counter)}"
        destination.parent.mkdir(parents=True, exist_ok=True)
        return pull_image(self.image_reference, destination, self.ca.trust_dir, env=env, netns=self.node)

    def connect_direct(self) -> int:
        """Try a TCP connection from the node straight to the registry; return 0 or the errno it failed with."""

        def attempt() -> int:
            try:
                with socket.create_connection((REGISTRY_IP, REGISTRY_PORT), timeout=3):
                    return 0
            except TimeoutError:
                return errno.ETIMEDOUT
            except OSError as exc:
                return exc.errno or -1

        return netns.run_in_netns(self.node, attempt)

    def route_to_registry(self) -> str:
        """``ip route get`` from the node to the registry (iproute2's answer or its error)."""
        done = netns.ip("route", "get", REGISTRY_IP, netns=self.node, check=False)
        return (done.stdout + done.stderr).strip()

    @contextlib.contextmanager
    def imds_stopped(self) -> Iterator[None]:
        """No IMDS listening on its address: connections are refused at once."""
        if self.imds:
            self.imds.stop()
            self.imds = None
        try:
            yield
        finally:
            self.imds = start_imds(IMDS_IP, 80, netns=self.node, metadata=_metadata())

    @contextlib.contextmanager
    def imds_hanging(self) -> Iterator[None]:
        """The IMDS accepts connections and never answers: only a client's total timeout gets it out."""
        assert self.imds
        self.imds.hang(True)
        try:
            yield
        finally:
            if self.imds:
                self.imds.hang(False)

    @contextlib.contextmanager
    def imds_unreachable(self) -> Iterator[None]:
        """IMDS packets go to the proxy host, which drops them silently (no listener, no ICMP): timeouts."""
        if self.imds:
            self.imds.stop()
            self.imds = None
        netns.ip("addr", "del", f"{IMDS_IP}/32", "dev", "lo", netns=self.node)
        netns.ip("route", "add", f"{IMDS_IP}/32", "via", PROXY_IP, netns=self.node)
        try:
            yield
        finally:
            netns.ip("route", "del", f"{IMDS_IP}/32", netns=self.node, check=False)
            netns.ip("addr", "add", f"{IMDS_IP}/32", "dev", "lo", netns=self.node)
            self.imds = start_imds(IMDS_IP, 80, netns=self.node, metadata=_metadata())

    def close(self) -> None:
        """Stop every service and delete the namespaces (also kills anything still running inside)."""
        for service in (self.imds, self.proxy, self.inspecting_proxy, self.registry):
            if service is not None:
                with contextlib.suppress(Exception):
                    service.stop()
        for ns in (self.node, self.proxy_host, self.internet):
            netns.delete(ns)


def _metadata() -> dict[str, str]:
    return default_metadata(local_ipv4=NODE_IP, vpc_cidrs=(VPC_CIDR,), instance_id=INSTANCE_ID)


def start_testbed(directory: Path) -> Testbed:
    """Build the topology, start tinyproxy, the registry (with the image pushed) and the IMDS; torn down by
    ``close()``, and by this function itself when any step fails."""
    netns.sweep_stale()
    run_id = netns.new_run_id()
    bed = Testbed(
        directory,
        run_id,
        node=netns.unique_name("node", run_id),
        proxy_host=netns.unique_name("proxy", run_id),
        internet=netns.unique_name("inet", run_id),
    )
    try:
        hosts = [(REGISTRY_IP, REGISTRY_NAME)]
        for ns in (bed.node, bed.proxy_host, bed.internet):
            netns.create(ns, hosts=hosts)
        netns.link(bed.node, "eth0", f"{NODE_IP}/24", bed.proxy_host, "eth0", f"{PROXY_IP}/24")
        netns.link(bed.proxy_host, "eth1", f"{PROXY_UPLINK_IP}/24", bed.internet, "eth0", f"{REGISTRY_IP}/24")
        for ns in (bed.node, bed.proxy_host, bed.internet):  # none of them routes for others
            netns.ip("netns", "exec", ns, "sh", "-c", "echo 0 > /proc/sys/net/ipv4/ip_forward")
        netns.ip("addr", "add", f"{IMDS_IP}/32", "dev", "lo", netns=bed.node)

        bed.ca = make_ca(directory / "pki")
        bed.cert = issue_cert(bed.ca, directory / "pki", [REGISTRY_NAME])
        bed.registry = start_registry(
            REGISTRY_IP,
            REGISTRY_PORT,
            cert=bed.cert.cert,
            key=bed.cert.key,
            storage=directory / "registry-storage",
            server_name=REGISTRY_NAME,
            ca=bed.ca.cert,
            netns=bed.internet,
            workdir=directory / "services",
        )
        bed.image = build_oci_image(directory / "oci", tag=IMAGE_TAG)
        push_image(bed.image, bed.image_reference, bed.ca.trust_dir, netns=bed.internet)
        bed.proxy = start_tinyproxy(
            PROXY_IP,
            PROXY_PORT,
            allow=[NODE_SUBNET],
            connect_ports=[REGISTRY_PORT],
            netns=bed.proxy_host,
            workdir=directory / "services",
        )
        bed.imds = start_imds(IMDS_IP, 80, netns=bed.node, metadata=_metadata())
    except BaseException:
        bed.close()
        raise
    return bed
