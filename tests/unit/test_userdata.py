"""Merging into existing launch template user data: foreign bytes untouched, ours refreshed in place, limits kept."""

from __future__ import annotations

import base64
import contextlib
import copy
import email
import gzip
import subprocess
import sys
import tomllib

import pytest
import yaml
from eks_proxy.engine.reconcile import reconcile_nodegroup
from eks_proxy.model import LaunchTemplateRef, NodegroupState, Outcome, TemplateVersion
from eks_proxy.proxy.no_proxy import NodeContext
from eks_proxy.proxy.value import parse_proxy_value, validate_no_proxy_entry
from eks_proxy.userdata.merge import (
    USER_DATA_LIMIT,
    InjectResult,
    UserDataError,
    desired_fingerprint,
    find_fingerprint,
    inject,
    render_userdata,
)
from eks_proxy.userdata.node_os import NodeOS
from eks_proxy.userdata.nodeconfig import PROXY_KEYS, read_proxy_settings
from eks_proxy.userdata.render import proxy_environment
from hypothesis import example, given, settings
from hypothesis import strategies as st

from testkit.nodesim import nodeadm
from testkit.nodesim.bottlerocket import pluto_https_proxy

CONFIG = parse_proxy_value("http://10.0.0.10:3128")
MOVED = parse_proxy_value("http://10.0.0.11:3128")
CONTEXT = NodeContext(region="eu-west-1", service_cidr="172.20.0.0/16", vpc_cidrs=("10.0.0.0/16",))

# What users really have in their launch templates (the EKS documentation's shape, CRLF as the console saves it).
FOREIGN_SCRIPT = b'Content-Type: text/x-shellscript; charset="us-ascii"\r\n\r\n#!/bin/bash\r\necho "hello"\r\n\r\n'
FOREIGN_NODECONFIG = (
    b"Content-Type: application/node.eks.aws\r\n\r\n---\r\napiVersion: node.eks.aws/v1alpha1\r\nkind: NodeConfig\r\n"
    b"spec:\r\n  kubelet:\r\n    flags:\r\n      - --node-labels=team=a\r\n\r\n"
)
EXISTING = (
    b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="==MYBOUNDARY=="\r\n\r\n'
    b"This is a preamble.\r\n"
    b"--==MYBOUNDARY==\r\n" + FOREIGN_NODECONFIG + b"--==MYBOUNDARY==\r\n" + FOREIGN_SCRIPT + b"--==MYBOUNDARY==--\r\n"
    b"epilogue\r\n"
)


def _payloads(user_data: bytes) -> list[tuple[str, bytes]]:
    """The parts as cloud-init sees them (Python's email parser, as cloud-init uses)."""
    message = email.message_from_bytes(user_data)
    result = []
    for part in message.walk():
        if part.is_multipart():
            continue
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        result.append((part.get_content_type(), payload))
    return result


def _ours(user_data: bytes) -> int:
    return user_data.count(b"# eks-proxy fingerprint=")


def test_fresh_render_is_what_inject_makes_of_nothing_and_is_stable() -> None:
    for node_os in NodeOS:
        fresh = render_userdata(CONFIG, CONTEXT, node_os)
        assert inject(b"", CONFIG, CONTEXT, node_os) == InjectResult(fresh, find_fingerprint(fresh) or "", True)
        again = inject(fresh, CONFIG, CONTEXT, node_os)
        assert again.changed is False and again.user_data is fresh


def test_foreign_parts_kept_byte_for_byte_and_ours_last() -> None:
    result = inject(EXISTING, CONFIG, CONTEXT, NodeOS.AL2023)
    merged = result.user_data
    assert isinstance(merged, bytes) and result.changed
    close = EXISTING.index(b"--==MYBOUNDARY==--")
    assert merged.startswith(EXISTING[:close])  # headers, preamble and every foreign part untouched
    assert merged.endswith(EXISTING[close:])  # close line and epilogue untouched
    types = [content_type for content_type, _ in _payloads(merged)]
    assert types == [
        "application/node.eks.aws",
        "text/x-shellscript",
        "application/node.eks.aws",  # ours after the user's: later NodeConfig parts win in nodeadm
        "text/cloud-boothook",
    ]
    assert _payloads(merged)[1][1] == b'#!/bin/bash\r\necho "hello"\r\n'
    assert find_fingerprint(merged) == result.fingerprint == desired_fingerprint(CONFIG, CONTEXT, NodeOS.AL2023)


def test_inject_twice_is_identical_and_unchanged() -> None:
    once = inject(EXISTING, CONFIG, CONTEXT, NodeOS.AL2023)
    twice = inject(once.user_data, CONFIG, CONTEXT, NodeOS.AL2023)
    assert twice.changed is False and twice.user_data == once.user_data


