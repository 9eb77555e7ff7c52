"""The CA bundle of a TLS-inspecting proxy: what is accepted, and every hostile input refused in one line.

Certificates are made with the `cryptography` package (a test-only dependency, through moto) so every field can be
set; the reader under test is the package's own small DER reader, checked against `cryptography`'s parse.
"""

from __future__ import annotations

import base64
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from eks_proxy.proxy.ca_bundle import (
    MAX_BUNDLE_BYTES,
    CaBundleError,
    parse_ca_bundle,
    resolve_ca_bundle,
)
from eks_proxy.proxy.value import ProxyValueError, parse_proxy_value
from hypothesis import given, settings
from hypothesis import strategies as st

import testkit.ca_pem as ca_pem_module
from testkit.ca_pem import pem

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
_KEY = ec.generate_private_key(ec.SECP256R1())


def make_cert(name: str = "Example Corp Inspection CA", **kwargs: Any) -> x509.Certificate:
    kwargs.setdefault("not_before", NOW - timedelta(days=10))
    kwargs.setdefault("not_after", NOW + timedelta(days=365))
    kwargs.setdefault("key", _KEY)
    return ca_pem_module.make_cert(name, **kwargs)


def test_one_ca_is_accepted_and_described() -> None:
    cert = make_cert()
    bundle = parse_ca_bundle(pem(cert), now=NOW)
    (only,) = bundle.certificates
    assert only.subject == "CN=Example Corp Inspection CA"
    assert only.not_after == cert.not_valid_after_utc
    assert only.not_before == cert.not_valid_before_utc
    assert only.sha256 == cert.fingerprint(hashes.SHA256()).hex()
    assert bundle.pem == pem(cert)  # cryptography writes 64-column PEM, as we normalize to
    assert bundle.warnings == ()
    assert "CN=Example Corp Inspection CA" in bundle.describe() and "valid until 2027-12-01" in bundle.describe()


