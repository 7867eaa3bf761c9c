"""``make_dev_certificate``: a self-signed pair for localhost that TLS libraries accept."""

from __future__ import annotations

import ipaddress
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509

from ferry.errors import ConfigError
from ferry.security.certs import make_dev_certificate


def test_dev_certificate_names_localhost_and_loads(tmp_path: Path) -> None:
    made = make_dev_certificate(tmp_path / "certs", days=7)
    cert = x509.load_pem_x509_certificate(made.certfile.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert names.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    assert cert.issuer == cert.subject  # self-signed: a client trusts this file directly
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days == 7
    assert stat.S_IMODE(made.keyfile.stat().st_mode) == 0o600
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(made.certfile, made.keyfile)  # the key matches the certificate
    client = ssl.create_default_context(cafile=str(made.certfile))
    assert client.get_ca_certs()[0]["subject"]


def test_existing_files_are_kept_unless_forced(tmp_path: Path) -> None:
    first = make_dev_certificate(tmp_path)
    with pytest.raises(ConfigError, match="--force"):
        make_dev_certificate(tmp_path)
    second = make_dev_certificate(tmp_path, hosts=("model.internal",), overwrite=True)
    assert second.sha256 != first.sha256
    assert not list(tmp_path.glob(".*.tmp"))
