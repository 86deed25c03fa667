//! One listener's settings (`Site`) and the addresses of a connection accepted on it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use pyo3::prelude::*;

/// One listener's settings: who handles its requests and how scopes are filled.
pub struct Site {
    /// The Python object whose `spawn(protocol)` runs the app (see `serve/dispatch.py`'s `Dispatcher`).
    pub handler: Py<PyAny>,
    pub root_path: String,
    pub scheme: &'static str,
    /// Whose `X-Forwarded-Proto`/`-For` to believe (`None`: `--no-proxy-headers`).
    pub proxy: Option<crate::proxy::TrustedHosts>,
    /// Whether each HTTP request is handed to the handler's `log_access` (uvicorn's access log).
    pub access_log: bool,
    /// How long a connection may wait for its next request head (uvicorn's
    /// `--timeout-keep-alive`).
    pub timeout_keep_alive: Duration,
    pub ws: WsOptions,
    pub limits: Limits,
    /// Largest request head accepted, in bytes (more: 431); `None`: hyper's (~400 KB).
    pub max_head: Option<usize>,
    /// Largest request body accepted, in bytes (more: 413, `--limit-request-body`).
    pub max_body: Option<u64>,
    /// How long a request head may take from its first byte (`--timeout-request-header`;
    /// `None`: the keep-alive timeout bounds it, from the end of the previous response).
    pub head_timeout: Option<Duration>,
    /// `date`, `server` and `--header`: put on every response, before the app's headers.
    pub defaults: crate::defaults::DefaultHeaders,
    /// The engine's Prometheus metrics, when served (`--metrics-port`).
    pub metrics: Option<std::sync::Arc<crate::metrics::Metrics>>,
    /// `--ssl-*`: connections are TLS (the scheme is then `https`).
    pub tls: Option<crate::tls::Tls>,
    /// Serve HTTP/2 too (`--http auto|h2`): by ALPN over TLS, by its preface in cleartext.
    pub h2: bool,
}

/// uvicorn's `--limit-concurrency` and `--limit-max-requests`, and what they count.
#[derive(Debug, Default)]
pub struct Limits {
    /// Connections or requests in flight beyond which requests get 503 without the app.
    pub concurrency: Option<usize>,
    /// Requests after which the handler's `max_requests_reached` is called (once).
    pub max_requests: Option<u64>,
    pub connections: AtomicUsize,
    pub in_flight: AtomicUsize,
    pub requests: AtomicU64,
}

impl Limits {
    /// `false` when a new request is over the concurrency limit: uvicorn's rule, the open
    /// connections (this one included) or the requests in flight (others) at the limit.
    pub fn admit(&self) -> bool {
        let in_flight = self.in_flight.load(Ordering::Relaxed);
        let connections = self.connections.load(Ordering::Relaxed);
        self.concurrency
            .is_none_or(|limit| in_flight < limit && connections < limit)
    }

    /// Counts a request; `true` for the one that reaches `max_requests`.
    pub fn count_request(&self) -> bool {
        let n = self.requests.fetch_add(1, Ordering::Relaxed) + 1;
        self.max_requests == Some(n)
    }
}

/// uvicorn's websocket options (`--ws-max-size`, `--ws-max-queue`, `--ws-ping-interval`,
/// `--ws-ping-timeout`, `--ws-per-message-deflate`), with uvicorn's defaults.
#[derive(Clone, Debug)]
pub struct WsOptions {
    /// Largest message (and frame) accepted from the peer, in bytes; larger ones close 1009.
    pub max_size: usize,
    /// Messages read from the peer and not yet received by the app; reading stops when full.
    pub max_queue: usize,
    /// How often the server pings an open websocket (`None`: never).
    pub ping_interval: Option<Duration>,
    /// How long the peer has to answer a ping before the websocket is closed 1011.
    pub ping_timeout: Option<Duration>,
    /// permessage-deflate is negotiated when the client offers it.
    pub per_message_deflate: bool,
}

impl Default for WsOptions {
    fn default() -> Self {
        Self {
            max_size: 16 * 1024 * 1024,
            max_queue: 32,
            ping_interval: Some(Duration::from_secs(20)),
            ping_timeout: Some(Duration::from_secs(20)),
            per_message_deflate: true,
        }
    }
}

/// The local end of a connection: the scope's `server`.
#[derive(Clone, Debug)]
pub enum Local {
    /// `(host, port)`.
    Inet(SocketAddr),
    /// A unix domain socket: `(path, None)`, as uvicorn gives it.
    Unix(std::sync::Arc<str>),
}

/// Addresses of one accepted connection, and the site it was accepted for.
pub struct ConnInfo {
    /// The client (`None` over a unix socket: uvicorn's scope has no `client` then).
    pub peer: Option<SocketAddr>,
    pub local: Local,
    pub site: std::sync::Arc<Site>,
    /// Asked by a request whose app raised after its response: the connection then closes.
    pub closer: std::sync::Arc<ConnCloser>,
}

/// A request's way to close its connection once its response is out, as uvicorn closes the
/// transport when the app raised after the response had started.
#[derive(Default)]
pub struct ConnCloser {
    notify: tokio::sync::Notify,
    asked: std::sync::atomic::AtomicBool,
}

impl ConnCloser {
    pub fn ask(&self) {
        self.asked.store(true, std::sync::atomic::Ordering::SeqCst);
        self.notify.notify_one();
    }

    /// Whether [`ConnCloser::ask`] was called.
    pub fn was_asked(&self) -> bool {
        self.asked.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Resolves once [`ConnCloser::ask`] was called.
    pub async fn asked(&self) {
        loop {
            let notified = self.notify.notified();
            if self.asked.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }
}
