"""The `eks-proxy` command line, run as a process exactly as users run it."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from eks_proxy.proxy.no_proxy import NodeContext
from eks_proxy.proxy.value import parse_proxy_value
from eks_proxy.userdata.merge import find_fingerprint, render_userdata
from eks_proxy.userdata.node_os import NodeOS

HERE = Path(__file__).resolve().parent
CONSOLE_SCRIPT = Path(sys.executable).parent / "eks-proxy"
COMMAND = [str(CONSOLE_SCRIPT)] if CONSOLE_SCRIPT.exists() else [sys.executable, "-m", "eks_proxy.cli.main"]
BASE = ["--region", "eu-west-1", "--service-cidr", "172.20.0.0/16", "--vpc-cidr", "10.0.0.0/16"]
EXISTING = (
    b'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="==B=="\n\n'
    b'--==B==\nContent-Type: text/x-shellscript; charset="us-ascii"\n\n#!/bin/bash\necho hello\n\n--==B==--\n'
)


def run(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*COMMAND, *args], input=stdin, capture_output=True, timeout=60)


def assert_refused(result: subprocess.CompletedProcess[bytes], fragment: str = "") -> str:
    """Exit 2, nothing on stdout, exactly one `eks-proxy: error: ...` line on stderr."""
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert result.stdout == b""
    assert stderr.endswith("\n") and stderr.count("\n") == 1, stderr
    assert stderr.startswith("eks-proxy: error: "), stderr
    assert fragment in stderr
    return stderr


def _hostile_values() -> list[str]:
    lines = (HERE / "hostile_values.txt").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize("node_os", [o.value for o in NodeOS])
def test_render_prints_the_fresh_user_data(node_os: str) -> None:
    result = run("render", "--value", "http://10.0.0.10:3128", "--os", node_os, *BASE)
    assert result.returncode == 0 and result.stderr == b""
    context = NodeContext("eu-west-1", "172.20.0.0/16", None, ("10.0.0.0/16",))
    assert result.stdout == render_userdata(parse_proxy_value("http://10.0.0.10:3128"), context, NodeOS(node_os))


def test_render_with_every_option() -> None:
    result = run(
        "render",
        "--value",
        '{"http_proxy": "proxy.corp:3128", "no_proxy": [".corp"]}',
        "--os",
        "bottlerocket",
        "--region",
        "eu-west-1",
        "--cluster-endpoint",
        "https://ABC.gr7.eu-west-1.eks.amazonaws.com",
        "--vpc-cidr",
        "10.0.0.0/16",
        "--vpc-cidr",
        "10.1.0.0/16",
        "--no-proxy",
        "registry.corp",
        "--no-proxy",
        ".corp",
    )
    assert result.returncode == 0, result.stderr
    no_proxy = tomllib.loads(result.stdout.decode())["settings"]["network"]["no-proxy"]
    for entry in ("abc.gr7.eu-west-1.eks.amazonaws.com", "10.0.0.0/16", "10.1.0.0/16", "registry.corp", ".corp"):
        assert no_proxy.count(entry) == 1
    assert {"10.100.0.0/16", "172.20.0.0/16"} <= set(no_proxy)  # service CIDR unknown: both EKS defaults


def test_inject_from_a_file_from_stdin_and_twice(tmp_path: Path) -> None:
    path = tmp_path / "user-data.txt"
    path.write_bytes(EXISTING)
    args = ["inject", "--value", "http://10.0.0.10:3128", "--os", "al2023", *BASE]
    from_file = run(*args, str(path))
    assert from_file.returncode == 0, from_file.stderr
    # The user's part first, byte for byte; ours after it.
    assert from_file.stdout.startswith(EXISTING[: EXISTING.index(b"--==B==--")] + b"--==B==\n")
    assert from_file.stdout.endswith(b"--==B==--\n")
    assert find_fingerprint(from_file.stdout) is not None
    assert path.read_bytes() == EXISTING  # the file itself is never modified
    assert run(*args, stdin=EXISTING).stdout == from_file.stdout
    assert run(*args, "-", stdin=EXISTING).stdout == from_file.stdout
    assert run(*args, stdin=from_file.stdout).stdout == from_file.stdout  # idempotent


def test_inject_keeps_base64(tmp_path: Path) -> None:
    args = ["inject", "--value", "http://10.0.0.10:3128", "--os", "al2", *BASE]
    raw = run(*args, stdin=EXISTING).stdout
    encoded = run(*args, stdin=base64.b64encode(EXISTING))
    assert encoded.returncode == 0 and base64.b64decode(encoded.stdout) == raw


def test_inject_into_empty_stdin_is_a_fresh_render() -> None:
    args = ["--value", "http://10.0.0.10:3128", "--os", "al2023", *BASE]
    assert run("inject", *args).stdout == run("render", *args).stdout


# Every value through `render`; every fourth also through `inject` (same parsing path, and each run is a process).
HOSTILE = [("render", v) for v in _hostile_values()] + [("inject", v) for v in _hostile_values()[::4]]


@pytest.mark.parametrize(("command", "value"), HOSTILE)
def test_hostile_values_are_refused(command: str, value: str, tmp_path: Path) -> None:
    path = tmp_path / "user-data.txt"
    path.write_bytes(EXISTING)
    extra = [str(path)] if command == "inject" else []
    stderr = assert_refused(run(command, f"--value={value}", "--os", "al2023", *BASE, *extra))
    assert "s3cr3t" not in stderr
    assert path.read_bytes() == EXISTING


def test_the_corpus_is_substantial() -> None:
    values = _hostile_values()
    assert len(values) >= 80 and len(set(values)) == len(values)


def test_oversized_value_is_refused() -> None:
    value = json.dumps({"http_proxy": "proxy:3128", "no_proxy": [f"h{i}.corp" for i in range(600)]})
    assert_refused(run("render", f"--value={value}", "--os", "al2", *BASE), "4096 bytes")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ((), "required"),
        (("render",), "required"),
        (("render", "--value", "proxy:3128", "--os", "windows", "--region", "eu-west-1"), "invalid choice"),
        (("render", "--value", "proxy:3128", "--os", "al2", "--region", "eu-west-1", "--bogus"), "unrecognized"),
        (("render", "--value", "proxy:3128", "--os", "al2"), "--region"),
        (("render", "--value", "proxy:3128", "--os", "al2", "--region", "Europe"), "region"),
        (("render", "--value", "proxy:3128", "--os", "al2", "--region", "eu-west-1", "--vpc-cidr", "10.0.0/8"), "CIDR"),
        (("render", "--value", "proxy:3128", "--os", "al2", "--region", "eu-west-1", "--service-cidr", "x"), "CIDR"),
        (("render", "--value", "p:1", "--os", "al2", "--region", "eu-west-1", "--cluster-endpoint", "https://a b"), ""),
        (("render", "--value", "p:1", "--os", "al2", "--region", "eu-west-1", "--no-proxy", "a;b"), "--no-proxy"),
        # An IPv6 scope id ("%...") is free text to Python's ipaddress: it must not reach the boothook's quotes.
        (("render", "--value", "p:1", "--os", "al2", "--region", "eu-west-1", "--vpc-cidr", "::%'`id`'/0"), "CIDR"),
        (("render", "--value", "p:1", "--os", "al2", "--region", "eu-west-1\n"), "region"),
        (("render", "--value", "p:1", "--os", "al2", "--region", "eu-west-1", "--no-proxy", "*"), "every host"),
        (("inject", "--value", "p:1", "--os", "al2", "--region", "eu-west-1", "/nonexistent/ud"), "cannot read"),
        (("plan-nothing",), "invalid choice"),
    ],
)
def test_usage_errors_are_one_line(args: tuple[str, ...], fragment: str) -> None:
    assert_refused(run(*args), fragment)


@pytest.mark.parametrize(
    ("user_data", "node_os", "fragment"),
    [
        (b"MIME-Version: 1.0\nContent-Type: multipart/mixed\n\n", "al2023", "boundary"),
        (b"plain words\n", "al2", "neither MIME"),
        (b"[settings\n", "bottlerocket", "TOML"),
        (b"#!/bin/sh\n" + b"#" * 17000 + b"\n", "al2023", "16384"),
    ],
)
def test_inject_refuses_user_data_it_cannot_merge(user_data: bytes, node_os: str, fragment: str) -> None:
    result = run("inject", "--value", "proxy:3128", "--os", node_os, *BASE, stdin=user_data)
    assert_refused(result, fragment)


@pytest.mark.parametrize(
    "args",
    [
        ("plan", "--cluster", "prod", "http://user:s3cr3t@proxy:3128"),  # --value forgotten
        ("render", "--os", "al2", "--region", "eu-west-1", "--value", "p:1", "--valeu=http://u:s3cr3t@p:1"),
        ("render", "--os", "al2", "--region", "eu-west-1", "--value", "p:1", "u:s3cr3t@p:1"),
    ],
)
def test_usage_errors_never_echo_credentials(args: tuple[str, ...]) -> None:
    # argparse repeats unrecognized arguments; a proxy URL with a password pasted without --value must not end up in
    # a terminal scrollback or a CI log.
    stderr = assert_refused(run(*args), "unrecognized arguments")
    assert "s3cr3t" not in stderr and "@" not in stderr


def test_help_and_version_exit_zero() -> None:
    for args in (("--help",), ("render", "--help"), ("inject", "--help"), ("--version",)):
        result = run(*args)
        assert result.returncode == 0 and result.stdout and result.stderr == b""
