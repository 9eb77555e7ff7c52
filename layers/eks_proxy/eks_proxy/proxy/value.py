"""The proxy value: exactly what the user stores in the SSM parameter, parsed and validated strictly.

Accepted forms::

    http://10.0.0.10:3128                  plain URL (http or https scheme)
    proxy.corp.example:3128                host:port, http assumed
    {"http_proxy": "http://[fd00::10]:3128", "https_proxy": "https://proxy.corp.example:3129",
     "no_proxy": [".corp.example", "10.20.0.0/16"], "vpc_endpoints": false, "ca_bundle": "/eks-proxy/ca-bundle"}

``vpc_endpoints`` (default true) says the nodes reach the regional AWS APIs (eks, ecr, s3, ec2, sts) through VPC
interface/gateway endpoints, so those names are in NO_PROXY; false when the VPC has no such endpoints and the proxy
is the way to AWS too (then those names must go through the proxy, or nodes cannot join).

``ca_bundle`` names the SSM parameter holding the PEM CA certificates of a TLS-inspecting proxy (ca_bundle.py). The
value only names it: whoever reads the value reads that parameter too (``resolve_ca_bundle``) and attaches the
validated bundle with :meth:`ProxyConfig.with_ca_bundle` before anything is rendered or probed.

The value ends up in shell scripts, systemd files, YAML and TOML on every node, so it is refused (never cleaned up)
when it carries anything but what a proxy address needs: no whitespace, control characters, quotes or shell
metacharacters, no credentials (user data is readable by anyone who can describe launch templates or reach IMDS on
the node), a port always, at most 4 KB. Each error is one line saying what is wrong and what is expected; no error
message ever repeats the value, so a credential pasted by mistake never reaches a log.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eks_proxy.proxy.ca_bundle import CaBundle

MAX_VALUE_BYTES = 4096

_EXPECTED = "expected http://host:port, https://host:port, host:port or a JSON object"
_SCHEMES = ("http", "https")
_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")  # used with fullmatch
# Characters a proxy URL or a NO_PROXY entry can legitimately need; everything else is refused.
_ALLOWED = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:/[]")
_QUOTES = frozenset("'\"`")
_SHELL = frozenset(";&|$<>(){}\\!#~^?*,=%+")
CA_BUNDLE_PARAMETER_RE = re.compile(r"/[A-Za-z0-9_.\-/]{1,1010}")  # an SSM name with its leading slash (fullmatch)


class ProxyValueError(ValueError):
    """The proxy value is not acceptable; the message is one line and never contains the value itself."""


@dataclass(frozen=True)
class ProxyConfig:
    """A validated proxy configuration.

    ``http_proxy`` and ``https_proxy`` are normalized URLs (``http://10.0.0.10:3128``: lower-case scheme and host,
    no trailing slash); ``no_proxy`` holds only the user's additions (the computed defaults live in no_proxy.py).
    """

    http_proxy: str
    https_proxy: str
    no_proxy: tuple[str, ...] = ()
    vpc_endpoints: bool = True
    ca_bundle_parameter: str | None = None  # the SSM parameter the value names for a TLS-inspecting proxy
    ca_bundle: CaBundle | None = None  # its validated content, attached by whoever read the value

    @property
    def needs_ca_bundle(self) -> bool:
        """True when the value names a CA bundle whose content has not been attached yet."""
        return self.ca_bundle_parameter is not None and self.ca_bundle is None

    def with_ca_bundle(self, bundle: CaBundle | None) -> ProxyConfig:
        """This configuration with ``bundle`` as its CA bundle (read from the named parameter, or a file)."""
        return replace(self, ca_bundle=bundle)


def parse_proxy_value(text: str) -> ProxyConfig:
    """Parse the SSM parameter value into a :class:`ProxyConfig`, or raise :class:`ProxyValueError`.

    >>> parse_proxy_value("10.0.0.10:3128").http_proxy
    'http://10.0.0.10:3128'
    >>> parse_proxy_value('{"http_proxy": "proxy.corp:3128", "no_proxy": [".corp"]}').no_proxy
    ('.corp',)
    """
    if not isinstance(text, str):
        raise ProxyValueError(f"proxy value must be text, got {type(text).__name__}")
    if len(text.encode("utf-8", "surrogatepass")) > MAX_VALUE_BYTES:
        raise ProxyValueError(f"proxy value is longer than {MAX_VALUE_BYTES} bytes; {_EXPECTED}")
    if "@" in text:
        # Checked first and on the whole text, so no later message can ever carry a credential.
        raise _credentials_error("proxy value")
    if not text:
        raise ProxyValueError(f"proxy value is empty; {_EXPECTED}")
    if text.lstrip(" \t\r\n").startswith("{") or (text.startswith("[") and _is_json(text)):
        return _parse_json(text)
    url = _parse_url(text, "proxy value")
    return ProxyConfig(http_proxy=url, https_proxy=url)


def _parse_json(text: str) -> ProxyConfig:
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates)
    except _DuplicateKey as exc:
        raise ProxyValueError(f"proxy value JSON has the key {exc.key!r} twice; give each key once") from None
    except RecursionError:  # a few KB of "[[[[..." is enough
        raise ProxyValueError(
            'proxy value JSON is nested too deeply; expected {"http_proxy": "...", "no_proxy": ["..."]}'
        ) from None
    except ValueError as exc:
        # json's message carries a position, never the value.
        reason = str(exc).split(":", 1)[0]
        raise ProxyValueError(
            f"proxy value is not valid JSON ({reason}); expected "
            '{"http_proxy": "http://host:port", "https_proxy": "...", "no_proxy": ["..."]}'
        ) from None
    if not isinstance(data, dict):
        raise ProxyValueError(f"proxy value JSON must be an object, got {_json_type(data)}; {_EXPECTED}")
    known = ("http_proxy", "https_proxy", "no_proxy", "vpc_endpoints", "ca_bundle")
    for key in data:
        if key not in known:
            shown = key if _is_safe_name(key) else "(a key with unexpected characters)"
            raise ProxyValueError(f"proxy value JSON has an unknown key {shown!r}; allowed keys: {', '.join(known)}")
    if "http_proxy" not in data:
        raise ProxyValueError('proxy value JSON lacks "http_proxy"; expected "http_proxy": "http://host:port"')
    http = _json_url(data, "http_proxy")
    https = _json_url(data, "https_proxy") if "https_proxy" in data else http
    raw_no_proxy = data.get("no_proxy", [])
    if not isinstance(raw_no_proxy, list):
        raise ProxyValueError(
            f'proxy value JSON "no_proxy" must be a list of strings, got {_json_type(raw_no_proxy)}; '
            'expected "no_proxy": [".corp.example", "10.20.0.0/16"]'
        )
    entries: list[str] = []
    for index, entry in enumerate(raw_no_proxy):
        if not isinstance(entry, str):
            raise ProxyValueError(
                f'proxy value JSON "no_proxy"[{index}] must be a string, got {_json_type(entry)}; '
                'expected "no_proxy": [".corp.example"]'
            )
        normalized = validate_no_proxy_entry(entry, f'"no_proxy"[{index}]')
        if normalized not in entries:
            entries.append(normalized)
    vpc_endpoints = data.get("vpc_endpoints", True)
    if not isinstance(vpc_endpoints, bool):
        raise ProxyValueError(
            f'proxy value JSON "vpc_endpoints" must be true or false, got {_json_type(vpc_endpoints)}; '
            'expected "vpc_endpoints": false when the nodes reach AWS APIs through the proxy'
        )
    ca_bundle = data.get("ca_bundle")
    if ca_bundle is not None and not (isinstance(ca_bundle, str) and CA_BUNDLE_PARAMETER_RE.fullmatch(ca_bundle)):
        raise ProxyValueError(
            'proxy value JSON "ca_bundle" must name an SSM parameter with its leading slash (letters, digits and '
            '_ . - /); expected "ca_bundle": "/eks-proxy/ca-bundle"'
        )
    return ProxyConfig(
        http_proxy=http,
        https_proxy=https,
        no_proxy=tuple(entries),
        vpc_endpoints=vpc_endpoints,
        ca_bundle_parameter=ca_bundle,
    )


def _is_json(text: str) -> bool:
    """True when text parses as JSON (a list such as ["proxy:3128"] must be refused as JSON, not as a URL)."""
    try:
        json.loads(text)
    except RecursionError:
        return True  # JSON, nested too deeply: _parse_json says so
    except ValueError:
        return False
    return True


def _json_url(data: dict[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise ProxyValueError(
            f'proxy value JSON "{key}" must be a string, got {_json_type(value)}; expected "{key}": "http://host:port"'
        )
    return _parse_url(value, f'"{key}"')


def _parse_url(text: str, what: str) -> str:
    if "@" in text:  # e.g. smuggled through a JSON \u0040 escape
        raise _credentials_error(what)
    _check_characters(text, what)
    scheme = "http"
    rest = text
    if "://" in text:
        scheme, rest = text.split("://", 1)
        scheme = scheme.lower()
        if scheme not in _SCHEMES:
            shown = scheme if _is_safe_name(scheme) else "?"
            raise ProxyValueError(f"{what} has the unsupported scheme {shown!r}; expected http:// or https://")
    if rest.endswith("/"):
        rest = rest[:-1]  # "http://proxy:3128/" is a common way to write the same URL
    if "/" in rest:
        raise ProxyValueError(f"{what} has a path; expected only scheme://host:port")
    host, port = _split_host_port(rest, what)
    return f"{scheme}://{host}:{port}"


def _split_host_port(text: str, what: str) -> tuple[str, int]:
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ProxyValueError(f"{what} has an unclosed '[' around an IPv6 address; expected [fd00::10]:3128")
        raw_host, after = text[1:end], text[end + 1 :]
        try:
            address = ipaddress.IPv6Address(raw_host)
        except ValueError:
            raise ProxyValueError(
                f"{what} has an invalid IPv6 address in brackets; expected e.g. [fd00::10]:3128"
            ) from None
        host = f"[{address.compressed}]"
        if not after.startswith(":"):
            raise ProxyValueError(f"{what} has no port; expected [ipv6]:port with a port from 1 to 65535")
        raw_port = after[1:]
    else:
        if text.count(":") > 1:
            raise ProxyValueError(f"{what} looks like an IPv6 address without brackets; expected [fd00::10]:3128")
        if ":" not in text:
            raise ProxyValueError(f"{what} has no port; expected host:port with a port from 1 to 65535")
        raw_host, raw_port = text.split(":", 1)
        host = _validate_host(raw_host, what)
    if not raw_port.isdigit() or not raw_port.isascii():
        raise ProxyValueError(f"{what} has a port that is not a number; expected a port from 1 to 65535")
    port = int(raw_port)
    if not 1 <= port <= 65535:
        raise ProxyValueError(f"{what} has the port {port}, out of range; expected a port from 1 to 65535")
    return host, port


def _validate_host(raw: str, what: str) -> str:
    """An IPv4 address or an RFC 1123 host name, lower-cased."""
    if not raw:
        raise ProxyValueError(f"{what} has no host; expected host:port")
    host = raw.lower()
    if re.fullmatch(r"[0-9.]+", host):
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            raise ProxyValueError(f"{what} has an invalid IPv4 address; expected four numbers 0-255") from None
    if not is_hostname(host):
        raise ProxyValueError(
            f"{what} has an invalid host name; expected RFC 1123 labels (letters, digits, '-'), dot-separated"
        )
    return host


def is_hostname(host: str) -> bool:
    """True for an RFC 1123 host name (lower-case labels of letters, digits and inner hyphens, <= 253 chars)."""
    if not host or len(host) > 253:
        return False
    return all(_LABEL.fullmatch(label) for label in host.split("."))  # not match(): "$" allows a final newline


def validate_no_proxy_entry(entry: str, what: str = "no_proxy entry") -> str:
    """Validate one NO_PROXY addition and return it normalized (lower case, canonical IP/CIDR).

    Accepted: a host name (``registry.corp``), a domain suffix (``.corp.example``), an IPv4/IPv6 address
    (``10.1.2.3``, ``fd00::1``) or a CIDR (``10.20.0.0/16``, ``fd00:10::/64``). ``*`` is refused: it would turn the
    proxy off for everything.
    """
    if entry == "*":
        raise ProxyValueError(f"{what} is '*', which would bypass the proxy for every host; list hosts or CIDRs")
    if not entry:
        raise ProxyValueError(f"{what} is empty; expected a host name, .domain, IP address or CIDR")
    if len(entry) > 253:
        raise ProxyValueError(f"{what} is longer than 253 characters; expected a host name, .domain, IP or CIDR")
    _check_characters(entry, what)
    lowered = entry.lower()
    if "/" in lowered:
        try:
            return str(ipaddress.ip_network(lowered, strict=False))
        except ValueError:
            raise ProxyValueError(f"{what} is not a valid CIDR; expected e.g. 10.20.0.0/16 or fd00:10::/64") from None
    if ":" in lowered or re.fullmatch(r"[0-9.]+", lowered):
        try:
            return str(ipaddress.ip_address(lowered))
        except ValueError:
            raise ProxyValueError(f"{what} is not a valid IP address; expected e.g. 10.1.2.3 or fd00::1") from None
    if is_hostname(lowered.removeprefix(".")):
        return lowered
    raise ProxyValueError(f"{what} is not a valid host name or .domain; expected RFC 1123 labels, e.g. .corp.example")


def _credentials_error(what: str) -> ProxyValueError:
    return ProxyValueError(
        f"{what} contains credentials (user@ or user:password@): refused, because node user data is readable "
        "by anyone who can describe launch templates or reach IMDS on the node; use a proxy that allows the "
        "nodes by source address, and give http://host:port"
    )


def _check_characters(text: str, what: str) -> None:
    """Refuse, by category, any character a proxy address never needs (shown only when harmless to show)."""
    for position, char in enumerate(text, start=1):
        if char in _ALLOWED:
            continue
        if char.isspace():
            kind = "whitespace"
        elif not char.isprintable():
            kind = "a control character"
        elif char in _QUOTES:
            kind = f"a quote ({char})"
        elif char in _SHELL:
            kind = f"a shell metacharacter ({char})"
        else:
            kind = f"the character {char!r}" if char.isascii() else "a non-ASCII character"
        raise ProxyValueError(
            f"{what} contains {kind} at position {position}; "
            "only letters, digits and . - : / [ ] are allowed in proxy addresses and no_proxy entries"
        )


def _is_safe_name(text: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9_.-]{1,40}", text))


def _json_type(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key if _is_safe_name(key) else "?")
        result[key] = value
    return result
