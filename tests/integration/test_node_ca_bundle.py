"""A TLS-inspecting proxy in the node simulation: the pull fails without the CA bundle and works with it.

REAL: squid with ssl-bump (Debian's squid-openssl) on the proxy host, re-signing the registry's certificate with a
corporate CA made by openssl; skopeo (Go's crypto/x509, like containerd) trusting exactly the node's system trust
store; the boothook `eks-proxy render --ca-bundle` writes, run by sh. SIMULATED: cloud-init, nodeadm, systemd as in
test_node_boot.py, and Amazon Linux's `update-ca-trust extract` (nodesim/boot.py: the image's anchors plus
/etc/pki/ca-trust/source/anchors into the bundle /etc/pki/tls/certs/ca-bundle.crt points at). The node's image
trusts the registry's real CA (the public roots a real AMI ships); nothing else is trusted unless the boothook adds
it: the test process never hands the corporate CA to the pull.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from testkit.nodesim.boot import ADMIN_ANCHORS, EXTRACTED_BUNDLE, BootResult
from testkit.nodesim.eks import as_launched_by_eks, context_args, eks_proxy_cli
from testkit.nodesim.testbed import NODE_IP, REGISTRY_NAME, REGISTRY_PORT, Testbed
from testkit.tools import require_tool

pytestmark = [pytest.mark.netns, pytest.mark.slow]
UNKNOWN_AUTHORITY = "certificate signed by unknown authority"


@pytest.fixture(scope="module")
def inspecting(testbed: Testbed) -> Testbed:
    require_tool("/usr/sbin/squid", "/usr/lib/squid/security_file_certgen")
    testbed.start_inspecting_proxy()
    return testbed


def _ca_file(bed: Testbed, tmp_path: Path) -> Path:
    assert bed.corp_ca
    path = tmp_path / "corp-ca.pem"
    path.write_bytes(bed.corp_ca.cert.read_bytes())
    return path


def render(node_os: str, value: str, ca_file: Path | None) -> bytes:
    """`eks-proxy render` as a user runs it, with `--ca-bundle FILE` when given."""
    extra = ["--ca-bundle", str(ca_file)] if ca_file else []
    cmd = [eks_proxy_cli(), "render", "--value", value, "--os", node_os, *context_args(()), *extra]
    done = subprocess.run(cmd, capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def boot(bed: Testbed, node_os: str, user_data: bytes, disk: object = None) -> BootResult:
    booted = bed.boot(as_launched_by_eks(user_data, node_os), disk=disk)  # type: ignore[arg-type]
    assert not booted.failed(), [(r.part.filename, r.returncode, r.output) for r in booted.failed()]
    return booted


def pull_through_inspection(bed: Testbed, booted: BootResult) -> tuple[bool, str]:
    assert bed.inspecting_proxy and bed.image
    env = booted.environment("containerd").env
    assert env.get("HTTPS_PROXY") == bed.inspecting_proxy_value, env
    log_before = len((bed.inspecting_proxy.workdir / "access.log").read_text(errors="replace"))
    pulled = bed.pull_with_node_trust(env, booted.disk)
    access = (bed.inspecting_proxy.workdir / "access.log").read_text(errors="replace")[log_before:]
    assert NODE_IP in access and f"{REGISTRY_NAME}:{REGISTRY_PORT}" in access, access  # it went through squid
    if pulled.ok:
        assert pulled.file_content("hello.txt") == bed.image.payload
    return pulled.ok, pulled.stderr


@pytest.mark.parametrize("node_os", ["al2023", "al2"])
def test_inspecting_proxy_pull_fails_without_the_bundle_and_works_with_it(
    inspecting: Testbed, node_os: str, tmp_path: Path
) -> None:
    bed = inspecting
    plain = bed.inspecting_proxy_value
    without = boot(bed, node_os, render(node_os, plain, None))
    ok, stderr = pull_through_inspection(bed, without)
    assert not ok and UNKNOWN_AUTHORITY in stderr, stderr  # the node trusts only its image's roots
    assert without.update_ca_trust_calls == []

    ca_file = _ca_file(bed, tmp_path)
    value = json.dumps({"http_proxy": plain, "ca_bundle": "/eks-proxy/ca-bundle"})
    with_ca = boot(bed, node_os, render(node_os, value, ca_file))
    anchor = with_ca.root / ADMIN_ANCHORS / "eks-proxy.pem"
    assert anchor.read_bytes() == ca_file.read_bytes()
    assert with_ca.update_ca_trust_calls == ["update-ca-trust extract"]
    extracted = (with_ca.root / EXTRACTED_BUNDLE).read_text()
    assert ca_file.read_text() in extracted and bed.ca and bed.ca.cert.read_text() in extracted  # added, not replaced
    ok, stderr = pull_through_inspection(bed, with_ca)
    assert ok, stderr


@pytest.mark.parametrize("node_os", ["al2023", "al2"])
def test_every_boot_installs_the_same_bundle_again(inspecting: Testbed, node_os: str, tmp_path: Path) -> None:
    bed = inspecting
    value = json.dumps({"http_proxy": bed.inspecting_proxy_value, "ca_bundle": "/eks-proxy/ca-bundle"})
    user_data = render(node_os, value, _ca_file(bed, tmp_path))
    disk = bed.new_disk()
    first = boot(bed, node_os, user_data, disk)
    written = first.disk.written()
    second = boot(bed, node_os, user_data, disk)  # a reboot: /etc kept, the boothook runs again
    assert second.update_ca_trust_calls == ["update-ca-trust extract"]
    assert {k: v for k, v in second.disk.written().items() if k.startswith("/etc/")} == {
        k: v for k, v in written.items() if k.startswith("/etc/")
    }
    ok, stderr = pull_through_inspection(bed, second)
    assert ok, stderr


def test_without_inspection_the_image_trust_alone_pulls(testbed: Testbed) -> None:
    """The control: through tinyproxy (no inspection) the node's own trust store suffices, so the failure above is
    the inspection's, and the node's trust store is what decides."""
    booted = boot(testbed, "al2023", render("al2023", testbed.proxy_value, None))
    pulled = testbed.pull_with_node_trust(booted.environment("containerd").env, booted.disk)
    assert pulled.ok, pulled.stderr