def test_refresh_replaces_ours_in_place() -> None:
    # Our parts placed by a user between two foreign parts stay there when the proxy moves.
    ours = inject(b"", CONFIG, CONTEXT, NodeOS.AL2).user_data
    assert isinstance(ours, bytes)
    our_part = ours.split(b"--//\n", 1)[1].split(b"--//--", 1)[0]
    document = EXISTING.replace(
        b"--==MYBOUNDARY==\r\n" + FOREIGN_SCRIPT,
        b"--==MYBOUNDARY==\r\n" + our_part + b"--==MYBOUNDARY==\r\n" + FOREIGN_SCRIPT,
    )
    refreshed = inject(document, MOVED, CONTEXT, NodeOS.AL2)
    assert refreshed.changed and isinstance(refreshed.user_data, bytes)
    types = [content_type for content_type, _ in _payloads(refreshed.user_data)]
    assert types == ["application/node.eks.aws", "text/cloud-boothook", "text/x-shellscript"]
    assert b"10.0.0.11:3128" in refreshed.user_data and b"10.0.0.10:3128" not in refreshed.user_data
    assert _ours(refreshed.user_data) == 1


def test_duplicated_parts_of_ours_collapse_into_one_set() -> None:
    once = inject(EXISTING, CONFIG, CONTEXT, NodeOS.AL2023).user_data
    assert isinstance(once, bytes)
    delimiter = b"--==MYBOUNDARY==\r\n"
    preamble, foreign_nodeconfig, foreign_script, our_nodeconfig, rest = once.split(delimiter)
    our_boothook, close = rest.split(b"--==MYBOUNDARY==--")
    ours = [our_nodeconfig, our_boothook]
    doubled = preamble + b"".join(delimiter + p for p in [*ours, foreign_nodeconfig, foreign_script, *ours])
    doubled += b"--==MYBOUNDARY==--" + close
    assert _ours(doubled) == 4
    result = inject(doubled, MOVED, CONTEXT, NodeOS.AL2023)
    assert isinstance(result.user_data, bytes) and _ours(result.user_data) == 2
    types = [t for t, _ in _payloads(result.user_data)]
    assert types == [
        "application/node.eks.aws",
        "text/cloud-boothook",
        "application/node.eks.aws",
        "text/x-shellscript",
    ]
    assert delimiter + foreign_nodeconfig + delimiter + foreign_script + b"--==MYBOUNDARY==--" in result.user_data


def test_changing_os_replaces_all_of_ours() -> None:
    al2 = inject(EXISTING, CONFIG, CONTEXT, NodeOS.AL2).user_data
    al2023 = inject(al2, CONFIG, CONTEXT, NodeOS.AL2023).user_data
    assert al2023 == inject(EXISTING, CONFIG, CONTEXT, NodeOS.AL2023).user_data


def test_lf_documents_get_lf_parts() -> None:
    lf = EXISTING.replace(b"\r\n", b"\n")
    merged = inject(lf, CONFIG, CONTEXT, NodeOS.AL2023).user_data
    assert isinstance(merged, bytes) and b"\r" not in merged


@pytest.mark.parametrize(
    ("script", "content_type"),
    [
        (b"#!/bin/bash\nset -e\n/etc/eks/bootstrap.sh my-cluster\n", "text/x-shellscript"),
        (b"#!/bin/bash\r\necho no-final-newline", "text/x-shellscript"),
        (b"#cloud-config\npackages: [jq]\n", "text/cloud-config"),
        (b"#cloud-boothook\n#!/bin/sh\necho hi\n", "text/cloud-boothook"),
        (b"---\napiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec: {}\n", "application/node.eks.aws"),
        (b"#!/bin/sh\necho '--//'\n--//\n", "text/x-shellscript"),  # our boundary inside the script
    ],
)
def test_non_mime_user_data_is_wrapped_byte_for_byte(script: bytes, content_type: str) -> None:
    result = inject(script, CONFIG, CONTEXT, NodeOS.AL2023)
    assert isinstance(result.user_data, bytes) and result.changed
    payloads = _payloads(result.user_data)
    assert payloads[0] == (content_type, script)
    assert [t for t, _ in payloads[1:]] == ["application/node.eks.aws", "text/cloud-boothook"]
    assert inject(result.user_data, CONFIG, CONTEXT, NodeOS.AL2023).changed is False


def test_base64_in_base64_out_with_the_same_type() -> None:
    raw = inject(EXISTING, CONFIG, CONTEXT, NodeOS.AL2023).user_data
    as_text = base64.b64encode(EXISTING).decode()
    result = inject(as_text, CONFIG, CONTEXT, NodeOS.AL2023)
    assert isinstance(result.user_data, str) and base64.b64decode(result.user_data) == raw
    as_bytes = inject(base64.b64encode(EXISTING), CONFIG, CONTEXT, NodeOS.AL2023)
    assert isinstance(as_bytes.user_data, bytes) and base64.b64decode(as_bytes.user_data) == raw
    wrapped = base64.encodebytes(EXISTING)  # 76-column lines, as `base64` prints them
    assert base64.b64decode(inject(wrapped, CONFIG, CONTEXT, NodeOS.AL2023).user_data) == raw
    unchanged = inject(result.user_data, CONFIG, CONTEXT, NodeOS.AL2023)
    assert unchanged.changed is False and unchanged.user_data is result.user_data
    assert find_fingerprint(result.user_data) == result.fingerprint


def test_raw_text_in_raw_text_out() -> None:
    result = inject(EXISTING.decode(), CONFIG, CONTEXT, NodeOS.AL2)
    assert isinstance(result.user_data, str) and result.user_data.startswith("MIME-Version: 1.0\r\n")


