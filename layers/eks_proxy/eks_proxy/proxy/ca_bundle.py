"""The CA bundle of a TLS-inspecting proxy: PEM certificates the nodes must trust, validated strictly.

A proxy that inspects TLS re-signs every site's certificate with a corporate CA; nodes that do not trust that CA
fail every pull with ``x509: certificate signed by unknown authority``. The proxy value names an SSM parameter
holding the bundle (``"ca_bundle": "/eks-proxy/ca-bundle"``); :func:`parse_ca_bundle` turns the parameter's text
into a :class:`CaBundle`, or refuses it with one line that never repeats the text.

Accepted: one or more ``-----BEGIN CERTIFICATE-----`` blocks, text between them ignored (``openssl x509 -text``
output, ``# comments``), at most :data:`MAX_BUNDLE_BYTES` bytes (SSM's advanced-tier value limit; a standard
parameter holds 4,096, about three typical CA certificates). Every block must be an X.509 v3 certificate with
``basicConstraints`` ``CA:TRUE`` (and, when it has ``keyUsage``, ``keyCertSign``) that has not expired. Refused:
any private key anywhere in the text (never echoed, never stored: the whole value is rejected), other PEM blocks
(CRLs, public keys, ``TRUSTED CERTIFICATE``), unterminated blocks, bad base64, DER that is not a certificate, a
server's (leaf) certificate. A certificate expiring within :data:`WARN_DAYS` days is accepted with a warning.

What nodes receive is the normalized bundle (:attr:`CaBundle.pem`: the certificate blocks only, 64-column base64,
duplicates dropped), so comments and the surrounding text never cost user-data bytes or change the fingerprint.

The certificate is read with a minimal DER reader (about 150 lines, stdlib only) instead of the ``cryptography``
package: the checks need four fields (validity, basicConstraints, keyUsage, the subject's name), and the layer
stays small (``cryptography`` is a compiled wheel of several MB). Signatures are not verified here: a trust anchor
is trusted because the operator put it there; the preflight then proves the proxy's chain verifies against it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from eks_proxy.proxy.value import ProxyValueError

MAX_BUNDLE_BYTES = 8192  # SSM advanced parameter value limit (standard: 4,096)
WARN_DAYS = 30

_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]{1,40})-----(.*?)-----END ([A-Z0-9 ]{1,40})-----", re.DOTALL)
_BASE64_BODY = re.compile(r"[A-Za-z0-9+/=\s]*")
_BARE_BASE64 = re.compile(r"[A-Za-z0-9+/]{40,}")  # text between blocks: comments, `openssl x509 -text` output
_EXPECTED = (
    "expected one or more PEM blocks -----BEGIN CERTIFICATE----- ... -----END CERTIFICATE----- of CA certificates"
)

_OID_BASIC_CONSTRAINTS = bytes([0x55, 0x1D, 0x13])  # 2.5.29.19
_OID_KEY_USAGE = bytes([0x55, 0x1D, 0x0F])  # 2.5.29.15
_OID_COMMON_NAME = bytes([0x55, 0x04, 0x03])  # 2.5.4.3
_OID_ORGANIZATION = bytes([0x55, 0x04, 0x0A])  # 2.5.4.10


class CaBundleError(ProxyValueError):
    """The CA bundle is not acceptable; one line, never containing the bundle's text."""


@dataclass(frozen=True)
class CaCertificate:
    """One CA certificate of the bundle: what operators recognise it by, and its normalized PEM block."""

    subject: str  # "CN=Example Corp Root CA" (printable, at most 64 characters) or "O=..."
    not_before: datetime
    not_after: datetime
    sha256: str  # hex SHA-256 of the DER (what `openssl x509 -fingerprint -sha256` prints, without colons)
    pem: str

    def describe(self) -> str:
        return f"{self.subject} (sha256 {self.sha256[:16]}, valid until {self.not_after:%Y-%m-%d})"


@dataclass(frozen=True)
class CaBundle:
    """A validated bundle; ``pem`` is what the nodes get, ``digest`` what the fingerprint covers."""

    certificates: tuple[CaCertificate, ...]
    warnings: tuple[str, ...] = ()

    @property
    def pem(self) -> str:
        return "".join(cert.pem for cert in self.certificates)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.pem.encode("ascii")).hexdigest()

    def describe(self) -> str:
        """One line for logs and reports: the certificates by subject, short fingerprint and expiry."""
        return f"{len(self.certificates)} CA certificate(s): " + "; ".join(c.describe() for c in self.certificates)


