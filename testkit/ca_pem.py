"""Test CA certificates with any field set (the `cryptography` package, a test-only dependency through moto)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

_KEY = ec.generate_private_key(ec.SECP256R1())


def make_cert(
    name: str = "Example Corp Inspection CA",
    *,
    ca: bool | None = True,
    key_usage_cert_sign: bool | None = True,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    key: Any = None,
) -> x509.Certificate:
    """A self-signed certificate; by default a CA valid from 10 days ago for a year."""
    now = datetime.now(UTC)
    private = key or _KEY
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - timedelta(days=10))
        .not_valid_after(not_after or now + timedelta(days=365))
    )
    if ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    if key_usage_cert_sign is not None:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=not key_usage_cert_sign,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=key_usage_cert_sign,
                crl_sign=key_usage_cert_sign,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    return builder.sign(private, hashes.SHA256())


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def ca_pem(name: str = "Example Corp Inspection CA", **kwargs: Any) -> str:
    """The PEM text of a fresh CA certificate."""
    return pem(make_cert(name, **kwargs))


def private_key_pem() -> str:
    return _KEY.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