@pytest.mark.parametrize("empty", [b"", "", b"\n", "  \r\n"])
def test_empty_user_data_gets_the_fresh_render(empty: bytes | str) -> None:
    result = inject(empty, CONFIG, CONTEXT, NodeOS.AL2023)
    fresh = render_userdata(CONFIG, CONTEXT, NodeOS.AL2023)
    assert result.user_data == (fresh if isinstance(empty, bytes) else fresh.decode())


@pytest.mark.parametrize(
    ("user_data", "fragment"),
    [
        (gzip.compress(b"#!/bin/sh\necho hi\n", mtime=0), "gzip"),
        (base64.b64encode(gzip.compress(b"#!/bin/sh\necho hi\n", mtime=0)), "gzip"),
        (b"MIME-Version: 1.0\nContent-Type: multipart/mixed\n\n--x\n\nhi\n--x--\n", "without a boundary"),
        (b'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="x"\n\n--x\n\nhi\n', "closing boundary"),
        (b"MIME-Version: 1.0\nContent-Type: text/x-shellscript\n\n#!/bin/sh\n", "single-part"),
        (b"MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=x", "header block"),
        (b"echo MIME-Version: 1.0\n\n", "does not start with MIME headers"),
        (b"[settings.kubernetes]\napi-server = 'x'\n", "neither MIME multipart nor"),
        (b"just some text\n", "neither MIME multipart nor"),
    ],
)
def test_what_we_cannot_read_is_refused(user_data: bytes, fragment: str) -> None:
    with pytest.raises(UserDataError, match=fragment) as caught:
        inject(user_data, CONFIG, CONTEXT, NodeOS.AL2023)
    assert "\n" not in str(caught.value)
    assert find_fingerprint(user_data) is None


