//! The `Engine` Python class: owns the tokio runtime, the listener and the inbox.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use tokio::runtime::{Handle, Runtime};
use tokio::sync::watch;

use crate::inbox::{Build, Event, Inbox};
use crate::request::Site;

/// What every request task needs: the inbox to the loop and the runtime.
pub struct EngineShared {
    pub inbox: Inbox,
    pub handle: Handle,
    create_future: Py<PyAny>,
    /// HTTP requests handed to Python since the engine started.
    pub http_requests: AtomicU64,
    /// Websockets handed to Python since the engine started.
    pub websockets: AtomicU64,
    pub native_requests: AtomicU64,
    /// Set when the whole engine shuts down (open websockets are then closed).
    pub closing: watch::Sender<bool>,
    /// Status line reason phrases, as uvicorn writes them (Python's `http.HTTPStatus`);
    /// codes missing here get an empty phrase.
    reasons: HashMap<u16, hyper::ext::ReasonPhrase>,
    /// Complete responses made on the loop thread, handed to their connections together once
    /// per loop iteration (`flush`), so that tokio is woken once per batch, not per response.
    outbox: Mutex<Vec<Outgoing>>,
    /// The loop's `call_soon`, and the callable it is given to flush the outbox.
    call_soon: Py<PyAny>,
    flusher: std::sync::OnceLock<Py<PyAny>>,
    /// The loop thread (known from its first drain): responses made on other threads (the
    /// pool running synchronous plans) go to their connections at once.
    loop_thread: std::sync::OnceLock<std::thread::ThreadId>,
}

/// A response and the connection waiting for it.
pub type Outgoing = (
    tokio::sync::oneshot::Sender<hyper::Response<crate::body::ResBody>>,
    hyper::Response<crate::body::ResBody>,
);

impl EngineShared {
    /// A new asyncio future of the engine's loop (loop thread only).
    pub fn future(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.create_future.call0(py)
    }

    /// Sets the reason phrase uvicorn would write for this response's status.
    pub fn set_reason<B>(&self, response: &mut hyper::Response<B>) {
        let code = response.status().as_u16();
        let phrase = self
            .reasons
            .get(&code)
            .cloned()
            .unwrap_or_else(|| hyper::ext::ReasonPhrase::from_static(b""));
        response.extensions_mut().insert(phrase);
    }

    /// Completes `future` on the loop thread with the value `build` makes there.
    /// Hands `response` to its connection at the end of this loop iteration (called with the
    /// GIL, on the loop thread). If the flush cannot be scheduled, or the caller is not the
    /// loop thread, it is sent at once.
    pub fn deliver(&self, py: Python<'_>, outgoing: Outgoing) {
        if self.loop_thread.get() != Some(&std::thread::current().id()) {
            let (tx, response) = outgoing;
            let _ = tx.send(response);
            return;
        }
        let mut outbox = lock(&self.outbox);
        let first = outbox.is_empty();
        outbox.push(outgoing);
        drop(outbox);
        if first {
            let scheduled = self
                .flusher
                .get()
                .map(|flusher| self.call_soon.call1(py, (flusher.clone_ref(py),)).is_ok())
                .unwrap_or(false);
            if !scheduled {
                self.flush();
            }
        }
    }

    /// Sends every response in the outbox to its connection.
    pub fn flush(&self) {
        let batch = std::mem::take(&mut *lock(&self.outbox));
        for (tx, response) in batch {
            let _ = tx.send(response);
        }
    }

