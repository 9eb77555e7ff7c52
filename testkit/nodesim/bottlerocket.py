"""What Bottlerocket would give containerd from its TOML user data (SIMULATED: we cannot boot Bottlerocket).

Bottlerocket renders /etc/network/proxy.env (an EnvironmentFile of containerd, kubelet and host-containerd) from
a template in its source tree (packages/os/proxy-env):

    HTTPS_PROXY={{settings.network.https-proxy}}          (and https_proxy; only when set; there is NO http-proxy)
    NO_PROXY={{#each no-proxy}}{{this}},{{/each}}localhost,127.0.0.1[,{{host settings.kubernetes.api-server}}]
             [,.{{settings.kubernetes.cluster-domain}}]    (and no_proxy)

The value is used verbatim (Go would even take a scheme-less ``host:port`` as http://). But first, at boot,
Bottlerocket's settings generator ``pluto`` parses ``https-proxy`` with Rust's ``url`` crate (a WHATWG URL parser):
released versions from v1.17.0 until core-kit PR 339 (January 2025) abort on a value that has no scheme and starts
with a digit or ``[`` ("Unable to parse HTTPS proxy as URL: RelativeUrlWithoutBase"), and the node never joins
(bottlerocket-core-kit issue 338). :func:`parse_url` is a strict, WHATWG-shaped parser for that check: it refuses
everything rust-url refuses for these inputs (and more: whitespace, credentials, paths); :func:`pluto_https_proxy`
also requires what a working proxy setting needs, an ``http``/``https`` URL with a host (``proxy.corp:3128`` parses,
but as a URL whose scheme is ``proxy.corp`` and which has no host).
"""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

# WHATWG "special" schemes and their default ports (file has none).
_SPECIAL_SCHEMES = {"http": 80, "https": 443, "ws": 80, "wss": 443, "ftp": 21, "file": None}
# WHATWG forbidden host code points (plus '%', which rust-url refuses in a domain after percent-decoding).
_FORBIDDEN_HOST = frozenset("\x00\t\n\r #/:<>?@[\\]^|%")


class BottlerocketSettingsError(ValueError):
    """Settings Bottlerocket's API server would reject at boot (the node would not come up)."""


class UrlParseError(ValueError):
    """What rust-url's ``Url::parse`` would return as an error (its name, e.g. RelativeUrlWithoutBase)."""


@dataclass(frozen=True)
class ParsedUrl:
    scheme: str
    host: str | None  # None for an opaque URL (a scheme that is not special, e.g. "proxy.corp:3128")
    port: int | None  # explicit or the scheme's default