def test_unrecognizable_user_data_after_blank_lines_is_refused_at_once() -> None:
    # The bare-NodeConfig pattern had overlapping alternatives ("\\s*\\n" inside a repeated group): each extra
    # leading blank line doubled the time (26 lines: 5 s; 40: hours), so a script without a shebang after some
    # blank lines hung the reconcile of a whole scope. Run in a process, so the old behaviour fails instead of hanging.
    code = (
        "from eks_proxy.proxy.no_proxy import NodeContext\n"
        "from eks_proxy.userdata.node_os import NodeOS\n"
        "from eks_proxy.proxy.value import parse_proxy_value\n"
        "from eks_proxy.userdata.merge import UserDataError, inject\n"
        "for blank in (b'\\n', b' \\n', b'\\r\\n', b'# note\\n'):\n"
        "    try:\n"
        "        inject(blank * 60 + b'echo hi\\n', parse_proxy_value('p:1'), NodeContext('eu-west-1'), NodeOS.AL2)\n"
        "    except UserDataError as error:\n"
        "        assert 'neither MIME multipart nor' in str(error)\n"
        "    else:\n"
        "        raise AssertionError('accepted')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    # A NodeConfig after comments, blank lines and a document start is still recognized.
    nodeconfig = b"# mine\n\n  \n---\n\napiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\n"
    assert _payloads(inject(nodeconfig, CONFIG, CONTEXT, NodeOS.AL2023).user_data)[0] == (
        "application/node.eks.aws",
        nodeconfig,
    )


def test_over_the_ec2_limit_is_refused() -> None:
    fresh = render_userdata(CONFIG, CONTEXT, NodeOS.AL2023)
    padding = USER_DATA_LIMIT - len(fresh) - 40
    script = b"#!/bin/sh\n" + b"#" * padding + b"\n"
    assert len(inject(script[: -len(fresh)], CONFIG, CONTEXT, NodeOS.AL2023).user_data) <= USER_DATA_LIMIT
    with pytest.raises(UserDataError, match=r"over EC2's limit of 16384 bytes"):
        inject(script, CONFIG, CONTEXT, NodeOS.AL2023)


# --- Bottlerocket ----------------------------------------------------------------------------------------------

BOTTLEROCKET = b"""# cluster settings, kept by eks-proxy
[settings.kubernetes]
api-server = "https://abc.gr7.eu-west-1.eks.amazonaws.com"  # the API server
cluster-name = "prod"

[settings.network]
hostname = "node-1"
https-proxy = "old-proxy:8080"
no-proxy = ["legacy.corp"]

[settings.host-containers.admin]
enabled = true
"""


def test_bottlerocket_sets_our_keys_and_keeps_everything_else() -> None:
    result = inject(BOTTLEROCKET, CONFIG, CONTEXT, NodeOS.BOTTLEROCKET)
    assert isinstance(result.user_data, bytes) and result.changed
    text = result.user_data.decode()
    for line in BOTTLEROCKET.decode().splitlines():
        if "proxy" not in line or line.startswith("#"):
            assert line in text.splitlines()
    settings_ = tomllib.loads(text)["settings"]
    assert settings_["network"]["https-proxy"] == "http://10.0.0.10:3128"
    assert settings_["network"]["hostname"] == "node-1"
    # Deliberately changed: the user's existing entry is kept after ours (union), no longer replaced.
    assert settings_["network"]["no-proxy"][-1] == "legacy.corp" and "localhost" in settings_["network"]["no-proxy"]
    assert settings_["kubernetes"]["cluster-name"] == "prod" and settings_["host-containers"]["admin"]["enabled"]
    assert find_fingerprint(result.user_data) == result.fingerprint
    again = inject(result.user_data, CONFIG, CONTEXT, NodeOS.BOTTLEROCKET)
    assert again.changed is False and again.user_data is result.user_data
    moved = inject(result.user_data, MOVED, CONTEXT, NodeOS.BOTTLEROCKET)
    assert tomllib.loads(moved.user_data.decode())["settings"]["network"]["https-proxy"] == "http://10.0.0.11:3128"
    assert moved.user_data.count(b"eks-proxy fingerprint=") == 1
    assert tomllib.loads(moved.user_data.decode())["settings"]["network"]["no-proxy"].count("legacy.corp") == 1


def _no_proxy(user_data: bytes | str) -> list[str]:
    text = user_data.decode() if isinstance(user_data, bytes) else user_data
    result = tomllib.loads(text)["settings"]["network"]["no-proxy"]
    assert isinstance(result, list)
    return result


def test_bottlerocket_keeps_the_users_no_proxy_entries_through_refreshes() -> None:
    """Union, ours first; every refresh re-derives ours and keeps theirs, so nothing accumulates or doubles."""
    ours = list(proxy_environment(CONFIG, CONTEXT).no_proxy)
    existing = (
        b'[settings.network]\nhttps-proxy = "old:8080"\n'
        b'no-proxy = ["registry.team.internal", "localhost", "*", "bad entry", "10.20.0.0/16",\n'
        b'            "Registry.Team.Internal"]\n'
    )
    first = inject(existing, CONFIG, CONTEXT, NodeOS.BOTTLEROCKET).user_data
    assert isinstance(first, bytes)
    # localhost is already ours; "*" (would turn the proxy off) and malformed entries are dropped; case-normalized.
    assert _no_proxy(first) == [*ours, "registry.team.internal", "10.20.0.0/16"]
    assert f"# eks-proxy manages the first {len(ours)} entries".encode() in first
    # A teammate appends an entry later: it is theirs too.
    edited = first.replace(b'"10.20.0.0/16"]', b'"10.20.0.0/16", "build.team.internal"]')
    current: bytes | str = edited
    for config in (MOVED, CONFIG, MOVED, CONFIG):
        result = inject(current, config, CONTEXT, NodeOS.BOTTLEROCKET)
        assert result.changed
        current = result.user_data
        expected = [*proxy_environment(config, CONTEXT).no_proxy]
        assert _no_proxy(current) == [*expected, "registry.team.internal", "10.20.0.0/16", "build.team.internal"]
    assert inject(current, CONFIG, CONTEXT, NodeOS.BOTTLEROCKET).changed is False
    # Ours shrinks (no VPC endpoint names): theirs still follow, the count says where.
    shrunk = parse_proxy_value('{"http_proxy": "http://10.0.0.10:3128", "vpc_endpoints": false}')
    fewer = inject(current, shrunk, CONTEXT, NodeOS.BOTTLEROCKET).user_data
    assert _no_proxy(fewer)[-3:] == ["registry.team.internal", "10.20.0.0/16", "build.team.internal"]
    assert len(_no_proxy(fewer)) == len(proxy_environment(shrunk, CONTEXT).no_proxy) + 3


def test_bottlerocket_list_written_by_the_first_renderer_is_all_ours() -> None:
    """Renderer version 1 replaced the list and wrote no count: nothing in it is the user's."""
    old = render_userdata(CONFIG, CONTEXT, NodeOS.BOTTLEROCKET).split(b" # eks-proxy manages")[0] + b"\n"
    assert find_fingerprint(old) and b"manages the first" not in old
    refreshed = inject(old, MOVED, CONTEXT, NodeOS.BOTTLEROCKET).user_data
    assert _no_proxy(refreshed) == list(proxy_environment(MOVED, CONTEXT).no_proxy)


_TOML_LINES = [
    "[settings]",
    "[settings.network]",
    "[settings.kubernetes]",
    "[settings.network.bonding]",
    "[other]",
    "[[settings.aws]]",
    'settings.network.hostname = "h"',
    'network.hostname = "h"',
    'network.https-proxy = "old:1"',
    'https-proxy = "old:1"',
    'no-proxy = ["a"]',
    'settings.motd = "m"',
    'motd = "m"',
    'network = {hostname = "x"}',
    "x = 1",
    '"https-proxy" = "q:1"',
    'settings.network.no-proxy = ["z"]',
    "# a comment",
    "",
]


def _settings_but_ours(document: dict[str, object]) -> dict[str, object]:
    """The document without our two keys (and without tables they leave empty)."""
    result = copy.deepcopy(document)
    settings_ = result.get("settings")
    if isinstance(settings_, dict):
        if isinstance(settings_.get("network"), dict):
            for key in ("https-proxy", "no-proxy"):
                settings_["network"].pop(key, None)
            if not settings_["network"]:
                del settings_["network"]
        if not settings_:
            del result["settings"]
    return result


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(st.sampled_from(_TOML_LINES), max_size=8), final_newline=st.booleans())
@example(lines=["[settings.network]", 'settings.network.no-proxy = ["z"]'], final_newline=False)
@example(lines=["[settings]", 'network.hostname = "h"', "[other]", "[settings.network.bonding]"], final_newline=True)
@example(lines=['settings.motd = "m"', "", "x = 1"], final_newline=True)
def test_bottlerocket_any_toml_gets_our_keys_or_a_clean_refusal(lines: list[str], final_newline: bool) -> None:
    # Found this way: '[settings.network]\nsettings.network.no-proxy = ["z"]' without a final newline came back
    # as invalid TOML (tomlkit glued our key onto the last line), and dotted network keys before a
    # [settings.network.bonding] table came back as TOML tomlkit itself refused to parse at the next refresh.
    text = "\n".join(lines) + ("\n" if final_newline else "")
    try:
        before = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return
    try:
        result = inject(text.encode(), CONFIG, CONTEXT, NodeOS.BOTTLEROCKET)
    except UserDataError as refused:
        assert "\n" not in str(refused)
        return
    assert isinstance(result.user_data, bytes)
    after = tomllib.loads(result.user_data.decode())
    network = after["settings"]["network"]
    assert network["https-proxy"] == "http://10.0.0.10:3128" and "localhost" in network["no-proxy"]
    assert pluto_https_proxy(network["https-proxy"])  # a URL Bottlerocket's pluto can parse at boot
    assert _settings_but_ours(after) == _settings_but_ours(before)
    assert inject(result.user_data, CONFIG, CONTEXT, NodeOS.BOTTLEROCKET).changed is False