def test_typical_rsa_ca_made_by_openssl_is_accepted(tmp_path: Path) -> None:
    subprocess.run(
        ["openssl", "req", "-x509", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
         "-days", "3650", "-subj", "/C=DE/O=Example Bank AG/OU=Network Security/CN=Example Bank TLS Inspection CA",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        cwd=tmp_path, check=True, capture_output=True,
    )  # fmt: skip
    text = (tmp_path / "ca.crt").read_text()
    bundle = parse_ca_bundle(text)
    assert bundle.certificates[0].subject == "CN=Example Bank TLS Inspection CA"
    assert bundle.pem == text


def test_several_certificates_comments_and_text_output_between_them() -> None:
    first, second = make_cert("Root A"), make_cert("Root B", key=rsa.generate_private_key(65537, 2048))
    text = f"# corporate roots\nsubject=CN = Root A\n{pem(first)}\nBag Attributes: <No Attributes>\r\n{pem(second)}"
    bundle = parse_ca_bundle(text.replace("\n", "\r\n"), now=NOW)
    assert [c.subject for c in bundle.certificates] == ["CN=Root A", "CN=Root B"]
    assert bundle.pem == pem(first) + pem(second)  # only the blocks, LF, what the nodes receive


def test_duplicates_are_dropped_so_the_digest_is_stable() -> None:
    cert = pem(make_cert())
    assert parse_ca_bundle(cert + cert, now=NOW).pem == cert
    assert parse_ca_bundle(cert + cert, now=NOW).digest == parse_ca_bundle(cert, now=NOW).digest


def test_rewrapped_base64_is_the_same_bundle() -> None:
    cert = pem(make_cert())
    body = "".join(cert.splitlines()[1:-1])
    one_line = f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----"
    assert parse_ca_bundle(one_line, now=NOW).pem == cert


def test_expiring_soon_is_a_warning_not_an_error() -> None:
    bundle = parse_ca_bundle(pem(make_cert(not_after=NOW + timedelta(days=12))), now=NOW)
    assert bundle.warnings == ("CN=Example Corp Inspection CA expires on 2026-12-13 (within 30 days)",)


def test_accepted_as_bytes_and_from_a_utc_time_before_2000() -> None:
    old = make_cert(not_before=datetime(1999, 1, 1, tzinfo=UTC), not_after=datetime(2049, 12, 31, tzinfo=UTC))
    bundle = parse_ca_bundle(pem(old).encode(), now=NOW)
    assert bundle.certificates[0].not_before.year == 1999
    late = make_cert(not_after=datetime(2060, 1, 1, tzinfo=UTC))  # GeneralizedTime from 2050 on
    assert parse_ca_bundle(pem(late), now=NOW).certificates[0].not_after.year == 2060


# --- refused, one line, never the content ---------------------------------------------------------------------

KEY_PEM = _KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
RSA_KEY_PEM = (
    rsa.generate_private_key(65537, 1024)
    .private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    .decode()
)


def _refused(text: str | bytes, *fragments: str) -> str:
    with pytest.raises(CaBundleError) as caught:
        parse_ca_bundle(text, now=NOW)
    message = str(caught.value)
    assert "\n" not in message and len(message) < 400
    assert isinstance(caught.value, ProxyValueError)  # every reader of the value already handles it
    for fragment in fragments:
        assert fragment in message, message
    return message


@pytest.mark.parametrize("key", [KEY_PEM, RSA_KEY_PEM], ids=["pkcs8", "rsa"])
@pytest.mark.parametrize("where", ["alone", "after", "before", "inside"])
def test_a_private_key_anywhere_is_refused_without_echoing_it(key: str, where: str) -> None:
    cert = pem(make_cert())
    text = {
        "alone": key,
        "after": cert + key,
        "before": key + cert,
        "inside": cert.replace("-----END CERTIFICATE-----", key + "-----END CERTIFICATE-----"),
    }[where]
    message = _refused(text, "private key", "refused")
    body_lines = [line for line in key.splitlines() if not line.startswith("-----")]
    assert not any(line[:16] in message for line in body_lines)


def test_a_key_body_without_its_headers_is_refused() -> None:
    body = "\n".join(line for line in KEY_PEM.splitlines() if not line.startswith("-----"))
    message = _refused(pem(make_cert()) + body, "outside a PEM block")
    assert body.splitlines()[0][:16] not in message


def test_a_leaf_certificate_is_refused() -> None:
    _refused(pem(make_cert("registry.example.test", ca=False, key_usage_cert_sign=False)), "not a CA certificate")
    _refused(pem(make_cert("no constraints", ca=None)), "not a CA certificate", "CN=no constraints")


def test_a_ca_whose_key_usage_cannot_sign_certificates_is_refused() -> None:
    _refused(pem(make_cert(key_usage_cert_sign=False)), "keyCertSign")


def test_an_expired_ca_is_refused() -> None:
    _refused(pem(make_cert(not_after=NOW - timedelta(days=1))), "expired on 2026-11-30")


def test_one_bad_block_refuses_the_whole_bundle() -> None:
    good, expired = pem(make_cert("good")), pem(make_cert("old", not_after=NOW - timedelta(days=1)))
    _refused(good + expired, "block 2", "CN=old", "expired")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "no PEM block"),
        ("just some text", "no PEM block"),
        ("http://10.0.0.10:3128", "no PEM block"),
        ("-----BEGIN CERTIFICATE-----\nMIIB\n", "without its matching END"),
        ("-----BEGIN CERTIFICATE-----\n!!!notbase64!!!\n-----END CERTIFICATE-----\n", "not base64"),
        ("-----BEGIN CERTIFICATE-----\nMIIBx\n-----END CERTIFICATE-----\n", "not valid base64"),
        ("-----BEGIN CERTIFICATE-----\n\n-----END CERTIFICATE-----\n", "is empty"),
        ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "not an X.509 certificate"),
        ("-----BEGIN CERTIFICATE-----\nMIIBCgKCAQEA\n-----END CERTIFICATE-----\n", "not an X.509 certificate"),
        ("-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n", "'X509 CRL' block"),
        ("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "'PUBLIC KEY' block"),
        ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END PUBLIC KEY-----\n", "ends as"),
        ("\x00\x01\x02", "no PEM block"),
    ],
)
def test_not_pem_or_not_a_certificate(text: str, fragment: str) -> None:
    _refused(text, fragment)


def test_garbage_der_inside_a_valid_block_is_refused() -> None:
    der = make_cert().public_bytes(serialization.Encoding.DER)
    for broken in (der[:-1], der + b"\x00", der[:40], b"\x30\x84\xff\xff\xff\xff" + der[6:], b"\x30\x80" + der[2:]):
        block = base64.b64encode(broken).decode()
        _refused(f"-----BEGIN CERTIFICATE-----\n{block}\n-----END CERTIFICATE-----\n", "not an X.509 certificate")


