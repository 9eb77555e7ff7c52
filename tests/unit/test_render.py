"""What each node OS gets: the rendered parts parsed the way the node parses them, and the boothook executed.

The boothook is run for real by dash and bash with ``-u``, with ``curl`` replaced by a fake IMDSv2 (token
required) and ``systemctl`` by a recorder on PATH, and its /etc paths moved into a temporary directory.
"""

from __future__ import annotations

import email
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import tomllib
from dataclasses import replace
from email.message import Message
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from eks_proxy.proxy.no_proxy import NodeContext, compute_no_proxy
from eks_proxy.proxy.value import parse_proxy_value
from eks_proxy.userdata import merge
from eks_proxy.userdata.merge import desired_fingerprint, find_fingerprint, inject, render_userdata
from eks_proxy.userdata.node_os import NodeOS
from eks_proxy.userdata.render import proxy_environment
from eks_proxy.userdata.render.al2023 import NODECONFIG_CONTENT_TYPE
from eks_proxy.userdata.render.boothook import CLOUD_INIT_USER_DATA, boothook_script
from eks_proxy.userdata.render.bottlerocket import https_proxy_setting
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from testkit.nodesim.bottlerocket import (
    BottlerocketSettingsError,
    ParsedUrl,
    UrlParseError,
    parse_url,
    pluto_https_proxy,
)

CONFIG = parse_proxy_value("http://10.0.0.10:3128")
# A realistic cluster: 32-character endpoint id, as EKS hands them out.
CONTEXT = NodeContext(
    region="eu-west-1",
    service_cidr="172.20.0.0/16",
    cluster_endpoint="https://0123456789ABCDEF0123456789ABCDEF.gr7.eu-west-1.eks.amazonaws.com",
    vpc_cidrs=("10.0.0.0/16",),
)
NO_PROXY = ",".join(compute_no_proxy(CONFIG, CONTEXT))
ENV_KEYS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy")


def _parts(user_data: bytes) -> list[Message]:
    message = email.message_from_bytes(user_data)
    assert message.is_multipart()
    return [part for part in message.walk() if not part.is_multipart()]


def _payload(part: Message) -> str:
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode()


@pytest.mark.parametrize("node_os", list(NodeOS))
def test_fresh_render_fits_the_size_goal(node_os: NodeOS) -> None:
    assert len(render_userdata(CONFIG, CONTEXT, node_os)) <= 2048


def test_al2023_nodeconfig_sets_every_proxy_variable_for_every_unit() -> None:
    user_data = render_userdata(CONFIG, CONTEXT, NodeOS.AL2023)
    parts = _parts(user_data)
    assert [p.get_content_type() for p in parts] == [NODECONFIG_CONTENT_TYPE, "text/cloud-boothook"]
    nodeconfig = yaml.safe_load(_payload(parts[0]))
    assert nodeconfig["apiVersion"] == "node.eks.aws/v1alpha1" and nodeconfig["kind"] == "NodeConfig"
    assert nodeconfig["spec"]["instance"]["environment"]["default"] == {
        "HTTP_PROXY": "http://10.0.0.10:3128",
        "http_proxy": "http://10.0.0.10:3128",
        "HTTPS_PROXY": "http://10.0.0.10:3128",
        "https_proxy": "http://10.0.0.10:3128",
        "NO_PROXY": NO_PROXY,
        "no_proxy": NO_PROXY,
    }
    fingerprint = desired_fingerprint(CONFIG, CONTEXT, NodeOS.AL2023)
    for part in parts:
        assert f"# eks-proxy fingerprint={fingerprint} (managed, do not edit)" in _payload(part).splitlines()[:2]


def test_al2023_nodeconfig_with_a_separate_https_proxy() -> None:
    config = parse_proxy_value('{"http_proxy": "http://[fd00::10]:3128", "https_proxy": "https://tls.corp:3129"}')
    nodeconfig = yaml.safe_load(_payload(_parts(render_userdata(config, CONTEXT, NodeOS.AL2023))[0]))
    default = nodeconfig["spec"]["instance"]["environment"]["default"]
    assert default["HTTP_PROXY"] == default["http_proxy"] == "http://[fd00::10]:3128"
    assert default["HTTPS_PROXY"] == default["https_proxy"] == "https://tls.corp:3129"


