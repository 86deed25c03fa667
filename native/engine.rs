//! The `Engine` Python class: owns the tokio runtime and the listeners it serves.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use tokio::runtime::Runtime;
use tokio::sync::watch;

use crate::defaults::DefaultHeaders;
use crate::errors::EngineError;
use crate::listener::Listener;
use crate::metrics::Metrics;
use crate::proxy::TrustedHosts;
use crate::router::MirrorSlot;
use crate::shared::{lock, EngineShared};
use crate::site::{Limits, Site, WsOptions};
use crate::tls::{Tls, TlsSource};

/// A listener being served: its route mirror, how to stop it, and its accept task.
struct Listening {
    /// Held as long as the engine knows the listener (its handler lives that long).
    site: Arc<Site>,
    mirror: Arc<MirrorSlot>,
    stop: watch::Sender<Option<Duration>>,
    task: tokio::task::JoinHandle<()>,
}

/// The engine: a tokio runtime serving any number of listeners, each with its own handler.
#[pyclass(frozen, module = "fastrapi_compat._native")]
pub struct Engine {
    shared: Arc<EngineShared>,
    runtime: Mutex<Option<Runtime>>,
    listeners: Mutex<HashMap<u64, Listening>>,
    next_id: AtomicU64,
    /// Counted by the listeners made after `serve_metrics`.
    metrics: OnceLock<Arc<Metrics>>,
}

#[pymethods]
impl Engine {
    #[new]
    #[pyo3(signature = (event_loop, *, threads=1, reasons=HashMap::new()))]
    fn new(
        event_loop: &Bound<'_, PyAny>,
        threads: usize,
        reasons: HashMap<u16, String>,
    ) -> PyResult<Self> {
        let reasons = reasons
            .into_iter()
            .filter_map(|(code, phrase)| {
                hyper::ext::ReasonPhrase::try_from(phrase.into_bytes())
                    .ok()
                    .map(|p| (code, p))
            })
            .collect();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("fastrapi-io")
            .enable_all()
            .build()
            .map_err(EngineError::Runtime)?;
        let shared = EngineShared::new(event_loop, runtime.handle().clone(), reasons)?;
        Ok(Self {
            shared,
            runtime: Mutex::new(Some(runtime)),
            listeners: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            metrics: OnceLock::new(),
        })
    }