def test_huge_input_is_refused_before_parsing() -> None:
    cert = pem(make_cert())
    huge = cert * (MAX_BUNDLE_BYTES // len(cert) + 1)
    _refused(huge, f"over the limit of {MAX_BUNDLE_BYTES}")
    _refused(b"A" * 10_000_000, "over the limit")


def test_non_ascii_bytes_are_refused() -> None:
    _refused("é".encode("latin-1") + pem(make_cert()).encode(), "not ASCII")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_any_der_in_a_block_is_refused_or_parsed_never_crashes(der: bytes) -> None:
    block = base64.b64encode(der).decode()
    try:
        parse_ca_bundle(f"-----BEGIN CERTIFICATE-----\n{block}\n-----END CERTIFICATE-----\n", now=NOW)
    except CaBundleError as error:
        assert "\n" not in str(error)


_DER = make_cert().public_bytes(serialization.Encoding.DER)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_certificates_are_refused_or_parsed_never_crash(data: st.DataObject) -> None:
    der = bytearray(_DER)
    for _ in range(data.draw(st.integers(1, 4))):
        der[data.draw(st.integers(0, len(der) - 1))] = data.draw(st.integers(0, 255))
    block = base64.b64encode(bytes(der)).decode()
    try:
        parse_ca_bundle(f"-----BEGIN CERTIFICATE-----\n{block}\n-----END CERTIFICATE-----\n", now=NOW)
    except CaBundleError as error:
        assert "\n" not in str(error)


# --- the proxy value names it; readers resolve it -----------------------------------------------------------------


def test_the_value_names_the_bundle_parameter() -> None:
    config = parse_proxy_value('{"http_proxy": "10.0.0.10:3128", "ca_bundle": "/eks-proxy/ca-bundle"}')
    assert config.ca_bundle_parameter == "/eks-proxy/ca-bundle"
    assert config.needs_ca_bundle
    bundle = parse_ca_bundle(pem(make_cert()), now=NOW)
    attached = config.with_ca_bundle(bundle)
    assert not attached.needs_ca_bundle and attached.ca_bundle == bundle
    assert parse_proxy_value("10.0.0.10:3128").ca_bundle_parameter is None


@pytest.mark.parametrize(
    "name", ['"ca-bundle"', '"/a b"', '"/x;rm"', "7", '""', "null", '["/x"]', '"/' + "a" * 1011 + '"']
)
def test_a_bad_bundle_name_in_the_value_is_refused(name: str) -> None:
    if name == "null":
        assert parse_proxy_value(f'{{"http_proxy": "p:1", "ca_bundle": {name}}}').ca_bundle_parameter is None
        return
    with pytest.raises(ProxyValueError, match='"ca_bundle" must name an SSM parameter'):
        parse_proxy_value(f'{{"http_proxy": "p:1", "ca_bundle": {name}}}')


def test_resolve_reads_the_named_parameter_and_refuses_others_and_missing_ones() -> None:
    text = pem(make_cert())
    reads: list[str] = []

    def read(name: str) -> str:
        reads.append(name)
        if name == "/gone":
            raise LookupError(name)
        return text

    assert resolve_ca_bundle("/eks-proxy/ca-bundle", read, allowed="/eks-proxy/ca-bundle").pem == text
    with pytest.raises(CaBundleError, match="reads only /eks-proxy/ca-bundle"):
        resolve_ca_bundle("/other", read, allowed="/eks-proxy/ca-bundle")
    with pytest.raises(CaBundleError, match=r"/gone .* does not exist"):
        resolve_ca_bundle("/gone", read)
    assert reads == ["/eks-proxy/ca-bundle", "/gone"]  # the other name was never read


def test_the_fingerprint_covers_the_bundle_content_and_refuses_an_unread_one() -> None:
    from eks_proxy.proxy.no_proxy import NodeContext
    from eks_proxy.userdata.merge import UserDataError, desired_fingerprint
    from eks_proxy.userdata.node_os import NodeOS

    context = NodeContext(region="eu-west-1")
    plain = parse_proxy_value("10.0.0.10:3128")
    named = parse_proxy_value('{"http_proxy": "10.0.0.10:3128", "ca_bundle": "/eks-proxy/ca-bundle"}')
    one = parse_ca_bundle(pem(make_cert("CA one")), now=NOW)
    two = parse_ca_bundle(pem(make_cert("CA two")), now=NOW)
    prints = {
        desired_fingerprint(plain, context, NodeOS.AL2023),
        desired_fingerprint(named.with_ca_bundle(one), context, NodeOS.AL2023),
        desired_fingerprint(named.with_ca_bundle(two), context, NodeOS.AL2023),
    }
    assert len(prints) == 3
    # The parameter's name is not in it (only the content): moving the bundle to another name rolls nothing.
    moved = parse_proxy_value('{"http_proxy": "10.0.0.10:3128", "ca_bundle": "/corp/ca"}').with_ca_bundle(one)
    assert desired_fingerprint(moved, context, NodeOS.AL2023) == desired_fingerprint(
        named.with_ca_bundle(one), context, NodeOS.AL2023
    )
    with pytest.raises(UserDataError, match="certificates were not read"):
        desired_fingerprint(named, context, NodeOS.AL2023)
