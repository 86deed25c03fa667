"""TLS options (uvicorn's ``--ssl-*``): checking them and reading the files the engine's rustls
configuration is built from.

The engine (``native/tls.rs``) takes PEM text: the certificate chain, an unencrypted private key,
and the CA certificates for client certificates. An encrypted key (``--ssl-keyfile-password``,
traditional OpenSSL or PKCS#8 encryption, as ``ssl.SSLContext.load_cert_chain`` reads them) is
decrypted here with the ``cryptography`` package and handed over as PKCS#8. The files are read
again on SIGHUP (:func:`load`), so a renewed certificate is served without a restart.
"""

from __future__ import annotations

import ssl
from typing import Any

from fastrapi_compat.errors import StartupError

#: uvicorn's default for ``ssl_version``, which rustls decides itself (``ssl.PROTOCOL_TLS_SERVER``).
DEFAULT_VERSION = int(ssl.PROTOCOL_TLS_SERVER)
#: The ``ssl_ciphers`` taken: uvicorn 0.55's default (``None``, OpenSSL's safe defaults) and
#: older uvicorns' (``"TLSv1"``); rustls offers its own safe suites.
DEFAULT_CIPHERS = (None, "TLSv1")
#: The ``ssl`` protocol numbers meaning "the best version both sides have" (``PROTOCOL_TLS``,
#: ``PROTOCOL_TLS_SERVER``): what rustls does (TLS 1.2 or 1.3).
_NEGOTIATED_VERSIONS = (int(ssl.PROTOCOL_TLS), DEFAULT_VERSION)

#: A PEM argument for the engine: chain, key, CA certificates, cert_reqs.
TlsArgs = tuple[bytes, bytes, bytes | None, int]


def check(
    certfile: str | None,
    keyfile: str | None,
    cert_reqs: Any,
    version: Any,
    ciphers: Any,
    ca_certs: str | None,
) -> None:
    """Raises :class:`StartupError` for TLS options the engine cannot honour."""
    if keyfile is not None and certfile is None:
        raise StartupError("ssl_keyfile needs ssl_certfile (the certificate it goes with)")
    if isinstance(cert_reqs, bool) or cert_reqs not in (0, 1, 2):
        raise StartupError(f"ssl_cert_reqs must be 0 (none), 1 (optional) or 2 (required), got {cert_reqs!r}")
    if cert_reqs and ca_certs is None and certfile is not None:
        raise StartupError("ssl_cert_reqs 1 or 2 asks for client certificates: give ssl_ca_certs to check them")
    if version not in _NEGOTIATED_VERSIONS:
        raise StartupError(
            f"ssl_version {version!r} is not supported: the engine's TLS (rustls) always negotiates "
            "TLS 1.2 or 1.3, as ssl.PROTOCOL_TLS_SERVER (17, the default) does"
        )
    if ciphers not in DEFAULT_CIPHERS:
        raise StartupError(
            f"ssl_ciphers {ciphers!r} is not supported: the engine's TLS (rustls) offers only its own "
            "safe cipher suites (TLS 1.2 ECDHE with AES-GCM or ChaCha20, and TLS 1.3's)"
        )


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as exc:
        raise StartupError(f"cannot read the {what} {path}: {(exc.strerror or str(exc)).lower()}") from None


def _decrypt(pem: bytes, password: str, path: str) -> bytes:
    try:
        from cryptography.hazmat.primitives import serialization
    except ImportError:
        raise StartupError("ssl_keyfile_password needs the 'cryptography' package to decrypt the key") from None
    try:
        key = serialization.load_pem_private_key(pem, password=password.encode())
    except (ValueError, TypeError) as exc:
        raise StartupError(f"cannot decrypt the key file {path}: {exc}") from None
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _is_encrypted(pem: bytes) -> bool:
    return b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in pem or b"Proc-Type: 4,ENCRYPTED" in pem


def load(
    certfile: str,
    keyfile: str | None,
    password: str | None,
    ca_certs: str | None,
    cert_reqs: int,
) -> TlsArgs:
    """The engine's ``tls`` argument, read from the files now (a key in the certificate file when
    ``keyfile`` is ``None``, as ``load_cert_chain`` takes it)."""
    chain = _read(certfile, "certificate file")
    key_path = keyfile if keyfile is not None else certfile
    key = chain if keyfile is None else _read(keyfile, "key file")
    if password is not None and _is_encrypted(key):
        key = _decrypt(key, password, key_path)
    elif _is_encrypted(key):
        raise StartupError(f"the key file {key_path} is encrypted: give its password (ssl_keyfile_password)")
    ca = None if ca_certs is None else _read(ca_certs, "CA certificates file")
    return chain, key, ca, cert_reqs
