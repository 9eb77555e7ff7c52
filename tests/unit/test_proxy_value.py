"""The proxy value as users store it in SSM: accepted forms, normalization, and every kind of refusal."""

from __future__ import annotations

import json

import pytest
from eks_proxy.proxy.value import MAX_VALUE_BYTES, ProxyConfig, ProxyValueError, parse_proxy_value
from hypothesis import given
from hypothesis import strategies as st


@pytest.mark.parametrize(
    ("value", "http", "https"),
    [
        ("http://10.0.0.10:3128", "http://10.0.0.10:3128", "http://10.0.0.10:3128"),
        ("10.0.0.10:3128", "http://10.0.0.10:3128", "http://10.0.0.10:3128"),
        ("https://Proxy.Corp.Example:443", "https://proxy.corp.example:443", "https://proxy.corp.example:443"),
        ("HTTP://proxy:3128/", "http://proxy:3128", "http://proxy:3128"),
        ("http://[FD00::0010]:3128", "http://[fd00::10]:3128", "http://[fd00::10]:3128"),
        ("proxy-1.corp:1", "http://proxy-1.corp:1", "http://proxy-1.corp:1"),
        ("proxy:65535", "http://proxy:65535", "http://proxy:65535"),
    ],
)
def test_plain_forms_are_normalized(value: str, http: str, https: str) -> None:
    config = parse_proxy_value(value)
    assert (config.http_proxy, config.https_proxy, config.no_proxy) == (http, https, ())


def test_json_form_with_all_keys() -> None:
    value = json.dumps(
        {
            "http_proxy": "http://10.0.0.10:3128",
            "https_proxy": "https://secure.corp:3129",
            "no_proxy": [".Corp.Example", "10.20.0.5/16", "fd00::1", "registry.corp", ".corp.example"],
        }
    )
    config = parse_proxy_value(value)
    assert config == ProxyConfig(
        http_proxy="http://10.0.0.10:3128",
        https_proxy="https://secure.corp:3129",
        no_proxy=(".corp.example", "10.20.0.0/16", "fd00::1", "registry.corp"),
    )


def test_json_https_defaults_to_http_and_no_proxy_to_empty() -> None:
    config = parse_proxy_value('{"http_proxy": "proxy:3128"}')
    assert config.https_proxy == config.http_proxy == "http://proxy:3128"
    assert config.no_proxy == ()


def test_ipv6_host_port_for_bottlerocket() -> None:
    assert parse_proxy_value("[fd00::10]:3128").https_proxy == "http://[fd00::10]:3128"


REFUSALS = [
    ('{"http_proxy": "proxy:3128", "vpc_endpoints": "no"}', '"vpc_endpoints" must be true or false'),
    ("", "empty"),
    ("proxy", "no port"),
    ("http://proxy", "no port"),
    ("proxy:0", "out of range"),
    ("proxy:65536", "out of range"),
    ("proxy:99999999999999999999", "out of range"),
    ("proxy:31a8", "not a number"),
    ("proxy:", "not a number"),
    (":3128", "no host"),
    ("socks5://proxy:1080", "unsupported scheme"),
    ("ftp://proxy:21", "unsupported scheme"),
    ("http://proxy:3128/path", "path"),
    ("http://fd00::10:3128", "without brackets"),
    ("http://[fd00::10:3128", "unclosed"),
    ("http://[nothex::zz]:3128", "invalid IPv6"),
    ("http://[fd00::10]", "no port"),
    ("http://300.1.1.1:3128", "invalid IPv4"),
    ("http://-proxy:3128", "invalid host name"),
    ("http://proxy_1:3128", "the character '_'"),
    ("http://a..b:3128", "invalid host name"),
    ("http://" + "a" * 64 + ".corp:3128", "invalid host name"),
    ("http://proxy:3128 ", "whitespace"),
    (" http://proxy:3128", "whitespace"),
    ("http://proxy:3128\n", "whitespace"),
    ("http://proxy:3128\x00", "control character"),
    ("http://proxy:3128;reboot", "shell metacharacter (;)"),
    ("http://proxy:3128$(reboot)", "shell metacharacter ($)"),
    ("http://proxy:3128`id`", "quote (`)"),
    ("http://'proxy':3128", "quote (')"),
    ('http://"proxy":3128', 'quote (")'),
    ("http://proxy:3128|sh", "shell metacharacter (|)"),
    ("http://proxy:3128&", "shell metacharacter (&)"),
    ("http://proxy:3128>x", "shell metacharacter (>)"),
    ("http://proxy:3128\\", "shell metacharacter (\\)"),
    ("http://pröxy:3128", "non-ASCII"),
    ("http://proxy:3128\u2028", "whitespace"),
    ("[1,2]", "must be an object"),
    ("{", "not valid JSON"),
    ('{"http_proxy": 3128}', "must be a string"),
    ('["http://proxy:3128"]', "must be an object"),
    ('{"http-proxy": "proxy:3128"}', "unknown key 'http-proxy'"),
    ('{"http_proxy": "proxy:3128", "HTTPS_PROXY": "proxy:3128"}', "unknown key 'HTTPS_PROXY'"),
    ('{"https_proxy": "proxy:3128"}', 'lacks "http_proxy"'),
    ('{"http_proxy": "proxy:3128", "http_proxy": "other:3128"}', "twice"),
    ('{"http_proxy": "proxy:3128", "no_proxy": ".corp"}', "must be a list"),
    ('{"http_proxy": "proxy:3128", "no_proxy": [1]}', "must be a string"),
    ('{"http_proxy": "proxy:3128", "no_proxy": ["*"]}', "every host"),
    ('{"http_proxy": "proxy:3128", "no_proxy": [""]}', "empty"),
    ('{"http_proxy": "proxy:3128", "no_proxy": ["a b"]}', "whitespace"),
    ('{"http_proxy": "proxy:3128", "no_proxy": ["x;reboot"]}', "shell metacharacter"),
    ('{"http_proxy": "proxy:3128", "no_proxy": ["10.0.0.0/33"]}', "not a valid CIDR"),
    ('{"http_proxy": "proxy:3128", "no_proxy": ["10.0.0.256"]}', "not a valid IP"),
    ('{"http_proxy": "proxy:3128", "no_proxy": ["-bad.corp"]}', "not a valid host name"),
    ('{"http_proxy": "proxy:3128", "no_proxy": ["*.corp"]}', "shell metacharacter (*)"),
    ('{"http_proxy": "proxy:3128\\n"}', "whitespace"),
    ("null", "no port"),
    ("{}", 'lacks "http_proxy"'),
    # Deep nesting fits in 4 KB and blew json's recursion limit (a RecursionError, not a one-line refusal).
    ("[" * 2000 + "]" * 2000, "nested too deeply"),
    ('{"http_proxy": "proxy:3128", "no_proxy": ' + "[" * 2000 + "]" * 2000 + "}", "nested too deeply"),
]