def parse_ca_bundle(text: str | bytes, *, now: datetime | None = None, source: str = "CA bundle") -> CaBundle:
    """Validate ``text`` (the parameter's value or a file's content) into a :class:`CaBundle` (see module doc).

    ``source`` names the bundle in messages (e.g. the parameter name); ``now`` is for tests.
    """
    now = now or datetime.now(UTC)
    if isinstance(text, bytes | bytearray):
        if len(text) > MAX_BUNDLE_BYTES:
            raise CaBundleError(_too_big(source, len(text)))
        try:
            text = bytes(text).decode("ascii")
        except UnicodeDecodeError:
            raise CaBundleError(f"{source} is not ASCII text; {_EXPECTED}") from None
    if not isinstance(text, str):
        raise CaBundleError(f"{source} must be text, got {type(text).__name__}")
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_BUNDLE_BYTES:
        raise CaBundleError(_too_big(source, size))
    if "PRIVATE KEY" in text.upper():
        # Checked first, on the whole text: no later message may depend on anything near the key.
        raise CaBundleError(
            f"{source} contains a private key (a PRIVATE KEY block): refused, nothing was used or stored; a CA "
            "bundle holds only certificates (remove the key from it, and treat the key as exposed)"
        )
    certificates: list[CaCertificate] = []
    warnings: list[str] = []
    seen: set[str] = set()
    blocks = list(_BLOCK.finditer(text))
    outside = _BLOCK.sub("", text)
    if "-----BEGIN" in outside or "-----END" in outside:
        raise CaBundleError(f"{source} has a PEM block without its matching END line; {_EXPECTED}")
    if _BARE_BASE64.search(outside):
        raise CaBundleError(
            f"{source} has base64 data outside a PEM block (a key or certificate without its BEGIN/END lines?); "
            "refused, nothing was used or stored"
        )
    if not blocks:
        raise CaBundleError(f"{source} holds no PEM block; {_EXPECTED}")
    for number, block in enumerate(blocks, start=1):
        label, body, end_label = block.group(1), block.group(2), block.group(3)
        where = f"{source}, block {number}"
        if label != end_label:
            raise CaBundleError(f"{where} begins as {label!r} and ends as {end_label!r}; {_EXPECTED}")
        if label != "CERTIFICATE":
            raise CaBundleError(f"{where} is a {label!r} block; only CERTIFICATE blocks are accepted")
        der = _decode_base64(body, where)
        cert = _certificate(der, where)
        if cert.sha256 in seen:
            continue
        seen.add(cert.sha256)
        if cert.not_after <= now:
            raise CaBundleError(f"{where}: {cert.subject} expired on {cert.not_after:%Y-%m-%d}; replace it")
        if cert.not_after - now <= timedelta(days=WARN_DAYS):
            warnings.append(f"{cert.subject} expires on {cert.not_after:%Y-%m-%d} (within {WARN_DAYS} days)")
        if cert.not_before > now:
            warnings.append(f"{cert.subject} is not valid before {cert.not_before:%Y-%m-%d %H:%M} UTC")
        certificates.append(cert)
    return CaBundle(tuple(certificates), tuple(warnings))


def read_ca_bundle_file(path: str) -> CaBundle:
    """A PEM file given on the command line (``--ca-bundle FILE``), validated like the parameter's value."""
    try:
        with open(path, "rb") as file:
            content = file.read(MAX_BUNDLE_BYTES + 1)
    except OSError as exc:
        raise CaBundleError(f"cannot read the CA bundle file {path}: {exc.strerror or exc}") from None
    return parse_ca_bundle(content, source=f"CA bundle file {path}")


def certificates_in(text: str) -> tuple[CaCertificate, ...]:
    """The CA certificates of PEM text we wrote earlier, leniently (expired or odd ones are still listed, for
    reports such as ``eks-proxy plan``'s; blocks that do not parse are left out)."""
    found: list[CaCertificate] = []
    for block in _BLOCK.finditer(text):
        if block.group(1) != "CERTIFICATE" or block.group(3) != "CERTIFICATE":
            continue
        try:
            found.append(_certificate(_decode_base64(block.group(2), "block"), "block"))
        except CaBundleError:
            continue
    return tuple(found)


def resolve_ca_bundle(name: str, read: Callable[[str], str], *, allowed: str | None = None) -> CaBundle:
    """Read the bundle the proxy value names with ``read(name) -> text`` and validate it.

    ``allowed`` is the one parameter this installation may read (the stack's CaBundleParameterName): another name
    is refused before any read. A missing parameter (``read`` raising LookupError) is a CaBundleError too: the
    configuration is incomplete, and no node may get a proxy without the CA it needs.
    """
    if allowed is not None and name != allowed:
        raise CaBundleError(
            f'the proxy value\'s "ca_bundle" names {name}, but this installation reads only {allowed} '
            "(stack parameter CaBundleParameterName); put the bundle there"
        )
    try:
        content = read(name)
    except LookupError:
        raise CaBundleError(
            f'the CA bundle parameter {name} named by the proxy value\'s "ca_bundle" does not exist; create it '
            'with the PEM certificates, or remove "ca_bundle" from the value'
        ) from None
    return parse_ca_bundle(content, source=f"CA bundle {name}")