def test_al2_is_one_boothook() -> None:
    parts = _parts(render_userdata(CONFIG, CONTEXT, NodeOS.AL2))
    assert [p.get_content_type() for p in parts] == ["text/cloud-boothook"]
    script = _payload(parts[0])
    assert script.startswith("#!/bin/sh\n") and "sandbox-image" in script and "docker" not in script


def test_bottlerocket_settings() -> None:
    settings = tomllib.loads(render_userdata(CONFIG, CONTEXT, NodeOS.BOTTLEROCKET).decode())
    assert settings == {
        "settings": {"network": {"https-proxy": "http://10.0.0.10:3128", "no-proxy": NO_PROXY.split(",")}}
    }


def test_bottlerocket_keeps_an_https_scheme() -> None:
    config = parse_proxy_value("https://tls.corp:3129")
    settings = tomllib.loads(render_userdata(config, CONTEXT, NodeOS.BOTTLEROCKET).decode())
    assert settings["settings"]["network"]["https-proxy"] == "https://tls.corp:3129"


@pytest.mark.parametrize("node_os", [NodeOS.AL2023, NodeOS.AL2])
def test_rendering_is_deterministic_and_lf_only(node_os: NodeOS) -> None:
    first = render_userdata(CONFIG, CONTEXT, node_os)
    assert first == render_userdata(CONFIG, NodeContext(**vars(CONTEXT)), node_os)
    assert b"\r" not in first and first.startswith(b"MIME-Version: 1.0\n")


# --- hostile input never reaches the user data -------------------------------------------------------------------

# What a value, a region, an endpoint or a CIDR may look like once validated and normalized: nothing a shell, YAML or
# TOML gives a meaning to (no quote, backslash, whitespace, '$', '#', '%', '@', non-ASCII).
_SAFE = re.compile(r"[a-z0-9.:/\[\],-]+")
# Characters that break a quoted string in sh, YAML or TOML, or look like ASCII but are not.
_NASTY = [*"'\"`$\\;&|<>(){}#%@*=,!? \t\r\n\x00\x7f", "\u0130", "\u017f", "\u0661", "\u200b", "\uff0e", "\u212a"]


def _spoiled(base: str) -> st.SearchStrategy[str]:
    """``base`` with up to three hostile characters inserted anywhere (including both ends)."""

    def insert(text: str, edits: list[tuple[int, str]]) -> str:
        for position, char in edits:
            at = position % (len(text) + 1)
            text = text[:at] + char + text[at:]
        return text

    # Where an attack lands best: either end, or next to a separator ("eu-west-1\n", "fe80::%'...'/64").
    spots = sorted(
        {
            0,
            len(base),
            *(i for i, c in enumerate(base) if c in ".:/-"),
            *(i + 1 for i, c in enumerate(base) if c in ".:/-"),
        }
    )
    chars = st.one_of(st.sampled_from(_NASTY), st.sampled_from(_NASTY).map(lambda c: "%" + c + "x"))
    edit = st.tuples(st.one_of(st.sampled_from(spots), st.integers(0, len(base))), chars)
    return st.builds(insert, st.just(base), st.lists(edit, max_size=3))


_CLEAN = {
    "value": "http://proxy.corp:3128",
    "region": "eu-west-1",
    "service_cidr": "fd00:10::/108",
    "endpoint": "https://abc.gr7.eu-west-1.eks.amazonaws.com",
    "vpc_cidr": "fe80::/64",
    "no_proxy": ".corp.example",
}


