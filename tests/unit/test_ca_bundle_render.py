"""The CA bundle in what we write: the Amazon Linux boothook's trust anchor, Bottlerocket's settings.pki, the CLI's
--ca-bundle, and `plan`'s CA lines. The nodes booting it are in tests/integration/test_node_ca_bundle.py."""

from __future__ import annotations

import base64
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from eks_proxy.cli.report import PlannedChange, ca_bundle_lines
from eks_proxy.model import Decision, Outcome
from eks_proxy.proxy.ca_bundle import MAX_BUNDLE_BYTES, parse_ca_bundle
from eks_proxy.proxy.no_proxy import NodeContext
from eks_proxy.proxy.value import ProxyConfig, parse_proxy_value
from eks_proxy.userdata.merge import (
    USER_DATA_LIMIT,
    UserDataError,
    find_fingerprint,
    inject,
    installed_ca_bundle,
    render_userdata,
)
from eks_proxy.userdata.node_os import NodeOS

from testkit.ca_pem import ca_pem

CONTEXT = NodeContext(region="eu-west-1", service_cidr="172.20.0.0/16", vpc_cidrs=("10.0.0.0/16",))
VALUE = '{"http_proxy": "http://10.0.0.10:3128", "ca_bundle": "/eks-proxy/ca-bundle"}'
PEM_2026 = ca_pem("Corp Inspection CA 2026")
PEM_2027 = ca_pem("Corp Inspection CA 2027")


def config(pem: str | None = PEM_2026) -> ProxyConfig:
    parsed = parse_proxy_value(VALUE if pem else "http://10.0.0.10:3128")
    return parsed.with_ca_bundle(parse_ca_bundle(pem)) if pem else parsed


def _boothook(user_data: bytes) -> str:
    body = user_data.decode().split("Content-Type: text/cloud-boothook\n\n", 1)[1]
    return body.split("\n--//", 1)[0]


@pytest.mark.parametrize("node_os", [NodeOS.AL2023, NodeOS.AL2])
def test_the_boothook_installs_the_bundle_before_anything_else(node_os: NodeOS) -> None:
    hook = _boothook(render_userdata(config(), CONTEXT, node_os))
    lines = hook.splitlines()
    assert lines[0] == "#!/bin/sh" and lines[1].startswith("# eks-proxy fingerprint=")
    assert lines[2] == "A=/etc/pki/ca-trust/source/anchors/eks-proxy.pem"
    assert lines[3] == "mkdir -p ${A%/*}&&cat >$A <<'EOF'"
    assert hook.count(PEM_2026) == 1
    assert "EOF\nupdate-ca-trust extract\n" in hook
    assert hook.index("update-ca-trust extract") < hook.index("systemctl daemon-reload")
    assert installed_ca_bundle(render_userdata(config(), CONTEXT, node_os)) == PEM_2026


@pytest.mark.parametrize("node_os", [NodeOS.AL2023, NodeOS.AL2])
def test_the_boothook_writes_exactly_the_bundle_when_run(node_os: NodeOS, tmp_path: Path) -> None:
    """The CA step run by sh, with update-ca-trust stubbed and the anchor redirected: the file is the bundle."""
    hook = _boothook(render_userdata(config(), CONTEXT, node_os))
    step = hook.split("\n", 2)[2].split("update-ca-trust extract\n", 1)[0]
    anchor = tmp_path / "anchors" / "eks-proxy.pem"
    script = step.replace("A=/etc/pki/ca-trust/source/anchors/eks-proxy.pem", f"A={anchor}")
    subprocess.run(["sh", "-c", script], check=True)
    assert anchor.read_text() == PEM_2026


def test_without_a_bundle_nothing_changes_in_the_renders() -> None:
    for node_os in NodeOS:
        rendered = render_userdata(config(None), CONTEXT, node_os)
        assert b"ca-trust" not in rendered and b"pki" not in rendered and installed_ca_bundle(rendered) == ""


def test_bottlerocket_pki_setting_decodes_to_the_bundle_and_is_trusted() -> None:
    settings = tomllib.loads(render_userdata(config(), CONTEXT, NodeOS.BOTTLEROCKET).decode())["settings"]
    entry = settings["pki"]["eks-proxy"]
    assert entry["trusted"] is True
    assert base64.b64decode(entry["data"], validate=True).decode() == PEM_2026
    assert settings["network"]["https-proxy"] == "http://10.0.0.10:3128"


def test_bottlerocket_keeps_the_users_own_pki_entries_and_rotates_ours_in_place() -> None:
    users = '[settings.pki.team-ca]\ndata = "dGVhbQ=="\ntrusted = true\n\n[settings.kubernetes]\nmax-pods = 110\n'
    once = inject(users.encode(), config(), CONTEXT, NodeOS.BOTTLEROCKET)
    assert isinstance(once.user_data, bytes)
    settings = tomllib.loads(once.user_data.decode())["settings"]
    assert settings["pki"]["team-ca"] == {"data": "dGVhbQ==", "trusted": True}
    assert settings["kubernetes"] == {"max-pods": 110}
    assert inject(once.user_data, config(), CONTEXT, NodeOS.BOTTLEROCKET).changed is False
    rotated = inject(once.user_data, config(PEM_2027), CONTEXT, NodeOS.BOTTLEROCKET)
    assert isinstance(rotated.user_data, bytes)
    text = rotated.user_data.decode()
    assert text.count("[settings.pki.eks-proxy]") == 1
    assert installed_ca_bundle(text) == PEM_2027
    assert find_fingerprint(text) == rotated.fingerprint != once.fingerprint
    removed = inject(rotated.user_data, config(None), CONTEXT, NodeOS.BOTTLEROCKET)
    assert isinstance(removed.user_data, bytes)
    after = tomllib.loads(removed.user_data.decode())["settings"]
    assert "eks-proxy" not in after["pki"] and after["pki"]["team-ca"]["trusted"] is True