def test_bottlerocket_all_dotted_keys_keep_their_tables() -> None:
    # tomlkit inserted the new [settings.network] table right after the first dotted key, so the dotted keys after it
    # became settings.network.settings.kubernetes.*: the node lost its cluster name and API server.
    text = b'settings.motd = "hi"\n\nsettings.kubernetes.cluster-name = "prod"\nsettings.kubernetes.api-server = "x"\n'
    result = inject(text, CONFIG, CONTEXT, NodeOS.BOTTLEROCKET).user_data
    assert isinstance(result, bytes) and result.startswith(text)
    settings_ = tomllib.loads(result.decode())["settings"]
    assert settings_["kubernetes"] == {"cluster-name": "prod", "api-server": "x"}
    assert set(settings_["network"]) == {"https-proxy", "no-proxy"}


def test_bottlerocket_base64_round_trip() -> None:
    result = inject(base64.b64encode(BOTTLEROCKET).decode(), CONFIG, CONTEXT, NodeOS.BOTTLEROCKET)
    assert isinstance(result.user_data, str)
    assert b'https-proxy = "http://10.0.0.10:3128"' in base64.b64decode(result.user_data)


@pytest.mark.parametrize(
    ("user_data", "fragment"),
    [
        (b"[settings.network\nhostname = 'x'\n", "not valid TOML"),
        (b"settings = { network = { hostname = 'x' } }\n", "not a TOML table"),
        (b"[settings]\nnetwork = 'x'\n", "settings.network"),
        (EXISTING, "MIME multipart"),
    ],
)
def test_bottlerocket_refuses_what_it_cannot_edit(user_data: bytes, fragment: str) -> None:
    with pytest.raises(UserDataError, match=fragment):
        inject(user_data, CONFIG, CONTEXT, NodeOS.BOTTLEROCKET)


# --- fingerprints ----------------------------------------------------------------------------------------------


def test_fingerprint_covers_proxy_context_and_os() -> None:
    base = desired_fingerprint(CONFIG, CONTEXT, NodeOS.AL2023)
    assert len(base) == 16 and int(base, 16) >= 0
    variants = {
        desired_fingerprint(MOVED, CONTEXT, NodeOS.AL2023),
        desired_fingerprint(CONFIG, CONTEXT, NodeOS.AL2),
        desired_fingerprint(CONFIG, NodeContext(region="eu-west-2"), NodeOS.AL2023),
        desired_fingerprint(CONFIG, NodeContext(region="eu-west-1", vpc_cidrs=("10.1.0.0/16",)), NodeOS.AL2023),
        desired_fingerprint(CONFIG, NodeContext(region="eu-west-1", service_cidr="10.100.0.0/16"), NodeOS.AL2023),
        desired_fingerprint(
            CONFIG, NodeContext(region="eu-west-1", cluster_endpoint="https://x.eks.amazonaws.com"), NodeOS.AL2023
        ),
        desired_fingerprint(
            parse_proxy_value('{"http_proxy": "10.0.0.10:3128", "no_proxy": [".corp"]}'), CONTEXT, NodeOS.AL2023
        ),
        desired_fingerprint(
            parse_proxy_value('{"http_proxy": "10.0.0.10:3128", "vpc_endpoints": false}'), CONTEXT, NodeOS.AL2023
        ),
    }
    assert base not in variants and len(variants) == 8
    # The default (true) is not serialized: fingerprints made before the key existed stay valid.
    explicit = parse_proxy_value('{"http_proxy": "10.0.0.10:3128", "vpc_endpoints": true}')
    assert desired_fingerprint(explicit, CONTEXT, NodeOS.AL2023) == base