@st.composite
def _one_field_spoiled(draw: st.DrawFn) -> dict[str, str]:
    """Every input clean but one, which gets hostile characters (so most examples reach the renderers)."""
    fields = dict(_CLEAN)
    fields["value"] = draw(st.sampled_from([fields["value"], "[fd00::10]:3128", "10.0.0.10:3128"]))
    fields["service_cidr"] = draw(st.sampled_from([fields["service_cidr"], "172.20.0.0/16"]))
    target = draw(st.sampled_from(sorted(fields)))
    fields[target] = draw(_spoiled(fields[target]))
    return fields


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fields=_one_field_spoiled())
def test_only_validated_values_reach_the_user_data(fields: dict[str, str]) -> None:
    """Fuzz: whatever gets through validation is safe text, and each OS's parser reads back exactly those values."""
    value = json.dumps({"http_proxy": fields["value"], "no_proxy": [fields["no_proxy"]]})
    try:
        config = parse_proxy_value(value)
        context = NodeContext(fields["region"], fields["service_cidr"], fields["endpoint"], (fields["vpc_cidr"],))
    except ValueError:
        return
    env = proxy_environment(config, context)
    for item in (env.http_proxy, env.https_proxy, *env.no_proxy):
        assert _SAFE.fullmatch(item), item
    expected = {"HTTP_PROXY": env.http_proxy, "HTTPS_PROXY": env.https_proxy, "NO_PROXY": env.no_proxy_csv}
    al2023 = render_userdata(config, context, NodeOS.AL2023)
    nodeconfig, boothook = _parts(al2023)
    default = yaml.safe_load(_payload(nodeconfig))["spec"]["instance"]["environment"]["default"]
    assert default == {**expected, **{k.lower(): v for k, v in expected.items()}}
    # al2023: the boothook carries no values, it reads exactly these back from the NodeConfig on the node.
    assert env.no_proxy_csv not in _payload(boothook)
    assert _values_read_back(al2023) == [env.http_proxy, env.https_proxy, env.no_proxy_csv]
    (al2_boothook,) = _parts(render_userdata(config, context, NodeOS.AL2))
    assignments = _payload(al2_boothook).splitlines()[2]
    assert shlex.split(assignments) == [f"P={env.http_proxy}", f"N={env.no_proxy_csv}"]
    network = tomllib.loads(render_userdata(config, context, NodeOS.BOTTLEROCKET).decode())["settings"]["network"]
    assert network == {"https-proxy": https_proxy_setting(env), "no-proxy": list(env.no_proxy)}
    assert pluto_https_proxy(network["https-proxy"])  # a URL Bottlerocket's pluto can parse at boot


def _values_read_back(user_data: bytes, shell: str = "sh") -> list[str]:
    """What the al2023 boothook's reader (its ``g`` function, run by a real shell and sed) finds in ``user_data``
    stored where cloud-init stores it: HTTP_PROXY, HTTPS_PROXY (after the fallback to HTTP_PROXY), NO_PROXY."""
    boothook = _payload(_parts(user_data)[-1]) if user_data.startswith(b"MIME") else ""
    reader = next(line for line in boothook.splitlines() if line.startswith("g(){"))
    with tempfile.TemporaryDirectory() as tmp:
        stored = Path(tmp) / "user-data.txt"
        stored.write_bytes(user_data)
        script = reader.replace(CLOUD_INIT_USER_DATA, str(stored))
        script += '\nP=$(g HTTP_PROXY) S=$(g HTTPS_PROXY) N=$(g NO_PROXY)\nprintf "%s\\n" "$P" "${S:-$P}" "$N"\n'
        done = subprocess.run([shell, "-u", "-c", script], capture_output=True, text=True, timeout=30, check=True)
    return done.stdout.splitlines()


# --- the boothook, executed ------------------------------------------------------------------------------------

FAKE_CURL = r"""#!/bin/sh
# A fake curl in front of a fake IMDSv2: token by PUT required, every call logged.
printf '%s\n' "$*" >>"$FAKE_LOG"
method=GET token= url=
while [ $# -gt 0 ]; do
  case "$1" in
    -X) method=$2; shift ;;
    -H) case "$2" in X-aws-ec2-metadata-token:*) token=${2#*: } ;; esac; shift ;;
    http://*) url=$1 ;;
  esac
  shift
done
[ "$FAKE_IMDS" = down ] && exit 28
case "$url" in
  http://169.254.169.254/latest/api/token) [ "$method" = PUT ] || exit 22; printf 'TOKEN123' ;;
  http://169.254.169.254/latest/meta-data/mac) [ "$token" = TOKEN123 ] || exit 22; printf '0e:aa:bb:cc:dd:ee' ;;
  http://169.254.169.254/latest/meta-data/network/interfaces/macs/0e:aa:bb:cc:dd:ee/vpc-ipv4-cidr-blocks)
    [ "$token" = TOKEN123 ] || exit 22
    [ "$FAKE_IMDS" = unauthorized ] && exit 22
    printf '%s' "$FAKE_CIDRS" ;;
  *) exit 22 ;;
esac
"""


def _shells() -> list[str]:
    return [s for s in ("dash", "bash") if shutil.which(s)]