def _too_big(source: str, size: int) -> str:
    return (
        f"{source} is {size} bytes, over the limit of {MAX_BUNDLE_BYTES} (an SSM advanced parameter; a standard "
        "one holds 4,096); keep only the CA certificates the proxy signs with"
    )


def _decode_base64(body: str, where: str) -> bytes:
    if not _BASE64_BODY.fullmatch(body):
        raise CaBundleError(f"{where} holds characters that are not base64; {_EXPECTED}")
    compact = "".join(body.split())
    try:
        der = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise CaBundleError(f"{where} is not valid base64; {_EXPECTED}") from None
    if not der:
        raise CaBundleError(f"{where} is empty; {_EXPECTED}")
    return der


def _certificate(der: bytes, where: str) -> CaCertificate:
    try:
        fields = _read_certificate(der)
    except _Malformed as exc:
        raise CaBundleError(f"{where} is not an X.509 certificate ({exc}); {_EXPECTED}") from None
    subject = fields.subject or "(a certificate without a common name)"
    if not fields.is_ca:
        raise CaBundleError(
            f"{where}: {subject} is not a CA certificate (no basicConstraints CA:TRUE), e.g. a server's "
            "certificate; give the CA certificate that signs the proxy's certificates"
        )
    if fields.key_usage_cert_sign is False:
        raise CaBundleError(f"{where}: {subject} has keyUsage without keyCertSign: it cannot sign certificates")
    b64 = base64.b64encode(der).decode("ascii")
    lines = "\n".join(b64[i : i + 64] for i in range(0, len(b64), 64))
    return CaCertificate(
        subject=subject,
        not_before=fields.not_before,
        not_after=fields.not_after,
        sha256=hashlib.sha256(der).hexdigest(),
        pem=f"-----BEGIN CERTIFICATE-----\n{lines}\n-----END CERTIFICATE-----\n",
    )


# --- a minimal DER reader: exactly what an X.509 certificate's fields need -------------------------------------


class _Malformed(ValueError):
    """The DER is not a well-formed certificate (the message names the field, never its bytes)."""


@dataclass(frozen=True)
class _Fields:
    subject: str
    not_before: datetime
    not_after: datetime
    is_ca: bool
    key_usage_cert_sign: bool | None  # None: no keyUsage extension


@dataclass(frozen=True)
class _Tlv:
    tag: int
    start: int  # first content byte
    end: int  # one past the last content byte


def _tlv(der: bytes, pos: int, end: int, what: str) -> _Tlv:
    """The DER element at ``pos`` (definite lengths only, contained in ``[pos, end)``)."""
    if pos + 2 > end:
        raise _Malformed(f"{what} is truncated")
    tag, first = der[pos], der[pos + 1]
    if tag & 0x1F == 0x1F:
        raise _Malformed(f"{what} has a multi-byte tag")
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 3 or pos + count > end:
            raise _Malformed(f"{what} has an invalid length")
        length = int.from_bytes(der[pos : pos + count], "big")
        pos += count
    if pos + length > end:
        raise _Malformed(f"{what} is truncated")
    return _Tlv(tag, pos, pos + length)


def _expect(der: bytes, pos: int, end: int, tag: int, what: str) -> _Tlv:
    element = _tlv(der, pos, end, what)
    if element.tag != tag:
        raise _Malformed(f"{what} has an unexpected type")
    return element


def _children(der: bytes, parent: _Tlv, what: str) -> list[_Tlv]:
    items, pos = [], parent.start
    while pos < parent.end:
        item = _tlv(der, pos, parent.end, what)
        items.append(item)
        pos = item.end
    return items