    /// Binds `host:port` (port 0 picks a free one) and starts accepting on it; each request
    /// becomes a protocol object whose `handler` is `handler`. Returns `(host, port, id)`.
    /// Raises `OSError` when the address cannot be bound. `reuse_port` sets `SO_REUSEPORT`, so
    /// that several worker processes listen on one port and the kernel spreads connections.
    /// `forwarded_allow_ips` (uvicorn's, a comma-separated list; `None`: no proxy headers) says
    /// whose `X-Forwarded-Proto`/`-For` set the scope's scheme and client.
    /// With `access_log`, each HTTP request answered is reported to
    /// `handler.log_access(client, method, path, http_version, status)` on the loop thread.
    /// `backlog`, `limit_concurrency` (503 beyond; the handler's `concurrency_exceeded()` is
    /// called) and `limit_max_requests` (the handler's `max_requests_reached(n)` is called once)
    /// are uvicorn's; `limit_request_headers` (bytes, at least 8192) answers 431 beyond it.
    /// The `ws_*` options are uvicorn's (`None` for an interval or timeout: never).
    /// `fd`: serve on this listening socket (TCP or unix, which the engine then owns) instead
    /// of binding `host:port`. `date_header` and `default_headers` (`(name, value)` byte pairs,
    /// names lower-case) go first on every response, as uvicorn's `date`, `server` and
    /// `--header`. Beyond uvicorn: `limit_request_body` (bytes; more: 413) and
    /// `timeout_request_header` (seconds from a head's first byte; slower: 408).
    /// `tls`: `(certificate chain PEM, private key PEM (not encrypted), CA certificates PEM or
    /// None, cert_reqs 0/1/2)` serves TLS (rustls; raises `ValueError` with one line when they
    /// do not make a configuration). `http2`: serve HTTP/2 too (ALPN over TLS, h2c prior
    /// knowledge in cleartext).
    #[pyo3(signature = (
        handler, host, port, *, root_path=String::new(), reuse_port=false,
        timeout_keep_alive=5.0, forwarded_allow_ips=None, access_log=false, backlog=2048,
        limit_concurrency=None, limit_max_requests=None, limit_request_headers=None, ws_max_size=16 * 1024 * 1024, ws_max_queue=32,
        ws_ping_interval=Some(20.0), ws_ping_timeout=Some(20.0), ws_per_message_deflate=true, fd=None,
        date_header=true, default_headers=Vec::new(), limit_request_body=None, timeout_request_header=None,
        tls=None, http2=true,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn listen(
        &self,
        py: Python<'_>,
        handler: Py<PyAny>,
        host: &str,
        port: u16,
        root_path: String,
        reuse_port: bool,
        timeout_keep_alive: f64,
        forwarded_allow_ips: Option<String>,
        access_log: bool,
        backlog: i32,
        limit_concurrency: Option<usize>,
        limit_max_requests: Option<u64>,
        limit_request_headers: Option<usize>,
        ws_max_size: usize,
        ws_max_queue: usize,
        ws_ping_interval: Option<f64>,
        ws_ping_timeout: Option<f64>,
        ws_per_message_deflate: bool,
        fd: Option<RawFd>,
        date_header: bool,
        default_headers: Vec<(Vec<u8>, Vec<u8>)>,
        limit_request_body: Option<u64>,
        timeout_request_header: Option<f64>,
        tls: Option<TlsArgs>,
        http2: bool,
    ) -> PyResult<(String, u16, u64)> {
        let tls = tls
            .map(|args| Tls::new(&tls_source(args, http2)))
            .transpose()
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let ws = WsOptions {
            max_size: ws_max_size.max(1),
            max_queue: ws_max_queue.max(1),
            ping_interval: seconds(ws_ping_interval)?,
            ping_timeout: seconds(ws_ping_timeout)?,
            per_message_deflate: ws_per_message_deflate,
        };
        if !(timeout_keep_alive.is_finite() && timeout_keep_alive > 0.0) {
            return Err(EngineError::InvalidTimeout.into());
        }
        let defaults = DefaultHeaders::new(date_header, default_headers)?;
        let head_timeout = seconds(timeout_request_header)?;
        let listener = {
            let _guard = self.shared.handle.enter();
            match fd {
                Some(fd) => Listener::from_fd(fd, backlog)?,
                None => Listener::Tcp(tokio::net::TcpListener::from_std(
                    py.detach(|| bind_tcp(host, port, reuse_port, backlog))?,
                )?),
            }
        };
        let (bound_host, bound_port) = listener.address()?;
        let site = Arc::new(Site {
            handler,
            root_path,
            scheme: if tls.is_some() { "https" } else { "http" },
            access_log,
            proxy: forwarded_allow_ips.as_deref().map(TrustedHosts::parse),
            timeout_keep_alive: Duration::from_secs_f64(timeout_keep_alive),
            ws,
            // hyper's smallest buffer (it panics below it): the Python side says so first.
            max_head: limit_request_headers.map(|n| n.max(8192)),
            max_body: limit_request_body,
            head_timeout,
            defaults,
            metrics: self.metrics.get().cloned(),
            tls,
            h2: http2,
            limits: Limits {
                concurrency: limit_concurrency,
                max_requests: limit_max_requests.filter(|n| *n > 0),
                ..Limits::default()
            },
        });
        let mirror = Arc::new(MirrorSlot::empty());
        let (stop, stop_rx) = watch::channel(None);
        let task = {
            self.shared.handle.spawn(crate::serve::accept_loop(
                listener,
                self.shared.clone(),
                site.clone(),
                mirror.clone(),
                stop_rx,
            ))
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        lock(&self.listeners).insert(
            id,
            Listening {
                site,
                mirror,
                stop,
                task,
            },
        );
        Ok((bound_host, bound_port, id))
    }

    /// Serves Prometheus metrics on `GET http://host:port/metrics` (port 0 picks a free one),
    /// counting the requests of the listeners made from now on; `worker` labels every sample.
    /// Returns the bound `(host, port)`. Raises `OSError` when the address cannot be bound,
    /// `RuntimeError` when called twice.
    #[pyo3(signature = (host, port, *, worker=None))]
    fn serve_metrics(
        &self,
        py: Python<'_>,
        host: &str,
        port: u16,
        worker: Option<String>,
    ) -> PyResult<(String, u16)> {
        if self.metrics.get().is_some() {
            return Err(EngineError::MetricsServed.into());
        }
        let listener = py.detach(|| bind_tcp(host, port, false, 128))?;
        let bound = listener.local_addr()?;
        let metrics = Arc::new(Metrics::new(worker));
        if self.metrics.set(metrics.clone()).is_err() {
            return Err(EngineError::MetricsServed.into());
        }
        let _guard = self.shared.handle.enter();
        self.shared
            .handle
            .spawn(crate::metrics::serve(listener, metrics));
        Ok((bound.ip().to_string(), bound.port()))
    }

    /// Replaces listener `id`'s certificate, key and client checks for the TLS handshakes to
    /// come; connections already open keep theirs. Raises `ValueError` (the old ones stay).
    fn reload_tls(&self, id: u64, tls: TlsArgs) -> PyResult<()> {
        let listeners = lock(&self.listeners);
        let listening = listeners.get(&id).ok_or(EngineError::NoListener(id))?;
        let Some(current) = listening.site.tls.as_ref() else {
            return Err(PyValueError::new_err("the listener does not serve TLS"));
        };
        current
            .reload(tls_source(tls, false))
            .map_err(|e| PyValueError::new_err(e.to_string()))
    }

    /// Counters since start: `{"http": n, "websocket": n, "native": n}`.
    fn stats(&self) -> HashMap<&'static str, u64> {
        HashMap::from([
            ("http", self.shared.http_requests.load(Ordering::Relaxed)),
            ("websocket", self.shared.websockets.load(Ordering::Relaxed)),
            (
                "native",
                self.shared.native_requests.load(Ordering::Relaxed),
            ),
        ])
    }

