"""A self-signed certificate for trying TLS locally (``ferry certs dev``).

The certificate names localhost, 127.0.0.1 and ::1, is its own CA (so a client can trust it
directly: ``httpx.Client(verify="dev-cert.pem")``, ``curl --cacert dev-cert.pem``) and carries
the extensions strict X.509 checks ask for (key usage, key identifiers). It is for development
only: use a certificate from a real CA in production.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ferry.errors import ConfigError

if TYPE_CHECKING:
    from cryptography import x509

CERT_FILE = "dev-cert.pem"
KEY_FILE = "dev-key.pem"
DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True, slots=True)
class DevCertificate:
    certfile: Path
    keyfile: Path
    hosts: tuple[str, ...]
    not_after: dt.datetime
    sha256: str  # fingerprint of the certificate, hex


def make_dev_certificate(
    out: Path,
    *,
    hosts: tuple[str, ...] = DEFAULT_HOSTS,
    days: int = 365,
    overwrite: bool = False,
) -> DevCertificate:
    """Write ``dev-cert.pem`` and ``dev-key.pem`` (mode 0600) into ``out``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if days < 1:
        raise ConfigError("a certificate must be valid for at least one day", days=days)
    certfile, keyfile = out / CERT_FILE, out / KEY_FILE
    existing = [str(p) for p in (certfile, keyfile) if p.exists()]
    if existing and not overwrite:
        raise ConfigError(
            f"{', '.join(existing)} already exist; pass --force to replace them", files=existing
        )
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Ferry development"),
            x509.NameAttribute(NameOID.COMMON_NAME, hosts[0]),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    not_after = now + dt.timedelta(days=days)
    public = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(_names(hosts)), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    out.mkdir(parents=True, exist_ok=True)
    _write(
        keyfile,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        0o600,
    )
    _write(certfile, certificate.public_bytes(serialization.Encoding.PEM), 0o644)
    return DevCertificate(
        certfile=certfile,
        keyfile=keyfile,
        hosts=hosts,
        not_after=not_after,
        sha256=certificate.fingerprint(hashes.SHA256()).hex(),
    )


def _names(hosts: tuple[str, ...]) -> list[x509.GeneralName]:
    from cryptography import x509

    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write through a temporary file so a crash never leaves half a key."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