def parse_url(text: str) -> ParsedUrl:
    """Parse ``text`` as an absolute URL the way rust-url (WHATWG) does without a base URL, but stricter.

    >>> parse_url("http://[fd00::10]:3128")
    ParsedUrl(scheme='http', host='[fd00::10]', port=3128)
    >>> try:
    ...     parse_url("10.0.5.67:8080")
    ... except UrlParseError as error:
    ...     print(error)
    RelativeUrlWithoutBase
    """
    if not text or any(ord(c) <= 0x20 or ord(c) == 0x7F for c in text) or not text.isascii():
        raise UrlParseError("InvalidCharacter")  # WHATWG strips/removes some of these; strict: refused
    # Scheme state: an ASCII letter, then letters, digits, "+", "-", "." up to ":". Otherwise "no scheme", which
    # without a base URL is the error pluto reported.
    if not text[0].isalpha():
        raise UrlParseError("RelativeUrlWithoutBase")
    end = 1
    while end < len(text) and (text[end].isalnum() or text[end] in "+-."):
        end += 1
    if end == len(text) or text[end] != ":":
        raise UrlParseError("RelativeUrlWithoutBase")
    scheme, rest = text[:end].lower(), text[end + 1 :]
    if scheme not in _SPECIAL_SCHEMES:
        return ParsedUrl(scheme, None, None)  # opaque path: rust-url accepts it, there is no host
    if not rest.startswith("//"):
        raise UrlParseError("InvalidAuthority")  # WHATWG tolerates "http:host"; strict: refused
    authority, _, path = rest[2:].partition("/")
    if path or any(c in authority for c in "?#\\"):
        raise UrlParseError("UnexpectedPathQueryOrFragment")  # a proxy URL is scheme://host:port[/]
    if "@" in authority:
        raise UrlParseError("CredentialsNotAllowed")
    if authority.startswith("["):
        close = authority.find("]")
        if close < 0:
            raise UrlParseError("InvalidIpv6Address")
        try:
            host = f"[{ipaddress.IPv6Address(authority[1:close]).compressed}]"
        except ValueError:
            raise UrlParseError("InvalidIpv6Address") from None
        after = authority[close + 1 :]
        if after and not after.startswith(":"):
            raise UrlParseError("InvalidPort")
        raw_port = after[1:] if after else ""
    else:
        host, _, raw_port = authority.partition(":")
        if not host:
            raise UrlParseError("EmptyHost")
        if any(c in _FORBIDDEN_HOST for c in host):
            raise UrlParseError("InvalidDomainCharacter")
        host = host.lower()
        last = host.rstrip(".").rsplit(".", 1)[-1]
        if last and (last.isdigit() or last.startswith("0x")):  # WHATWG "ends in a number": must be IPv4
            try:
                host = str(ipaddress.IPv4Address(host))
            except ValueError:
                raise UrlParseError("InvalidIpv4Address") from None
    if raw_port and not raw_port.isdigit():
        raise UrlParseError("InvalidPort")
    port = int(raw_port) if raw_port else _SPECIAL_SCHEMES[scheme]
    if port is not None and port > 65535:
        raise UrlParseError("InvalidPort")
    return ParsedUrl(scheme, host, port)


def pluto_https_proxy(value: str) -> ParsedUrl:
    """``settings.network.https-proxy`` as pluto needs it at boot: a URL (else pluto aborts), http(s), with a host."""
    try:
        url = parse_url(value)
    except UrlParseError as exc:
        raise BottlerocketSettingsError(f"pluto: Unable to parse HTTPS proxy as URL: {exc}") from None
    if url.scheme not in ("http", "https") or url.host is None:
        raise BottlerocketSettingsError(f"pluto: HTTPS proxy is not an http(s) URL with a host: {value!r}")
    return url


def settings(user_data: bytes) -> dict[str, Any]:
    try:
        doc = tomllib.loads(user_data.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BottlerocketSettingsError(f"user data is not TOML: {exc}") from exc
    found = doc.get("settings", {})
    if not isinstance(found, dict):
        raise BottlerocketSettingsError("[settings] must be a table")
    return found


def containerd_environment(user_data: bytes) -> dict[str, str]:
    """The proxy variables containerd would run with on a Bottlerocket node booted with ``user_data``."""
    s = settings(user_data)
    network = s.get("network", {})
    kubernetes = s.get("kubernetes", {})
    https_proxy = network.get("https-proxy")
    if "http-proxy" in network:
        raise BottlerocketSettingsError("settings.network.http-proxy does not exist (only https-proxy)")
    no_proxy = network.get("no-proxy", [])
    if not isinstance(no_proxy, list) or not all(isinstance(e, str) and e and "," not in e for e in no_proxy):
        raise BottlerocketSettingsError("settings.network.no-proxy must be a list of non-empty strings")
    env: dict[str, str] = {}
    if https_proxy is not None:
        if not isinstance(https_proxy, str):
            raise BottlerocketSettingsError(f"settings.network.https-proxy is not a string: {https_proxy!r}")
        pluto_https_proxy(https_proxy)
        env["HTTPS_PROXY"] = env["https_proxy"] = https_proxy
    entries = [*no_proxy, "localhost", "127.0.0.1"]
    api_server = kubernetes.get("api-server")
    if api_server:
        entries.append(urlsplit(api_server).hostname or api_server)
    if kubernetes.get("cluster-domain"):
        entries.append("." + kubernetes["cluster-domain"])
    env["NO_PROXY"] = env["no_proxy"] = ",".join(entries)
    return env
