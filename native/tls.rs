//! TLS for a listener (`--ssl-certfile`/`--ssl-keyfile`/`--ssl-ca-certs`/`--ssl-cert-reqs`):
//! a rustls server configuration built from the PEM text Python read (and decrypted, for
//! `--ssl-keyfile-password`), handshakes bounded in time, ALPN (`h2`, `http/1.1`), and reloads:
//! [`Tls::reload`] swaps the configuration, so handshakes after it use the new certificate while
//! connections already open keep the session they have.
//!
//! Also here: telling an HTTP/2 connection in cleartext (h2c "prior knowledge") from an
//! HTTP/1.1 one by its first bytes, without consuming them.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// A TLS handshake that takes longer than this (from the connection's accept) is dropped, so a
/// client that connects and stays silent does not hold a connection slot.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The first bytes of every HTTP/2 connection (RFC 9113, section 3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What a listener's TLS is made of, as Python hands it over.
pub struct TlsSource {
    /// The certificate chain, PEM (leaf first).
    pub certs: Vec<u8>,
    /// The private key, PEM, not encrypted (PKCS#8, PKCS#1 or SEC1).
    pub key: Vec<u8>,
    /// CA certificates that client certificates must chain to, PEM.
    pub ca_certs: Option<Vec<u8>>,
    /// uvicorn's `--ssl-cert-reqs`: 0 no client certificate asked, 1 optional, 2 required.
    pub cert_reqs: u8,
    /// Offer `h2` by ALPN (before `http/1.1`).
    pub h2: bool,
}

/// Why a TLS configuration could not be built: one line for the user.
#[derive(Debug)]
pub struct TlsError(pub String);

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn pem_error(what: &str, error: &rustls::pki_types::pem::Error) -> TlsError {
    match error {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError(format!("no {what} found in PEM")),
        other => TlsError(format!("invalid PEM in the {what} file: {other:?}")),
    }
}

fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(what, &e))?;
    if certs.is_empty() {
        return Err(TlsError(format!("no {what} found in PEM")));
    }
    Ok(certs)
}

/// Builds the rustls configuration `source` describes.
pub fn server_config(source: &TlsSource) -> Result<ServerConfig, TlsError> {
    // ring builds with a C compiler alone (aws-lc-rs needs cmake); rustls deprecated its
    // provider only because it offers no post-quantum key exchange.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certificates(&source.certs, "certificate")?;
    let key =
        PrivateKeyDer::from_pem_slice(&source.key).map_err(|e| pem_error("private key", &e))?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(e.to_string()))?;
    let builder = match (&source.ca_certs, source.cert_reqs) {
        (_, 0) => builder.with_no_client_auth(),
        (None, _) => {
            return Err(TlsError(
                "client certificates are asked for (--ssl-cert-reqs 1 or 2) but no CA \
                 certificates were given to check them (--ssl-ca-certs)"
                    .into(),
            ))
        }
        (Some(ca), reqs) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(ca, "CA certificate")? {
                roots
                    .add(cert)
                    .map_err(|e| TlsError(format!("invalid CA certificate: {e}")))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if reqs == 1 {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier
                .build()
                .map_err(|e| TlsError(format!("client certificate checks: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| {
        TlsError(format!(
            "the private key does not go with the certificate, or is not usable: {e}"
        ))
    })?;
    config.alpn_protocols = if source.h2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(config)
}

/// A listener's TLS: the configuration new handshakes use.
pub struct Tls {
    config: ArcSwap<ServerConfig>,
    /// Whether ALPN offers `h2` (kept across reloads).
    h2: bool,
}

impl Tls {
    pub fn new(source: &TlsSource) -> Result<Self, TlsError> {
        Ok(Self {
            config: ArcSwap::from_pointee(server_config(source)?),
            h2: source.h2,
        })
    }

    /// Replaces the certificate, key and client checks for handshakes from now on; on an
    /// error the configuration in use stays.
    pub fn reload(&self, mut source: TlsSource) -> Result<(), TlsError> {
        source.h2 = self.h2;
        self.config.store(Arc::new(server_config(&source)?));
        Ok(())
    }

    /// The TLS handshake on `stream`, within [`HANDSHAKE_TIMEOUT`]. The stream, and whether
    /// the client chose HTTP/2 by ALPN.
    pub async fn accept<S>(&self, stream: S) -> io::Result<(TlsStream<S>, bool)>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let acceptor = TlsAcceptor::from(self.config.load_full());
        let tls: TlsStream<S> =
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(result) => result?,
                Err(_) => return Err(io::ErrorKind::TimedOut.into()),
            };
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        Ok((tls, h2))
    }
}

/// Whether a cleartext TCP connection starts with the HTTP/2 preface (h2c with prior
/// knowledge), looked at without consuming it; `None` when it sent nothing for `idle` (the
/// keep-alive timeout: it is closed, as an HTTP/1.1 connection silent that long is).
pub async fn starts_with_h2_preface(stream: &TcpStream, idle: Duration) -> Option<bool> {
    let mut buf = [0u8; H2_PREFACE.len()];
    let look = async {
        loop {
            let n = match stream.peek(&mut buf).await {
                Ok(n) => n,
                Err(_) => return false,
            };
            if n == 0 || buf[..n] != H2_PREFACE[..n] {
                return false;
            }
            if n == H2_PREFACE.len() {
                return true;
            }
            // Part of the preface so far: peek again once more has come (peek returns what
            // is there at once, so wait a moment rather than spin).
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(idle, look).await.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_items_are_named() {
        let source = TlsSource {
            certs: b"not pem".to_vec(),
            key: Vec::new(),
            ca_certs: None,
            cert_reqs: 0,
            h2: true,
        };
        let error = server_config(&source)
            .err()
            .map(|e| e.0)
            .unwrap_or_default();
        assert_eq!(error, "no certificate found in PEM");
    }
}