@pytest.mark.parametrize("node_os", list(NodeOS))
def test_a_rotation_replaces_the_bundle_and_changes_the_fingerprint(node_os: NodeOS) -> None:
    first = inject(b"", config(), CONTEXT, node_os)
    again = inject(first.user_data, config(), CONTEXT, node_os)
    assert again.changed is False
    rotated = inject(first.user_data, config(PEM_2027), CONTEXT, node_os)
    assert rotated.changed and rotated.fingerprint != first.fingerprint
    assert installed_ca_bundle(rotated.user_data) == PEM_2027
    text = rotated.user_data.decode() if isinstance(rotated.user_data, bytes) else rotated.user_data
    assert PEM_2026 not in text and base64.b64encode(PEM_2026.encode()).decode() not in text


def test_a_bundle_too_big_for_the_users_user_data_is_refused_naming_the_bundle() -> None:
    pems = "".join(ca_pem(f"Corp CA {n}") for n in range(12))
    bundle = parse_ca_bundle(pems[:MAX_BUNDLE_BYTES].rsplit("-----BEGIN", 1)[0])
    big = parse_proxy_value(VALUE).with_ca_bundle(bundle)
    script = b"#!/bin/bash\n" + b"# padding\n" * ((USER_DATA_LIMIT - 4000) // 10)
    with pytest.raises(UserDataError, match=r"of them the CA bundle\), over EC2's limit .* or the CA bundle"):
        inject(script, big, CONTEXT, NodeOS.AL2023)


def test_plan_shows_a_rotation_certificate_by_certificate() -> None:
    before = render_userdata(config(), CONTEXT, NodeOS.AL2023)
    after = render_userdata(config(PEM_2027), CONTEXT, NodeOS.AL2023)
    decision = Decision("prod", "ng-a", Outcome.CREATE_VERSION, desired_fingerprint="f" * 16)
    lines = ca_bundle_lines(PlannedChange(decision, before, after))
    assert lines[0] == "  CA bundle:   changes (TLS-inspecting proxy)"
    assert lines[1].startswith("    - CN=Corp Inspection CA 2026 (sha256 ")
    assert lines[2].startswith("    + CN=Corp Inspection CA 2027 (sha256 ")
    added = ca_bundle_lines(PlannedChange(decision, render_userdata(config(None), CONTEXT, NodeOS.AL2023), after))
    assert added[0] == "  CA bundle:   added (TLS-inspecting proxy)"
    same = ca_bundle_lines(PlannedChange(decision, after, after))
    assert same[0].startswith("  CA bundle:   unchanged, 1 certificate(s): CN=Corp Inspection CA 2027")
    assert ca_bundle_lines(PlannedChange(decision, b"#!/bin/sh\n", b"#!/bin/sh\n")) == []


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "eks_proxy.cli.main", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_cli_render_and_inject_take_the_bundle_from_a_file(tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text("# our corporate CA\n" + PEM_2026)
    base = ["--value", VALUE, "--os", "al2", "--region", "eu-west-1"]
    refused = _cli("render", *base)
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.count("\n") == 1 and "--ca-bundle" in refused.stderr
    rendered = _cli("render", *base, "--ca-bundle", str(ca_file))
    assert rendered.returncode == 0, rendered.stderr
    assert installed_ca_bundle(rendered.stdout.encode()) == PEM_2026  # normalized: the comment is not written
    injected = _cli("inject", *base, "--ca-bundle", str(ca_file), str(tmp_path / "missing"))
    assert injected.returncode == 2


@pytest.mark.parametrize("problem", ["leaf", "key", "missing", "huge"])
def test_cli_refuses_a_bad_bundle_file_in_one_line(tmp_path: Path, problem: str) -> None:
    from testkit.ca_pem import private_key_pem

    ca_file = tmp_path / "ca.pem"
    content = {
        "leaf": ca_pem("registry.example.test", ca=False, key_usage_cert_sign=None),
        "key": PEM_2026 + private_key_pem(),
        "huge": PEM_2026 * 20,
        "missing": None,
    }[problem]
    if content is not None:
        ca_file.write_text(content)
    done = _cli(
        "render", "--value", VALUE, "--os", "bottlerocket", "--region", "eu-west-1", "--ca-bundle", str(ca_file)
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("eks-proxy: error: ") and done.stderr.count("\n") == 1
    if problem == "key":
        assert private_key_pem().splitlines()[1][:20] not in done.stderr


def test_cli_warns_about_a_bundle_expiring_soon(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    ca_file = tmp_path / "ca.pem"
    ca_file.write_text(ca_pem("Short Lived CA", not_after=datetime.now(UTC) + timedelta(days=5)))
    done = _cli("render", "--value", VALUE, "--os", "al2023", "--region", "eu-west-1", "--ca-bundle", str(ca_file))
    assert done.returncode == 0
    assert done.stderr.startswith("eks-proxy: warning: CN=Short Lived CA expires on ")