    pub fn resolve(&self, future: Py<PyAny>, build: Build) {
        self.inbox.push(Event::Resolve(future, build));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A listener being served: how to stop it, and its accept task.
struct Listening {
    site: Arc<Site>,
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
            .map_err(|e| PyRuntimeError::new_err(format!("cannot start the tokio runtime: {e}")))?;
        let shared = Arc::new(EngineShared {
            inbox: Inbox::new()?,
            handle: runtime.handle().clone(),
            create_future: event_loop.getattr("create_future")?.unbind(),
            http_requests: AtomicU64::new(0),
            websockets: AtomicU64::new(0),
            native_requests: AtomicU64::new(0),
            closing: watch::channel(false).0,
            reasons,
            outbox: Mutex::new(Vec::new()),
            call_soon: event_loop.getattr("call_soon")?.unbind(),
            flusher: std::sync::OnceLock::new(),
            loop_thread: std::sync::OnceLock::new(),
        });
        let flusher = Py::new(
            event_loop.py(),
            Flush {
                shared: Arc::downgrade(&shared),
            },
        )?;
        let _ = shared.flusher.set(flusher.into_any());
        Ok(Self {
            shared,
            runtime: Mutex::new(Some(runtime)),
            listeners: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
        })
    }

    /// Binds `host:port` (port 0 picks a free one) and starts accepting on it; each request
    /// becomes a protocol object whose `handler` is `handler`. Returns `(host, port, id)`.
    /// Raises `OSError` when the address cannot be bound. `reuse_port` sets `SO_REUSEPORT`, so
    /// that several worker processes listen on one port and the kernel spreads connections.
    #[pyo3(signature = (handler, host, port, *, root_path=String::new(), reuse_port=false))]
    fn listen(
        &self,
        py: Python<'_>,
        handler: Py<PyAny>,
        host: &str,
        port: u16,
        root_path: String,
        reuse_port: bool,
    ) -> PyResult<(String, u16, u64)> {
        let listener = py.detach(|| bind_tcp(host, port, reuse_port))?;
        let addr = listener.local_addr()?;
        let site = Arc::new(Site {
            handler,
            root_path,
            scheme: "http",
            mirror: arc_swap::ArcSwapOption::empty(),
        });
        let (stop, stop_rx) = watch::channel(None);
        let task = {
            let _guard = self.shared.handle.enter();
            let listener = tokio::net::TcpListener::from_std(listener)?;
            self.shared.handle.spawn(crate::serve::accept_loop(
                listener,
                self.shared.clone(),
                site.clone(),
                stop_rx,
            ))
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        lock(&self.listeners).insert(id, Listening { site, stop, task });
        Ok((addr.ip().to_string(), addr.port(), id))
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
        let listening = listeners
            .get(&id)
            .ok_or_else(|| PyValueError::new_err(format!("no listener with id {id}")))?;
        listening.site.mirror.store(mirror.map(|m| m.inner.clone()));
        Ok(())
    }

    fn wake_fd(&self) -> RawFd {
        self.shared.inbox.fd()
    }

    /// Runs on the loop thread when the wake fd is readable: completes the futures that tokio
    /// resolved and returns the new protocol objects (one per request or websocket).
    fn drain(&self, py: Python<'_>) -> Vec<Py<PyAny>> {
        self.shared
            .loop_thread
            .get_or_init(|| std::thread::current().id());
        let mut spawned = Vec::new();
        for event in self.shared.inbox.take() {
            let result = match event {
                Event::Spawn(build) => build(py).map(|protocol| spawned.push(protocol)),
                Event::Resolve(future, build) => resolve_future(py, &future, build),
            };
            if let Err(err) = result {
                // One bad event must not lose the rest of the batch.
                err.write_unraisable(py, None);
            }
        }
        spawned
    }

    /// Stops accepting on listener `id` (all listeners when `None`), lets their connections
    /// finish for up to `timeout` seconds, and returns an asyncio future completed when done.
    #[pyo3(signature = (timeout, id=None))]
    fn shutdown(&self, py: Python<'_>, timeout: f64, id: Option<u64>) -> PyResult<Py<PyAny>> {
        if !(timeout.is_finite() && timeout >= 0.0) {
            return Err(PyValueError::new_err(
                "timeout must be a non-negative number",
            ));
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
        let future = self.shared.future(py)?;
        let done = future.clone_ref(py);
        let shared = self.shared.clone();
        self.shared.handle.spawn(async move {
            for listening in &stopping {
                let _ = listening.stop.send(Some(grace));
            }
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

/// The loop callback that flushes an engine's outbox (holds the engine weakly).
#[pyclass(frozen, module = "fastrapi_compat._native")]
struct Flush {
    shared: std::sync::Weak<EngineShared>,
}

#[pymethods]
impl Flush {
    fn __call__(&self) {
        if let Some(shared) = self.shared.upgrade() {
            shared.flush();
        }
    }
}

fn resolve_future(py: Python<'_>, future: &Py<PyAny>, build: Build) -> PyResult<()> {
    let future = future.bind(py);
    if future
        .call_method0(pyo3::intern!(py, "done"))?
        .is_truthy()?
    {
        return Ok(()); // cancelled by the app (e.g. a disconnect listener that was not needed)
    }
    match build(py) {
        Ok(value) => future.call_method1(pyo3::intern!(py, "set_result"), (value,))?,
        Err(err) => future.call_method1(pyo3::intern!(py, "set_exception"), (err.value(py),))?,
    };
    Ok(())
}

fn bind_tcp(host: &str, port: u16, reuse_port: bool) -> Result<TcpListener, PyErr> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| PyOSError::new_err(format!("cannot resolve host {host:?}: {e}")))?
        .collect();
    let addr = *addrs
        .first()
        .ok_or_else(|| PyOSError::new_err(format!("cannot resolve host {host:?}")))?;
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
    socket.listen(2048)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

pub fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Engine>()
}
