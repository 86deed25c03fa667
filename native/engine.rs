//! The `Engine` Python class: owns the tokio runtime, the listener and the inbox.

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use tokio::runtime::{Handle, Runtime};
use tokio::sync::watch;

use crate::inbox::{Build, Event, Inbox};

/// What every request task needs: the inbox to the loop, the runtime, the config.
pub struct EngineShared {
    pub inbox: Inbox,
    pub handle: Handle,
    create_future: Py<PyAny>,
    pub root_path: String,
    pub scheme: &'static str,
}

impl EngineShared {
    /// A new asyncio future of the engine's loop (loop thread only).
    pub fn future(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.create_future.call0(py)
    }

    /// Completes `future` on the loop thread with the value `build` makes there.
    pub fn resolve(&self, future: Py<PyAny>, build: Build) {
        self.inbox.push(Event::Resolve(future, build));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[pyclass(frozen, module = "fastrapi_compat._native")]
pub struct Engine {
    shared: Arc<EngineShared>,
    runtime: Mutex<Option<Runtime>>,
    listener: Mutex<Option<TcpListener>>,
    stop: Mutex<Option<watch::Sender<Option<Duration>>>>,
    serving: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

#[pymethods]
impl Engine {
    #[new]
    #[pyo3(signature = (event_loop, *, threads=1, root_path=String::new()))]
    fn new(event_loop: &Bound<'_, PyAny>, threads: usize, root_path: String) -> PyResult<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("fastrapi-io")
            .enable_all()
            .build()
            .map_err(|e| PyRuntimeError::new_err(format!("cannot start the tokio runtime: {e}")))?;
        let inbox = Inbox::new()?;
        let shared = Arc::new(EngineShared {
            inbox,
            handle: runtime.handle().clone(),
            create_future: event_loop.getattr("create_future")?.unbind(),
            root_path,
            scheme: "http",
        });
        Ok(Self {
            shared,
            runtime: Mutex::new(Some(runtime)),
            listener: Mutex::new(None),
            stop: Mutex::new(None),
            serving: Mutex::new(None),
        })
    }

    /// Binds a TCP listener; returns the bound `(host, port)`. Raises `OSError`.
    fn bind(&self, py: Python<'_>, host: &str, port: u16) -> PyResult<(String, u16)> {
        let listener = py.detach(|| bind_tcp(host, port))?;
        let addr = listener.local_addr()?;
        *lock(&self.listener) = Some(listener);
        Ok((addr.ip().to_string(), addr.port()))
    }

    /// The file descriptor the event loop must watch (`loop.add_reader(fd, drain)`).
    fn wake_fd(&self) -> RawFd {
        self.shared.inbox.fd()
    }

    /// Starts accepting connections on the bound listener.
    fn start(&self) -> PyResult<()> {
        let listener = lock(&self.listener)
            .take()
            .ok_or_else(|| PyRuntimeError::new_err("Engine.start() needs a bound listener"))?;
        let (stop_tx, stop_rx) = watch::channel(None);
        let shared = self.shared.clone();
        let handle = self.shared.handle.clone();
        let task = {
            let _guard = handle.enter();
            let listener = tokio::net::TcpListener::from_std(listener)?;
            handle.spawn(crate::serve::accept_loop(listener, shared, stop_rx))
        };
        *lock(&self.stop) = Some(stop_tx);
        *lock(&self.serving) = Some(task);
        Ok(())
    }

    /// Runs on the loop thread when the wake fd is readable: completes the futures that tokio
    /// resolved and returns the new protocol objects (one per request or websocket).
    fn drain(&self, py: Python<'_>) -> PyResult<Vec<Py<PyAny>>> {
        let mut spawned = Vec::new();
        for event in self.shared.inbox.take() {
            match event {
                Event::Spawn(build) => spawned.push(build(py)?),
                Event::Resolve(future, build) => resolve_future(py, &future, build)?,
            }
        }
        Ok(spawned)
    }

    /// Stops accepting, lets in-flight connections finish for up to `timeout` seconds, and
    /// returns an asyncio future completed when that is done.
    fn shutdown(&self, py: Python<'_>, timeout: f64) -> PyResult<Py<PyAny>> {
        if !(timeout.is_finite() && timeout >= 0.0) {
            return Err(PyValueError::new_err("timeout must be a non-negative number"));
        }
        let future = self.shared.future(py)?;
        if let Some(stop) = lock(&self.stop).take() {
            let _ = stop.send(Some(Duration::from_secs_f64(timeout)));
        }
        let serving = lock(&self.serving).take();
        let shared = self.shared.clone();
        let done = future.clone_ref(py);
        self.shared.handle.spawn(async move {
            if let Some(task) = serving {
                let _ = task.await;
            }
            shared.resolve(done, Box::new(|py| Ok(py.None())));
        });
        Ok(future)
    }

    /// Drops the runtime (after `shutdown`); tasks still running are cancelled.
    fn close(&self, py: Python<'_>) {
        let runtime = lock(&self.runtime).take();
        if let Some(runtime) = runtime {
            py.detach(|| runtime.shutdown_timeout(Duration::from_secs(1)));
        }
    }
}

fn resolve_future(py: Python<'_>, future: &Py<PyAny>, build: Build) -> PyResult<()> {
    let future = future.bind(py);
    if future.call_method0(pyo3::intern!(py, "done"))?.is_truthy()? {
        return Ok(()); // cancelled by the app (e.g. a disconnect listener that was not needed)
    }
    match build(py) {
        Ok(value) => future.call_method1(pyo3::intern!(py, "set_result"), (value,))?,
        Err(err) => future.call_method1(pyo3::intern!(py, "set_exception"), (err.value(py),))?,
    };
    Ok(())
}

fn bind_tcp(host: &str, port: u16) -> Result<TcpListener, PyErr> {
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
