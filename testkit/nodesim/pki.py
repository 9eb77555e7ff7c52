"""A throw-away certificate authority and server certificates, made with the openssl CLI (EC P-256: instant).

Example::

    ca = make_ca(tmp / "pki")                                   # tmp/pki/ca.crt, ca.key, trust/ca.crt
    cert = issue_cert(ca, tmp / "pki", ["registry.example.test", "127.0.0.1"])
    cert.cert, cert.key                                         # tmp/pki/server.crt, server.key
    skopeo ... --src-cert-dir {ca.trust_dir}                    # a directory holding ONLY ca.crt
"""

from __future__ import annotations

import ipaddress
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CertificateAuthority:
    cert: Path  # ca.crt (PEM)
    key: Path  # ca.key (PEM)
    trust_dir: Path  # holds only ca.crt: skopeo/containers treat a *.key in a cert dir as a client key

    @property
    def pem(self) -> str:
        return self.cert.read_text()


@dataclass(frozen=True)
class ServerCert:
    cert: Path  # server.crt (PEM)
    key: Path  # server.key (PEM, unencrypted)
    ca: Path  # the issuing CA's certificate
    hosts: tuple[str, ...]


def _openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {done.stderr.strip()}")


def _san(hosts: Sequence[str]) -> str:
    entries = []
    for host in hosts:
        try:
            ipaddress.ip_address(host)
            entries.append(f"IP:{host}")
        except ValueError:
            entries.append(f"DNS:{host}")
    return ",".join(entries)


def make_ca(directory: Path, name: str = "eks-proxy nodesim test CA") -> CertificateAuthority:
    """Create ``directory``/ca.crt and ca.key (valid 2 days) plus ``directory``/trust/ca.crt."""
    directory.mkdir(parents=True, exist_ok=True)
    _openssl(
        "req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    trust = directory / "trust"
    trust.mkdir(exist_ok=True)
    (trust / "ca.crt").write_bytes((directory / "ca.crt").read_bytes())
    return CertificateAuthority(cert=directory / "ca.crt", key=directory / "ca.key", trust_dir=trust)


def issue_cert(ca: CertificateAuthority, directory: Path, hosts: Sequence[str], name: str = "server") -> ServerCert:
    """Issue ``directory``/<name>.crt and <name>.key for ``hosts`` (DNS names and/or IP addresses as SANs)."""
    if not hosts:
        raise ValueError("issue_cert needs at least one host name or IP address")
    directory.mkdir(parents=True, exist_ok=True)
    crt, key, csr, ext = (directory / f"{name}.{s}" for s in ("crt", "key", "csr", "ext"))
    ext.write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        f"subjectAltName={_san(hosts)}\n"
    )
    _openssl(
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", key.name, "-out", csr.name, "-subj", f"/CN={hosts[0]}",
        cwd=directory,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", csr.name, "-CA", str(ca.cert), "-CAkey", str(ca.key), "-CAcreateserial",
        "-out", crt.name, "-days", "2", "-extfile", ext.name,
        cwd=directory,
    )  # fmt: skip
    csr.unlink()
    ext.unlink()
    return ServerCert(cert=crt, key=key, ca=ca.cert, hosts=tuple(hosts))
