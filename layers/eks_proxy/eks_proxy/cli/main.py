"""The ``eks-proxy`` command line.

    eks-proxy render --value VALUE --os {al2023,al2,bottlerocket} --region REGION [--service-cidr CIDR]
                     [--cluster-endpoint URL] [--vpc-cidr CIDR]... [--no-proxy ENTRY]... [--ca-bundle FILE]
    eks-proxy inject (same options) [FILE|-]

``render`` writes the complete user data for a fresh launch template; ``inject`` reads existing user data (a file,
or stdin when FILE is ``-`` or omitted; raw or base64) and writes it back with the proxy configuration injected or
refreshed, in the same encoding. ``--ca-bundle FILE``: the PEM CA certificates of a TLS-inspecting proxy (a value
that names a ``"ca_bundle"`` parameter needs it: the command reads no parameter; a certificate expiring soon is a
``eks-proxy: warning: ...`` line on stderr). Exit 0 on success; on bad input exit 2 with nothing on stdout and
exactly one line ``eks-proxy: error: ...`` on stderr (argparse usage errors included).

More commands plug in without editing this file: any module ``eks_proxy.cli.<name>`` exposing
``register(subparsers) -> None`` is loaded; it adds its parser and sets ``handler=<function(args) -> int>`` with
``set_defaults``. A handler raising ``ValueError`` (or :class:`CliError`) gets the same one-line exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import re
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn, TypeAlias

import eks_proxy
from eks_proxy.proxy.ca_bundle import CaBundle, read_ca_bundle_file
from eks_proxy.proxy.no_proxy import NodeContext
from eks_proxy.proxy.value import ProxyConfig, parse_proxy_value, validate_no_proxy_entry
from eks_proxy.userdata.merge import inject, render_userdata
from eks_proxy.userdata.node_os import NodeOS

PROG = "eks-proxy"
EXIT_USAGE = 2
_CREDENTIALS_IN_ARGUMENT = re.compile(r"[^\s',]*@[^\s',]*")


# What register() receives: argparse's subparsers action (its type is private to argparse).
Subparsers: TypeAlias = "argparse._SubParsersAction[Any]"


class CliError(Exception):
    """Bad input: printed as one ``eks-proxy: error: ...`` line, exit 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors and no usage dump (the contract: exactly one line on stderr)."""

    def error(self, message: str) -> NoReturn:
        # argparse repeats the arguments it did not expect: a proxy URL pasted without --value may carry a password.
        raise CliError(_CREDENTIALS_IN_ARGUMENT.sub("(an argument with credentials, not shown)", message))


def build_parser() -> argparse.ArgumentParser:
    """The full parser: built-in commands plus every ``eks_proxy.cli.<name>`` module's ``register``."""
    parser = _Parser(prog=PROG, description="Keeps the HTTP(S) proxy configuration of EKS managed node groups right.")
    parser.add_argument("--version", action="version", version=f"{PROG} {eks_proxy.__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    subparsers.required = True
    register(subparsers)
    for module in _command_modules():
        module.register(subparsers)
    return parser


def register(subparsers: Subparsers) -> None:
    """Add ``render`` and ``inject``."""
    render = subparsers.add_parser("render", help="print the user data for a fresh launch template")
    _add_render_options(render)
    render.set_defaults(handler=_render)
    merge = subparsers.add_parser("inject", help="inject or refresh the proxy configuration in existing user data")
    _add_render_options(merge)
    merge.add_argument("file", nargs="?", default="-", metavar="FILE|-", help="existing user data (default: stdin)")
    merge.set_defaults(handler=_inject)


def _add_render_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--value", required=True, help="the proxy value, exactly as stored in the SSM parameter")
    parser.add_argument("--os", required=True, choices=[o.value for o in NodeOS], dest="node_os", help="node OS")
    parser.add_argument("--region", required=True, help="the cluster's AWS region, e.g. eu-west-1")
    parser.add_argument("--service-cidr", help="the cluster's service CIDR (default: both EKS defaults)")
    parser.add_argument("--cluster-endpoint", help="the API server URL (its host name goes into NO_PROXY)")
    parser.add_argument("--vpc-cidr", action="append", default=[], metavar="CIDR", help="a VPC CIDR (repeatable)")
    parser.add_argument(
        "--no-proxy", action="append", default=[], metavar="ENTRY", help="an extra NO_PROXY entry (repeatable)"
    )
    add_ca_bundle_option(parser)


def add_ca_bundle_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ca-bundle",
        metavar="FILE",
        help='PEM CA certificates of a TLS-inspecting proxy (what the value\'s "ca_bundle" parameter holds)',
    )


def ca_bundle_from_file(path: str) -> CaBundle:
    """``--ca-bundle FILE`` validated (one-line error otherwise); its warnings (expiring soon) go to stderr."""
    bundle = read_ca_bundle_file(path)
    for warning in bundle.warnings:
        print(f"{PROG}: warning: {warning}", file=sys.stderr)
    return bundle


def _inputs(args: argparse.Namespace) -> tuple[ProxyConfig, NodeContext, NodeOS]:
    config = parse_proxy_value(args.value)
    if args.ca_bundle:
        config = config.with_ca_bundle(ca_bundle_from_file(args.ca_bundle))
    extra = [validate_no_proxy_entry(entry, "--no-proxy entry") for entry in args.no_proxy]
    if extra:
        config = replace(config, no_proxy=tuple(dict.fromkeys([*config.no_proxy, *extra])))
    context = NodeContext(
        region=args.region,
        service_cidr=args.service_cidr,
        cluster_endpoint=args.cluster_endpoint,
        vpc_cidrs=tuple(args.vpc_cidr),
    )
    return config, context, NodeOS(args.node_os)


def _render(args: argparse.Namespace) -> int:
    config, context, node_os = _inputs(args)
    _write(render_userdata(config, context, node_os))
    return 0


def _inject(args: argparse.Namespace) -> int:
    config, context, node_os = _inputs(args)
    existing = _read(args.file)
    result = inject(existing, config, context, node_os)
    data = result.user_data
    _write(data if isinstance(data, bytes) else data.encode())
    return 0


def _read(name: str) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(name).read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {name}: {exc.strerror or exc}") from None


def _write(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def _command_modules() -> list[ModuleType]:
    """Every other ``eks_proxy.cli.<name>`` module with a ``register`` function, in name order."""
    import eks_proxy.cli as package

    modules = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name not in {"main", "report"}:
            module = importlib.import_module(f"eks_proxy.cli.{info.name}")
            if callable(getattr(module, "register", None)):
                modules.append(module)
    return modules


def _fail(message: str) -> int:
    line = " ".join(str(message).split()) or "invalid input"
    print(f"{PROG}: error: {line}", file=sys.stderr)
    return EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (the console script exits with it)."""
    try:
        args = build_parser().parse_args(argv)
        code: int = args.handler(args)
        return code
    except (CliError, ValueError) as exc:
        return _fail(str(exc))
    except BrokenPipeError:
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
