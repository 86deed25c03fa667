"""Certificates made at test time with ``cryptography``: a CA, server certificates for
127.0.0.1/localhost it signed, and a client certificate, written as PEM files
(``make_pki(tmp_path)``)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass
class Pki:
    ca: Path
    """The CA certificate (PEM): what clients trust, and what client certificates chain to."""
    cert: Path
    key: Path
    client_cert: Path
    client_key: Path
    ca_key: ec.EllipticCurvePrivateKey


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path, password: bytes | None = None) -> None:
    encryption: serialization.KeySerializationEncryption = (
        serialization.NoEncryption() if password is None else serialization.BestAvailableEncryption(password)
    )
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption))


def issue(
    pki_ca: Path, ca_key: ec.EllipticCurvePrivateKey, common: str, *, client: bool = False
) -> tuple[bytes, ec.EllipticCurvePrivateKey]:
    """A certificate for ``common`` (a server's for 127.0.0.1 and localhost, or a client's),
    signed by the CA; its PEM and its key."""
    import ipaddress

    ca = x509.load_pem_x509_certificate(pki_ca.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    if client:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM), key


def make_pki(folder: Path, server_name: str = "test server") -> Pki:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("test CA"))
        .issuer_name(_name("test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pki = Pki(
        ca=folder / "ca.pem",
        cert=folder / "cert.pem",
        key=folder / "key.pem",
        client_cert=folder / "client.pem",
        client_key=folder / "client-key.pem",
        ca_key=ca_key,
    )
    pki.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert, key = issue(pki.ca, ca_key, server_name)
    pki.cert.write_bytes(cert)
    _write_key(key, pki.key)
    client, client_key = issue(pki.ca, ca_key, "test client", client=True)
    pki.client_cert.write_bytes(client)
    _write_key(client_key, pki.client_key)
    return pki


def renew(pki: Pki, server_name: str) -> None:
    """Writes a new server certificate and key (for ``server_name``) over the old files."""
    cert, key = issue(pki.ca, pki.ca_key, server_name)
    pki.key.write_bytes(b"")
    _write_key(key, pki.key)
    pki.cert.write_bytes(cert)


def encrypted_key(pki: Pki, path: Path, password: bytes) -> Path:
    """The server key again, encrypted with ``password`` (PKCS#8)."""
    key = serialization.load_pem_private_key(pki.key.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    _write_key(key, path, password)
    return path