def test_fingerprint_is_stable_across_processes() -> None:
    code = (
        "from eks_proxy.proxy.no_proxy import NodeContext; from eks_proxy.userdata.node_os import NodeOS;"
        "from eks_proxy.proxy.value import parse_proxy_value; from eks_proxy.userdata.merge import desired_fingerprint;"
        "print(desired_fingerprint(parse_proxy_value('http://10.0.0.10:3128'),"
        "NodeContext('eu-west-1', '172.20.0.0/16', None, ('10.0.0.0/16',)), NodeOS.AL2023))"
    )
    env = {"PYTHONHASHSEED": "123"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.strip() == desired_fingerprint(CONFIG, CONTEXT, NodeOS.AL2023)


def test_find_fingerprint_absent_and_disagreeing() -> None:
    assert find_fingerprint(EXISTING) is None
    assert find_fingerprint(b"") is None
    assert find_fingerprint(BOTTLEROCKET) is None
    old = inject(EXISTING, CONFIG, CONTEXT, NodeOS.AL2023).user_data
    new = inject(EXISTING, MOVED, CONTEXT, NodeOS.AL2023).user_data
    assert isinstance(old, bytes) and isinstance(new, bytes)
    half = old.split(b"--==MYBOUNDARY==\r\n")
    half[3] = new.split(b"--==MYBOUNDARY==\r\n")[3]  # our NodeConfig from the new render, our boothook from the old
    mixed = b"--==MYBOUNDARY==\r\n".join(half)
    assert find_fingerprint(mixed) is None
    assert inject(mixed, CONFIG, CONTEXT, NodeOS.AL2023).user_data == old


# --- properties --------------------------------------------------------------------------------------------------

_BODY_LINE = st.text(alphabet=st.characters(codec="ascii", exclude_characters="\r\n"), max_size=30).filter(
    lambda line: not line.startswith("--") and "eks-proxy fingerprint" not in line
)
_PART = st.tuples(
    st.sampled_from(["text/x-shellscript", "text/cloud-config", "application/node.eks.aws", "text/plain"]),
    st.lists(_BODY_LINE, max_size=5),
)


@st.composite
def _documents(draw: st.DrawFn) -> tuple[bytes, list[bytes], bytes, bytes]:
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    boundary = draw(st.sampled_from(["==MYBOUNDARY==", "b1", "//", "xyz'()+_,-./:=?"]))
    parts = draw(st.lists(_PART, max_size=4))
    preamble = draw(st.sampled_from(["", "preamble" + eol]))
    epilogue = draw(st.sampled_from(["", "trailer" + eol, eol]))
    raw_parts = [f"Content-Type: {ctype}{eol}{eol}" + "".join(line + eol for line in body) for ctype, body in parts]
    head = f'MIME-Version: 1.0{eol}Content-Type: multipart/mixed; boundary="{boundary}"{eol}{eol}{preamble}'
    tail = f"--{boundary}--{eol}{epilogue}"
    text = head + "".join(f"--{boundary}{eol}{raw}" for raw in raw_parts) + tail
    return text.encode(), [raw.encode() for raw in raw_parts], head.encode(), tail.encode()


@settings(max_examples=150, deadline=None)
@given(document=_documents(), node_os=st.sampled_from([NodeOS.AL2023, NodeOS.AL2]), as_base64=st.booleans())
def test_merge_properties(document: tuple[bytes, list[bytes], bytes, bytes], node_os: NodeOS, as_base64: bool) -> None:
    raw, foreign, head, tail = document
    given_data = base64.b64encode(raw) if as_base64 else raw
    once = inject(given_data, CONFIG, CONTEXT, node_os)
    merged = base64.b64decode(once.user_data) if as_base64 else once.user_data
    assert isinstance(merged, bytes)
    # Headers, preamble, close line and epilogue untouched; every foreign part byte for byte, in order, before ours.
    assert merged.startswith(head) and merged.endswith(tail)
    position = 0
    for part in foreign:
        found = merged.find(part, position)
        assert found >= 0
        position = found + len(part)
    assert merged.find(b"# eks-proxy fingerprint=") > position
    assert len(_payloads(merged)) == len(foreign) + (2 if node_os is NodeOS.AL2023 else 1)
    # Idempotent, and a refresh keeps the structure and every foreign part.
    twice = inject(once.user_data, CONFIG, CONTEXT, node_os)
    assert twice.changed is False and twice.user_data == once.user_data
    moved = inject(once.user_data, MOVED, CONTEXT, node_os)
    moved_raw = base64.b64decode(moved.user_data) if as_base64 else moved.user_data
    assert isinstance(moved_raw, bytes)
    assert all(part in moved_raw for part in foreign)
    assert _ours(moved_raw) == _ours(merged) and find_fingerprint(moved.user_data) == moved.fingerprint


@settings(max_examples=100, deadline=None)
@given(script=st.lists(_BODY_LINE, max_size=6), crlf=st.booleans())
def test_wrapping_properties(script: list[str], crlf: bool) -> None:
    eol = "\r\n" if crlf else "\n"
    raw = ("#!/bin/bash" + eol + eol.join(script)).encode()
    once = inject(raw, CONFIG, CONTEXT, NodeOS.AL2023)
    assert isinstance(once.user_data, bytes)
    assert _payloads(once.user_data)[0] == ("text/x-shellscript", raw)
    assert inject(once.user_data, CONFIG, CONTEXT, NodeOS.AL2023).changed is False


# --- al2023: users' own NodeConfig proxy settings -----------------------------------------------------------------

TEAMMATES_NODECONFIG = (
    b"Content-Type: application/node.eks.aws\r\n\r\n---\r\napiVersion: node.eks.aws/v1alpha1\r\nkind: NodeConfig\r\n"
    b"spec:\r\n  instance:\r\n    environment:\r\n      default:\r\n        HTTPS_PROXY: http://old-proxy:8080\r\n"
    b"        NO_PROXY: registry.team.internal,*,10.20.0.0/16,localhost\r\n\r\n"
)


def _nodeconfigs(user_data: bytes) -> list[bytes]:
    return [payload for content_type, payload in _payloads(user_data) if content_type == "application/node.eks.aws"]


def test_al2023_a_later_users_proxy_nodeconfig_is_taken_over() -> None:
    """A teammate appends a NodeConfig with proxy variables after ours: nodeadm's merge (later wins) would give the
    node their proxy while the fingerprint still matches. inject sees it: their NO_PROXY entries join ours, our
    parts move last, and `changed` tells the engine to refresh."""
    ours_first = inject(EXISTING, CONFIG, CONTEXT, NodeOS.AL2023).user_data
    assert isinstance(ours_first, bytes)
    close = b"--==MYBOUNDARY==--"
    later = ours_first.replace(close, b"--==MYBOUNDARY==\r\n" + TEAMMATES_NODECONFIG + close)
    assert find_fingerprint(later) == desired_fingerprint(CONFIG, CONTEXT, NodeOS.AL2023)  # looks up to date...
    merged_before = nodeadm.load_documents(_nodeconfigs(later))
    assert merged_before["spec"]["instance"]["environment"]["default"]["HTTPS_PROXY"] == "http://old-proxy:8080"

    result = inject(later, CONFIG, CONTEXT, NodeOS.AL2023)
    assert result.changed and isinstance(result.user_data, bytes)  # ...but is not
    assert "after ours sets proxy variables" in result.note
    types = [content_type for content_type, _ in _payloads(result.user_data)]
    assert types[-2:] == ["application/node.eks.aws", "text/cloud-boothook"]  # ours last again
    assert TEAMMATES_NODECONFIG in result.user_data  # theirs kept byte for byte
    default = nodeadm.load_documents(_nodeconfigs(result.user_data))["spec"]["instance"]["environment"]["default"]
    ours = ",".join(proxy_environment(CONFIG, CONTEXT).no_proxy)
    assert default["HTTPS_PROXY"] == default["https_proxy"] == "http://10.0.0.10:3128"
    assert default["NO_PROXY"] == default["no_proxy"] == ours + ",registry.team.internal,10.20.0.0/16"  # no "*"
    assert find_fingerprint(result.user_data) == result.fingerprint
    again = inject(result.user_data, CONFIG, CONTEXT, NodeOS.AL2023)
    assert again.changed is False
    moved = inject(result.user_data, MOVED, CONTEXT, NodeOS.AL2023).user_data  # a refresh keeps their entries
    assert isinstance(moved, bytes) and moved.count(b"registry.team.internal") == 2  # theirs and ours, once each


def test_al2023_users_earlier_no_proxy_entries_are_kept() -> None:
    """A user's NodeConfig before ours: our NO_PROXY would replace theirs in nodeadm's merge; their entries join."""
    before = EXISTING.replace(FOREIGN_NODECONFIG, TEAMMATES_NODECONFIG)
    result = inject(before, CONFIG, CONTEXT, NodeOS.AL2023)
    assert isinstance(result.user_data, bytes)
    types = [content_type for content_type, _ in _payloads(result.user_data)]
    assert types == [
        "application/node.eks.aws",
        "text/x-shellscript",
        "application/node.eks.aws",
        "text/cloud-boothook",
    ]
    default = nodeadm.load_documents(_nodeconfigs(result.user_data))["spec"]["instance"]["environment"]["default"]
    assert default["NO_PROXY"].endswith(",registry.team.internal,10.20.0.0/16")
    assert default["HTTPS_PROXY"] == "http://10.0.0.10:3128"


def test_al2023_a_later_nodeconfig_without_proxy_variables_stays_after_ours() -> None:
    ours_first = inject(EXISTING, CONFIG, CONTEXT, NodeOS.AL2023).user_data
    assert isinstance(ours_first, bytes)
    close = b"--==MYBOUNDARY==--"
    later = ours_first.replace(close, b"--==MYBOUNDARY==\r\n" + FOREIGN_NODECONFIG + close)
    assert inject(later, CONFIG, CONTEXT, NodeOS.AL2023).changed is False


def test_the_engine_refreshes_a_nodegroup_whose_later_part_overrides_the_proxy() -> None:
    ours_first = inject(EXISTING, CONFIG, CONTEXT, NodeOS.AL2023).user_data
    assert isinstance(ours_first, bytes)
    later = ours_first.replace(
        b"--==MYBOUNDARY==--", b"--==MYBOUNDARY==\r\n" + TEAMMATES_NODECONFIG + b"--==MYBOUNDARY==--"
    )
    ng = NodegroupState("prod", "ng-a", "ACTIVE", "AL2023_x86_64_STANDARD", LaunchTemplateRef("lt-1", None, 4), {})
    decision = reconcile_nodegroup(ng, TemplateVersion(4, base64.b64encode(later).decode()), CONFIG, CONTEXT)
    assert decision.outcome is Outcome.CREATE_VERSION
    assert decision.current_fingerprint == decision.desired_fingerprint  # the fingerprint alone would say "current"
    assert decision.reason and "would override ours in nodeadm's merge" in decision.reason
    up_to_date = inject(later, CONFIG, CONTEXT, NodeOS.AL2023).user_data
    assert isinstance(up_to_date, bytes)
    decision = reconcile_nodegroup(ng, TemplateVersion(5, base64.b64encode(up_to_date).decode()), CONFIG, CONTEXT)
    assert decision.outcome is Outcome.UP_TO_DATE


# --- the NodeConfig reader, checked against a YAML parser -----------------------------------------------------------

_ENTRIES = st.lists(
    st.sampled_from(
        ["registry.team.internal", "Build.Corp", "10.20.0.0/16", "fd00::1", "*", "bad entry", "localhost", "x_y", ""]
    ),
    max_size=4,
).map(",".join)
_SCALAR_ONLY = st.sampled_from(["yes", "no", "on", "10", "10.5", "~", "null", "0x1f", "TRUE"])


@st.composite
def _nodeconfig_documents(draw: st.DrawFn) -> str:
    """NodeConfig documents with proxy keys written in the forms the reader claims to read (and some it refuses)."""
    lines = ["apiVersion: node.eks.aws/v1alpha1", "kind: NodeConfig", "spec:", "  instance:", "    environment:"]
    anchors: list[str] = []
    for scope in draw(
        st.lists(st.sampled_from(["default", "containerd", "kubelet"]), min_size=1, max_size=3, unique=True)
    ):
        pairs: list[tuple[str, str]] = []
        for _ in range(draw(st.integers(1, 3))):
            key = draw(st.sampled_from(["NO_PROXY", "no_proxy", "No_Proxy", "HTTPS_PROXY", "http_proxy", "GODEBUG"]))
            if any(k == key for k, _ in pairs):
                continue
            raw = draw(st.one_of(_ENTRIES, _SCALAR_ONLY))
            form = draw(st.sampled_from(["plain", "single", "double", "anchor", "alias", "comment"]))
            if form == "plain" and raw and raw[0] not in ",*&!|>%@`-?:[]{}#'\"" and " " not in raw:
                value = raw
            elif form == "single":
                value = "'" + raw.replace("'", "''") + "'"
            elif form == "anchor":
                name = f"a{len(anchors)}"
                anchors.append(name)
                value = f'&{name} "{raw}"'
            elif form == "alias" and anchors:
                value = "*" + draw(st.sampled_from(anchors))
            elif form == "comment":
                value = f'"{raw}" # a comment: NO_PROXY: evil.example'
            else:
                value = f'"{raw}"'
            pairs.append((key, value))
        if draw(st.booleans()) and all(v[:1] in ("'", '"') and "#" not in v for _, v in pairs):
            lines.append(f"      {scope}: {{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}")
        else:
            lines.append(f"      {scope}:")
            lines.extend(f"        {k}: {v}" for k, v in pairs)
    return "\n".join(lines) + "\n"


def _with_yaml(text: str) -> tuple[bool, tuple[str, ...]]:
    """The same answer from a real YAML 1.1 parser (as nodeadm's go-yaml reads it)."""
    environment = yaml.safe_load(text)["spec"]["instance"]["environment"]
    sets_proxy, entries = False, []
    for variables in environment.values():
        for key, value in variables.items():
            if key.upper() in PROXY_KEYS:
                sets_proxy = True
                if key.upper() == "NO_PROXY" and isinstance(value, str):
                    for raw in value.split(","):
                        with contextlib.suppress(ValueError):
                            entries.append(validate_no_proxy_entry(raw.strip()))
    return sets_proxy, tuple(dict.fromkeys(entries))


@settings(max_examples=300, deadline=None)
@given(text=_nodeconfig_documents(), crlf=st.booleans())
def test_the_nodeconfig_reader_agrees_with_a_yaml_parser(text: str, crlf: bool) -> None:
    found = read_proxy_settings((text.replace("\n", "\r\n") if crlf else text).encode())
    assert (found.sets_proxy, found.no_proxy) == _with_yaml(text)


@pytest.mark.parametrize(
    "value",
    [
        "|\n          registry.team.internal",
        ">-\n          registry.team.internal",
        "\n          registry.team.internal",
    ],
)
def test_the_nodeconfig_reader_leaves_multi_line_values_out(value: str) -> None:
    """Values it does not read give no entries (ours alone, as before), but still count as setting the proxy."""
    text = f"kind: NodeConfig\nspec:\n  instance:\n    environment:\n      default:\n        NO_PROXY: {value}\n"
    assert read_proxy_settings(text.encode()) == read_proxy_settings(b"NO_PROXY: |\n") != read_proxy_settings(b"")
    assert read_proxy_settings(text.encode()).no_proxy == ()