    /// The file descriptor the event loop must watch (`loop.add_reader(fd, drain)`).
    /// Routes the listener's requests through `mirror` (its native routes are handed to the
    /// handler with their match), or sends them all to the ASGI tier when `mirror` is `None`.
    /// Takes effect for requests that arrive after the call.
    #[pyo3(signature = (id, mirror))]
    fn set_mirror(
        &self,
        id: u64,
        mirror: Option<PyRef<'_, crate::router::PyRouteMirror>>,
    ) -> PyResult<()> {
        let listeners = lock(&self.listeners);
        let listening = listeners.get(&id).ok_or(EngineError::NoListener(id))?;
        listening.mirror.store(mirror.map(|m| m.inner.clone()));
        Ok(())
    }

    fn wake_fd(&self) -> RawFd {
        self.shared.inbox.fd()
    }

    /// Runs on the loop thread when the wake fd is readable: completes the futures that tokio
    /// resolved and returns the new protocol objects (one per request or websocket).
    fn drain(&self, py: Python<'_>) -> Vec<Py<PyAny>> {
        self.shared.drain(py)
    }

    /// Schedules a flush of the responses made on the loop (the dispatcher calls it after
    /// spawning a drained batch: the flush then follows their tasks' first steps).
    fn flush_soon(&self, py: Python<'_>) {
        self.shared.flush_soon(py);
    }

    /// Stops accepting on listener `id` (all listeners when `None`), lets their connections
    /// finish for up to `timeout` seconds, and returns an asyncio future completed when done.
    #[pyo3(signature = (timeout, id=None))]
    fn shutdown(&self, py: Python<'_>, timeout: f64, id: Option<u64>) -> PyResult<Py<PyAny>> {
        if !(timeout.is_finite() && timeout >= 0.0) {
            return Err(EngineError::InvalidTimeout.into());
        }
        let grace = Duration::from_secs_f64(timeout);
        let stopping: Vec<Listening> = {
            let mut listeners = lock(&self.listeners);
            match id {
                Some(id) => listeners.remove(&id).into_iter().collect(),
                None => listeners.drain().map(|(_, l)| l).collect(),
            }
        };
        if id.is_none() {
            self.shared.closing.send_replace(true);
        }
        // told now: once this returns, each accept loop takes no new connection after the one
        // it may be taking (a worker then tells its supervisor it accepts no more)
        for listening in &stopping {
            let _ = listening.stop.send(Some(grace));
        }
        let future = self.shared.future(py)?;
        let done = future.clone_ref(py);
        let shared = self.shared.clone();
        self.shared.handle.spawn(async move {
            for listening in stopping {
                let _ = listening.task.await;
            }
            shared.resolve(done, Box::new(|py| Ok(py.None())));
        });
        Ok(future)
    }

    /// Drops the runtime (after `shutdown`); tasks still running are cancelled.
    fn close(&self, py: Python<'_>) {
        self.shared.flush();
        let runtime = lock(&self.runtime).take();
        if let Some(runtime) = runtime {
            py.detach(|| runtime.shutdown_timeout(Duration::from_secs(1)));
        }
    }
}

/// `listen`'s `tls` argument: certificate chain, key, CA certificates (PEM), cert_reqs.
type TlsArgs = (Vec<u8>, Vec<u8>, Option<Vec<u8>>, u8);

fn tls_source((certs, key, ca_certs, cert_reqs): TlsArgs, h2: bool) -> TlsSource {
    TlsSource {
        certs,
        key,
        ca_certs,
        cert_reqs,
        h2,
    }
}

/// A duration given in seconds: `None` or 0 for none, else finite and positive.
fn seconds(value: Option<f64>) -> Result<Option<Duration>, EngineError> {
    match value {
        None => Ok(None),
        Some(0.0) => Ok(None),
        Some(s) if s.is_finite() && s > 0.0 => Ok(Some(Duration::from_secs_f64(s))),
        Some(_) => Err(EngineError::InvalidTimeout),
    }
}

fn bind_tcp(
    host: &str,
    port: u16,
    reuse_port: bool,
    backlog: i32,
) -> Result<TcpListener, EngineError> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| EngineError::Unresolved {
            host: host.to_owned(),
            cause: Some(e),
        })?
        .collect();
    let addr = *addrs.first().ok_or_else(|| EngineError::Unresolved {
        host: host.to_owned(),
        cause: None,
    })?;
    let domain = socket2::Domain::for_address(addr);
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        let _ = socket.set_only_v6(false);
    }
    socket.bind(&addr.into())?;
    socket.listen(backlog.max(1))?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

pub fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Engine>()
}