@pytest.mark.parametrize(("value", "fragment"), REFUSALS)
def test_refusals_are_one_line_and_say_what_is_wrong(value: str, fragment: str) -> None:
    with pytest.raises(ProxyValueError) as caught:
        parse_proxy_value(value)
    message = str(caught.value)
    assert "\n" not in message and "\r" not in message
    assert fragment in message
    assert "expected" in message or "allowed" in message or "give" in message or "list" in message


@pytest.mark.parametrize(
    "value",
    [
        "http://alice:s3cr3t-pw@proxy:3128",
        "alice:s3cr3t-pw@proxy:3128",
        "http://s3cr3t-pw@proxy:3128",
        '{"http_proxy": "http://alice:s3cr3t-pw@proxy:3128"}',
        '{"http_proxy": "http://alice:s3cr3t-pw\\u0040proxy:3128"}',
        '{"http_proxy": "proxy:3128", "https_proxy": "https://alice:s3cr3t-pw@proxy:443"}',
        "http://alice:s3cr3t pw@proxy:3128",
    ],
)
def test_credentials_are_refused_with_the_reason_and_never_echoed(value: str) -> None:
    with pytest.raises(ProxyValueError) as caught:
        parse_proxy_value(value)
    message = str(caught.value)
    assert "credentials" in message and "launch templates" in message and "IMDS" in message
    assert "s3cr3t" not in message and "alice" not in message


def test_size_limit() -> None:
    entries = [f"host{i}.corp.example" for i in range(300)]
    value = json.dumps({"http_proxy": "proxy:3128", "no_proxy": entries})
    assert len(value) > MAX_VALUE_BYTES
    with pytest.raises(ProxyValueError, match="longer than 4096 bytes"):
        parse_proxy_value(value)


def test_error_messages_never_contain_the_value() -> None:
    secretish = "http://topsecretproxyname.corp:3128;x"
    with pytest.raises(ProxyValueError) as caught:
        parse_proxy_value(secretish)
    assert "topsecret" not in str(caught.value)


@given(st.text(max_size=200))
def test_any_text_is_either_a_valid_config_or_a_one_line_refusal(text: str) -> None:
    try:
        config = parse_proxy_value(text)
    except ProxyValueError as exc:
        assert "\n" not in str(exc)
        return
    for value in (config.http_proxy, config.https_proxy, *config.no_proxy):
        assert all((c.isalnum() and c.isascii()) or c in ".-:/[]" for c in value)


@given(
    host=st.from_regex(r"[a-z][a-z0-9-]{0,20}[a-z0-9](\.[a-z][a-z0-9]{0,10}){0,3}", fullmatch=True),
    port=st.integers(1, 65535),
    scheme=st.sampled_from(["", "http://", "https://"]),
)
def test_valid_host_ports_round_trip(host: str, port: int, scheme: str) -> None:
    config = parse_proxy_value(f"{scheme}{host}:{port}")
    assert config.http_proxy == f"{scheme or 'http://'}{host}:{port}"
    assert parse_proxy_value(config.http_proxy) == config


def test_vpc_endpoints_defaults_to_true_and_can_be_turned_off() -> None:
    assert parse_proxy_value("proxy:3128").vpc_endpoints is True
    assert parse_proxy_value('{"http_proxy": "proxy:3128"}').vpc_endpoints is True
    off = parse_proxy_value('{"http_proxy": "proxy:3128", "vpc_endpoints": false}')
    assert off.vpc_endpoints is False