def _read_certificate(der: bytes) -> _Fields:
    cert = _expect(der, 0, len(der), 0x30, "certificate")
    if cert.end != len(der):
        raise _Malformed("data follows the certificate")
    parts = _children(der, cert, "certificate")
    if len(parts) != 3 or parts[0].tag != 0x30 or parts[1].tag != 0x30 or parts[2].tag != 0x03:
        raise _Malformed("certificate is not tbsCertificate, signatureAlgorithm, signature")
    tbs = _children(der, parts[0], "tbsCertificate")
    index = 0
    version = 1
    if tbs and tbs[0].tag == 0xA0:
        inner = _expect(der, tbs[0].start, tbs[0].end, 0x02, "version")
        version = int.from_bytes(der[inner.start : inner.end], "big") + 1
        index = 1
    expected = ((0x02, "serialNumber"), (0x30, "signature"), (0x30, "issuer"), (0x30, "validity"), (0x30, "subject"))
    if len(tbs) < index + len(expected) + 1:
        raise _Malformed("tbsCertificate lacks fields")
    for offset, (tag, what) in enumerate(expected):
        if tbs[index + offset].tag != tag:
            raise _Malformed(f"{what} has an unexpected type")
    validity, subject = tbs[index + 3], tbs[index + 4]
    times = _children(der, validity, "validity")
    if len(times) != 2:
        raise _Malformed("validity is not notBefore, notAfter")
    not_before, not_after = (_time(der, t) for t in times)
    if tbs[index + 5].tag != 0x30:
        raise _Malformed("subjectPublicKeyInfo has an unexpected type")
    extensions = [t for t in tbs[index + 6 :] if t.tag == 0xA3]
    is_ca, cert_sign = False, None
    if extensions:
        if version != 3:
            raise _Malformed("extensions in a certificate that is not version 3")
        seen: set[bytes] = set()
        listed = _expect(der, extensions[0].start, extensions[0].end, 0x30, "extensions")
        for extension in _children(der, listed, "extension"):
            oid, value = _extension(der, extension)
            if oid in seen:
                raise _Malformed("an extension appears twice")
            seen.add(oid)
            if oid == _OID_BASIC_CONSTRAINTS:
                is_ca = _basic_constraints_ca(der, value)
            elif oid == _OID_KEY_USAGE:
                cert_sign = _key_usage_cert_sign(der, value)
    return _Fields(_subject(der, subject), not_before, not_after, is_ca, cert_sign)


def _extension(der: bytes, extension: _Tlv) -> tuple[bytes, _Tlv]:
    if extension.tag != 0x30:
        raise _Malformed("extension has an unexpected type")
    items = _children(der, extension, "extension")
    if not 2 <= len(items) <= 3 or items[0].tag != 0x06 or items[-1].tag != 0x04:
        raise _Malformed("extension is not extnID, critical, extnValue")
    if len(items) == 3 and items[1].tag != 0x01:
        raise _Malformed("extension's critical flag is not a BOOLEAN")
    return der[items[0].start : items[0].end], items[-1]


def _basic_constraints_ca(der: bytes, value: _Tlv) -> bool:
    constraints = _expect(der, value.start, value.end, 0x30, "basicConstraints")
    if constraints.end != value.end:
        raise _Malformed("basicConstraints has trailing data")
    items = _children(der, constraints, "basicConstraints")
    if items and items[0].tag == 0x01:
        return der[items[0].start : items[0].end] not in (b"", b"\x00")
    return False


def _key_usage_cert_sign(der: bytes, value: _Tlv) -> bool:
    bits = _expect(der, value.start, value.end, 0x03, "keyUsage")
    content = der[bits.start : bits.end]
    if not content:
        raise _Malformed("keyUsage is empty")
    return len(content) > 1 and bool(content[1] & 0x04)  # bit 5, keyCertSign


def _time(der: bytes, element: _Tlv) -> datetime:
    try:
        text = der[element.start : element.end].decode("ascii")
    except UnicodeDecodeError:
        raise _Malformed("validity time is not ASCII") from None
    if element.tag == 0x17 and re.fullmatch(r"\d{12}Z", text):  # UTCTime YYMMDDHHMMSSZ
        year = int(text[:2])
        text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
    elif not (element.tag == 0x18 and re.fullmatch(r"\d{14}Z", text)):  # GeneralizedTime YYYYMMDDHHMMSSZ
        raise _Malformed("validity time is not UTCTime or GeneralizedTime in UTC")
    try:
        return datetime.strptime(text, "%Y%m%d%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise _Malformed("validity time is not a valid date") from None


def _subject(der: bytes, name: _Tlv) -> str:
    """``CN=...`` (else ``O=...``) of a Name, printable characters only, at most 64."""
    found: dict[bytes, str] = {}
    for rdn in _children(der, name, "subject"):
        if rdn.tag != 0x31:
            raise _Malformed("subject is not a sequence of sets")
        for attribute in _children(der, rdn, "subject attribute"):
            items = _children(der, attribute, "subject attribute") if attribute.tag == 0x30 else []
            if len(items) != 2 or items[0].tag != 0x06:
                raise _Malformed("subject attribute is not type, value")
            oid = der[items[0].start : items[0].end]
            if oid in (_OID_COMMON_NAME, _OID_ORGANIZATION) and oid not in found:
                found[oid] = _string(der[items[1].start : items[1].end], items[1].tag)
    for oid, prefix in ((_OID_COMMON_NAME, "CN="), (_OID_ORGANIZATION, "O=")):
        if found.get(oid):
            return prefix + found[oid]
    return ""


def _string(raw: bytes, tag: int) -> str:
    encoding = {0x1E: "utf-16-be", 0x1C: "utf-32-be"}.get(tag, "utf-8")
    text = raw.decode(encoding, "replace")
    shown = "".join(char if char.isprintable() else "?" for char in text)
    return shown[:61] + "..." if len(shown) > 64 else shown