def _run_boothook(
    tmp_path: Path,
    shell: str,
    units: tuple[str, ...],
    imds: str,
    cidrs: str = "",
    *,
    user_data: bytes | None = None,
    stored: bool = True,
) -> Path:
    """Run the al2 boothook (values inside; VPC CIDRs read from IMDS), or with ``user_data`` the last boothook part
    of that user data, which cloud-init's copy of it is then given to (the al2023 boothook reads its values there)."""
    root = tmp_path / "root"
    if user_data is None:
        env_values = replace(proxy_environment(CONFIG, CONTEXT), read_vpc_cidrs=True)
        script = boothook_script(env_values, "0123456789abcdef", units)
    else:
        script = _payload(_parts(user_data)[-1])
        copy = root / CLOUD_INIT_USER_DATA.lstrip("/")
        if stored:
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_bytes(user_data)
        script = script.replace(CLOUD_INIT_USER_DATA, str(copy))
    script_path = tmp_path / "boothook.sh"
    script_path.write_text(script.replace("/etc/", f"{root}/etc/"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "curl").write_text(FAKE_CURL)
    (bin_dir / "systemctl").write_text('#!/bin/sh\nprintf "%s\\n" "$*" >>"$FAKE_LOG.systemctl"\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "FAKE_LOG": str(tmp_path / "curl.log"),
        "FAKE_IMDS": imds,
        "FAKE_CIDRS": cidrs,
    }
    result = subprocess.run([shell, "-u", str(script_path)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    # Silent, but for sed naming cloud-init's copy of the user data when it is missing (the operator's clue).
    assert result.stderr == "" or (not stored and CLOUD_INIT_USER_DATA.rsplit("/", 1)[1] in result.stderr)
    return root


def _env_file(root: Path) -> dict[str, str]:
    lines = (root / "etc/eks-proxy/proxy.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines)


@pytest.mark.parametrize("shell", _shells())
def test_boothook_adds_vpc_cidrs_from_imdsv2(tmp_path: Path, shell: str) -> None:
    root = _run_boothook(tmp_path, shell, ("containerd", "kubelet"), "up", "10.0.0.0/16\n100.64.0.0/16\n")
    values = _env_file(root)
    assert list(values) == list(ENV_KEYS)
    assert values["HTTP_PROXY"] == values["http_proxy"] == "http://10.0.0.10:3128"
    assert values["HTTPS_PROXY"] == values["https_proxy"] == "http://10.0.0.10:3128"
    assert values["NO_PROXY"] == values["no_proxy"] == NO_PROXY + ",10.0.0.0/16,100.64.0.0/16"
    for unit in ("containerd", "kubelet"):
        drop_in = root / f"etc/systemd/system/{unit}.service.d/zz-eks-proxy.conf"
        assert drop_in.read_text() == "[Service]\nEnvironmentFile=/etc/eks-proxy/proxy.env\n".replace(
            "/etc/", f"{root}/etc/"
        )
    assert (tmp_path / "curl.log.systemctl").read_text() == "daemon-reload\n"
    calls = (tmp_path / "curl.log").read_text().splitlines()
    assert len(calls) == 3 and "-X PUT" in calls[0] and "X-aws-ec2-metadata-token-ttl-seconds: 60" in calls[0]
    assert all("--connect-timeout 1" in c and "-m 2" in c and "--noproxy *" in c for c in calls)
    assert all("X-aws-ec2-metadata-token: TOKEN123" in c for c in calls[1:])


@pytest.mark.parametrize("shell", _shells())
@pytest.mark.parametrize("imds", ["down", "unauthorized"])
def test_boothook_fails_soft_without_imds(tmp_path: Path, shell: str, imds: str) -> None:
    root = _run_boothook(tmp_path, shell, ("containerd", "kubelet", "sandbox-image"), imds)
    assert _env_file(root)["NO_PROXY"] == NO_PROXY
    assert (root / "etc/systemd/system/sandbox-image.service.d/zz-eks-proxy.conf").is_file()
    if imds == "down":
        assert len((tmp_path / "curl.log").read_text().splitlines()) == 1  # no further calls once the token fails


@pytest.mark.parametrize("shell", _shells())
def test_boothook_keeps_only_cidr_characters_from_imds(tmp_path: Path, shell: str) -> None:
    root = _run_boothook(tmp_path, shell, ("kubelet",), "up", "10.0.0.0/16\n$(touch /tmp/pwned)`id`;x\r\n")
    assert _env_file(root)["NO_PROXY"] == NO_PROXY + ",10.0.0.0/16"


@pytest.mark.parametrize("shell", _shells())
def test_boothook_takes_nothing_but_cidrs_from_a_garbage_imds_answer(tmp_path: Path, shell: str) -> None:
    # An HTML page with status 200 (curl -f lets it through): digits and dots alone would make NO_PROXY entries such
    # as "1" or "1.0", which Go matches as domain suffixes of IP hosts (".1" bypasses the proxy for x.x.x.1).
    html = "<html><body><h1>Service 1.0</h1><p>at 10.2.3.4 since 2025/11</p></body></html>\n100.64.0.0/16\n"
    root = _run_boothook(tmp_path, shell, ("kubelet",), "up", html)
    no_proxy = _env_file(root)["NO_PROXY"]
    assert no_proxy.startswith(NO_PROXY + ",") and no_proxy.endswith(",100.64.0.0/16")
    # Whatever else is taken has a slash: a CIDR, or a word no host name or IP address can ever match.
    assert all("/" in entry for entry in no_proxy[len(NO_PROXY) + 1 :].split(","))


@pytest.mark.parametrize("shell", _shells())
def test_boothook_is_safe_to_run_on_every_boot(tmp_path: Path, shell: str) -> None:
    root = _run_boothook(tmp_path, shell, ("containerd", "kubelet"), "up", "10.0.0.0/16")
    first = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    _run_boothook(tmp_path, shell, ("containerd", "kubelet"), "up", "10.0.0.0/16")
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == first


@pytest.mark.parametrize("node_os", [NodeOS.AL2023, NodeOS.AL2])
def test_boothook_is_valid_posix_sh(tmp_path: Path, node_os: NodeOS) -> None:
    part = _parts(render_userdata(CONFIG, CONTEXT, node_os))[-1]
    path = tmp_path / "boothook.sh"
    path.write_text(_payload(part))
    for shell in _shells():
        assert subprocess.run([shell, "-n", str(path)], capture_output=True).returncode == 0


@pytest.mark.parametrize(
    "module_name",
    [
        "eks_proxy.proxy.value",
        "eks_proxy.proxy.no_proxy",
        "eks_proxy.userdata.node_os",
        "eks_proxy.userdata.merge",
        "eks_proxy.userdata.render.boothook",
        "eks_proxy.userdata.render.bottlerocket",
    ],
)
def test_docstring_examples_are_true(module_name: str) -> None:
    import doctest
    import importlib

    failures, tried = doctest.testmod(importlib.import_module(module_name))
    assert tried > 0 and failures == 0


# --- al2023: the values written once, read back by the boothook ----------------------------------------------------

_USERS_LOOKALIKE = (
    # A user's NodeConfig BEFORE ours with the same shape of lines: the boothook must read ours, not these.
    "---\r\napiVersion: node.eks.aws/v1alpha1\r\nkind: NodeConfig\r\nspec:\r\n  instance:\r\n    environment:\r\n"
    '      default:\r\n        HTTP_PROXY: &p "http://theirs:1"\r\n        NO_PROXY: &n "theirs.example"\r\n'
)


@pytest.mark.parametrize("shell", _shells())
@pytest.mark.parametrize("crlf", [False, True])
def test_al2023_boothook_reads_the_values_from_our_nodeconfig(tmp_path: Path, shell: str, crlf: bool) -> None:
    config = parse_proxy_value('{"http_proxy": "http://[fd00::10]:3128", "https_proxy": "https://tls.corp:3129"}')
    context = NodeContext("eu-west-1", "172.20.0.0/16", CONTEXT.cluster_endpoint)  # no VPC CIDR: read from IMDS
    existing = (
        'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="==B=="\r\n\r\n--==B==\r\n'
        "Content-Type: application/node.eks.aws\r\n\r\n" + _USERS_LOOKALIKE + "\r\n--==B==--\r\n"
    )
    if not crlf:
        existing = existing.replace("\r\n", "\n")
    user_data = inject(existing.encode(), config, context, NodeOS.AL2023).user_data
    assert isinstance(user_data, bytes) and (b"\r\n" in user_data) == crlf
    root = _run_boothook(tmp_path, shell, ("containerd", "kubelet"), "up", "10.0.0.0/16\n", user_data=user_data)
    values = _env_file(root)
    # Their NO_PROXY entries join ours (after ours); their proxy does not win: ours comes later.
    no_proxy = ",".join(compute_no_proxy(config, context)) + ",theirs.example,10.0.0.0/16"
    assert values == {
        "HTTP_PROXY": "http://[fd00::10]:3128",
        "http_proxy": "http://[fd00::10]:3128",
        "HTTPS_PROXY": "https://tls.corp:3129",
        "https_proxy": "https://tls.corp:3129",
        "NO_PROXY": no_proxy,
        "no_proxy": no_proxy,
    }
    assert (root / "etc/systemd/system/kubelet.service.d/zz-eks-proxy.conf").is_file()


@pytest.mark.parametrize("shell", _shells())
@pytest.mark.parametrize("stored", ["missing", "without our NodeConfig", "hostile values"])
def test_al2023_boothook_without_readable_values_writes_nothing(tmp_path: Path, shell: str, stored: str) -> None:
    """Fail soft: no values found (or only values with characters no validated value has) -> exit 0, no file, no
    drop-in (nodeadm's DefaultEnvironment from the NodeConfig still applies on current AMIs)."""
    user_data = render_userdata(CONFIG, CONTEXT, NodeOS.AL2023)
    nodeconfig = _payload(_parts(user_data)[0]).encode()
    if stored == "without our NodeConfig":
        user_data = user_data.replace(nodeconfig, b"# gone\n")
    elif stored == "hostile values":
        user_data = user_data.replace(b'&p "http://10.0.0.10:3128"', b'&p "http://x:1$(id)"')
        user_data = user_data.replace(b'&n "localhost,', b'&n "localhost;reboot,')
    root = _run_boothook(tmp_path, shell, ("containerd",), "up", user_data=user_data, stored=stored != "missing")
    assert not (root / "etc/eks-proxy/proxy.env").exists()
    assert not (root / "etc/systemd/system/containerd.service.d").exists()
    assert not (tmp_path / "curl.log.systemctl").exists()


def test_known_vpc_cidrs_mean_no_imds_call(tmp_path: Path) -> None:
    """Deliberate: with the VPC CIDRs known at render time (the engine always knows them), the boothook does not
    read IMDS at all; a CIDR associated later changes the fingerprint, so the next sweep refreshes the nodes."""
    for node_os in (NodeOS.AL2023, NodeOS.AL2):
        user_data = render_userdata(CONFIG, CONTEXT, node_os)
        assert b"169.254.169.254/latest" not in _payload(_parts(user_data)[-1]).encode()
        assert b"169.254.169.254/latest" in render_userdata(CONFIG, NodeContext("eu-west-1"), node_os)
    root = _run_boothook(tmp_path, "sh", ("kubelet",), "up", user_data=render_userdata(CONFIG, CONTEXT, NodeOS.AL2023))
    assert _env_file(root)["NO_PROXY"] == NO_PROXY
    assert not (tmp_path / "curl.log").exists()


# The two cases: typical (the bench's context) and the worst the value allows.
WORST_CONFIG = parse_proxy_value(
    json.dumps(
        {
            "http_proxy": "http://proxy-0123456789.corp.example.com:3128",
            "https_proxy": "https://proxy-0123456789.corp.example.com:3129",
            "no_proxy": [f".team-{n}.internal.corp.example.com" for n in range(5)],
        }
    )
)
WORST_CONTEXT = NodeContext(
    region="ap-southeast-4",
    cluster_endpoint="https://0123456789ABCDEF0123456789ABCDEF.gr7.ap-southeast-4.eks.amazonaws.com",
    vpc_cidrs=("10.0.0.0/16", "100.64.0.0/16", "192.168.0.0/16"),
)


def test_al2023_writes_no_proxy_once_and_fits_the_goals() -> None:
    typical = render_userdata(CONFIG, CONTEXT, NodeOS.AL2023)
    assert typical.count(NO_PROXY.encode()) == 1
    assert len(typical) <= 1500
    for node_os in NodeOS:
        worst = render_userdata(WORST_CONFIG, WORST_CONTEXT, node_os)
        assert len(worst) <= 2048, (node_os, len(worst))
        assert worst.count(",".join(compute_no_proxy(WORST_CONFIG, WORST_CONTEXT)).encode()) <= 1


# --- Bottlerocket: https-proxy must be a URL pluto can parse --------------------------------------------------------


def test_the_strict_url_check_refuses_what_pluto_refused() -> None:
    """The check behaves like rust-url (WHATWG) where Python's urllib accepts too much."""
    for scheme_less in ("10.0.5.67:8080", "[fd00::10]:3128"):
        urlsplit(scheme_less)  # urllib takes these without complaint: it cannot be the check
        with pytest.raises(UrlParseError, match="RelativeUrlWithoutBase"):
            parse_url(scheme_less)
        with pytest.raises(BottlerocketSettingsError, match="Unable to parse HTTPS proxy as URL"):
            pluto_https_proxy(scheme_less)
    # A scheme-less host name parses, by accident, as a URL whose scheme is "proxy.corp" and has no host.
    assert parse_url("proxy.corp:3128") == ParsedUrl("proxy.corp", None, None)
    with pytest.raises(BottlerocketSettingsError, match="not an http"):
        pluto_https_proxy("proxy.corp:3128")
    assert pluto_https_proxy("http://10.0.5.67:8080") == ParsedUrl("http", "10.0.5.67", 8080)
    assert pluto_https_proxy("https://proxy.corp:3129") == ParsedUrl("https", "proxy.corp", 3129)
    assert pluto_https_proxy("http://[fd00::10]:3128") == ParsedUrl("http", "[fd00::10]", 3128)


_BOTTLEROCKET_VALUES = [
    "10.0.5.67:8080",
    "[fd00::10]:3128",
    "proxy.corp:3128",
    "https://tls.corp:3129",
    "http://[fd00::10]:3128",
    '{"http_proxy": "10.0.0.10:3128", "https_proxy": "https://[fd00::20]:3129"}',
]
_BOTTLEROCKET_EXISTING = (
    b'[settings.kubernetes]\ncluster-name = "prod"\n\n[settings.network]\nhttps-proxy = "10.9:8080"\n'
)


@pytest.mark.parametrize("value", _BOTTLEROCKET_VALUES)
def test_bottlerocket_https_proxy_is_always_a_url_pluto_parses(value: str) -> None:
    """Regression: the scheme-less form (``10.0.5.67:8080``) made pluto abort, and the node never joined."""
    config = parse_proxy_value(value)
    fresh = render_userdata(config, CONTEXT, NodeOS.BOTTLEROCKET)
    injected = inject(_BOTTLEROCKET_EXISTING, config, CONTEXT, NodeOS.BOTTLEROCKET).user_data
    assert isinstance(injected, bytes)
    for user_data in (fresh, injected):
        setting = tomllib.loads(user_data.decode())["settings"]["network"]["https-proxy"]
        url = pluto_https_proxy(setting)
        assert f"{url.scheme}://{url.host}:{url.port}" == config.https_proxy == setting


def test_bottlerocket_templates_in_the_old_form_are_refreshed(monkeypatch: pytest.MonkeyPatch) -> None:
    """What renderer version 1 wrote (https-proxy without its scheme, its own fingerprint) is not up to date: the
    next rollout refreshes it to the URL form."""
    monkeypatch.setattr(merge, "RENDERER_VERSION", "1")
    old = render_userdata(CONFIG, CONTEXT, NodeOS.BOTTLEROCKET).replace(b'"http://10.0.0.10:3128"', b'"10.0.0.10:3128"')
    old_fingerprint = desired_fingerprint(CONFIG, CONTEXT, NodeOS.BOTTLEROCKET)
    monkeypatch.undo()
    assert find_fingerprint(old) == old_fingerprint != desired_fingerprint(CONFIG, CONTEXT, NodeOS.BOTTLEROCKET)
    with pytest.raises(BottlerocketSettingsError):
        pluto_https_proxy(tomllib.loads(old.decode())["settings"]["network"]["https-proxy"])
    refreshed = inject(old, CONFIG, CONTEXT, NodeOS.BOTTLEROCKET)
    assert refreshed.changed and refreshed.user_data == render_userdata(CONFIG, CONTEXT, NodeOS.BOTTLEROCKET)
