//! `EngineShared`: what every request task shares with the engine (inbox, runtime, counters).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hyper::ext::ReasonPhrase;
use hyper::StatusCode;
use pyo3::prelude::*;
use tokio::runtime::Handle;
use tokio::sync::watch;

use crate::inbox::{Build, Event, Inbox};

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
    /// Status line reason phrases, as uvicorn writes them (Python's `http.HTTPStatus`; codes
    /// missing there get an empty phrase), indexed by code less 100: `None` where hyper's own
    /// (its canonical phrase) is the same, so that the response needs no extension.
    reasons: Box<[Option<ReasonPhrase>]>,
    /// Complete responses made on the loop thread, handed to their connections together once
    /// per loop iteration (`flush`), so that tokio is woken once per batch, not per response.
    outbox: Mutex<Vec<Outgoing>>,
    /// The loop's `call_soon`, and the callable it is given to flush the outbox.
    call_soon: Py<PyAny>,
    flusher: std::sync::OnceLock<Py<PyAny>>,
    /// Set while a flush is scheduled on the loop (loop thread only): a response delivered
    /// then rides on it rather than scheduling another.
    flush_scheduled: std::sync::atomic::AtomicBool,
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
    /// The state of an engine whose runtime is `handle` and whose loop is `event_loop`, with its
    /// outbox flusher (see [`Flush`]) ready to be scheduled on that loop.
    pub fn new(
        event_loop: &Bound<'_, PyAny>,
        handle: Handle,
        reasons: HashMap<u16, ReasonPhrase>,
    ) -> PyResult<Arc<Self>> {
        let shared = Arc::new(EngineShared {
            inbox: Inbox::new()?,
            handle,
            create_future: event_loop.getattr("create_future")?.unbind(),
            http_requests: AtomicU64::new(0),
            websockets: AtomicU64::new(0),
            native_requests: AtomicU64::new(0),
            closing: watch::channel(false).0,
            reasons: reason_table(&reasons),
            outbox: Mutex::new(Vec::new()),
            call_soon: event_loop.getattr("call_soon")?.unbind(),
            flusher: std::sync::OnceLock::new(),
            flush_scheduled: std::sync::atomic::AtomicBool::new(false),
            loop_thread: std::sync::OnceLock::new(),
        });
        let flusher = Py::new(
            event_loop.py(),
            Flush {
                shared: Arc::downgrade(&shared),
            },
        )?;
        let _ = shared.flusher.set(flusher.into_any());
        Ok(shared)
    }

    /// A new asyncio future of the engine's loop (loop thread only).
    pub fn future(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.create_future.call0(py)
    }

    /// Sets the reason phrase uvicorn would write for this response's status.
    pub fn set_reason<B>(&self, response: &mut hyper::Response<B>) {
        let index = usize::from(response.status().as_u16()).checked_sub(100);
        if let Some(Some(phrase)) = index.and_then(|i| self.reasons.get(i)) {
            response.extensions_mut().insert(phrase.clone());
        }
    }

    /// Hands `response` to its connection at the end of this loop iteration (called with the
    /// GIL, on the loop thread). If the flush cannot be scheduled, or the caller is not the
    /// loop thread, it is sent at once.
    pub fn deliver(&self, py: Python<'_>, outgoing: Outgoing) {
        if self.loop_thread.get() != Some(&std::thread::current().id()) {
            let (tx, response) = outgoing;
            let _ = tx.send(response);
            return;
        }
        lock(&self.outbox).push(outgoing);
        self.flush_soon(py);
    }

    /// Schedules a flush of the outbox on the loop (`call_soon`) unless one is scheduled
    /// already (loop thread only). The dispatcher calls it once it has spawned a drained
    /// batch's requests: the flush then runs after their tasks' first steps, in the same loop
    /// iteration, and carries every response they made there. If it cannot be scheduled, the
    /// outbox is flushed at once.
    pub fn flush_soon(&self, py: Python<'_>) {
        if self.flush_scheduled.swap(true, Ordering::Relaxed) {
            return;
        }
        let scheduled = self
            .flusher
            .get()
            .map(|flusher| self.call_soon.call1(py, (flusher.clone_ref(py),)).is_ok())
            .unwrap_or(false);
        if !scheduled {
            self.flush();
        }
    }

    /// Sends every response in the outbox to its connection.
    pub fn flush(&self) {
        self.flush_scheduled.store(false, Ordering::Relaxed);
        let batch = std::mem::take(&mut *lock(&self.outbox));
        for (tx, response) in batch {
            let _ = tx.send(response);
        }
    }

    /// Completes `future` on the loop thread with the value `build` makes there.
    pub fn resolve(&self, future: Py<PyAny>, build: Build) {
        self.inbox.push(Event::Resolve(future, build));
    }

    /// Runs on the loop thread when the wake fd is readable: completes the futures that tokio
    /// resolved and returns the new protocol objects (one per request or websocket).
    pub fn drain(&self, py: Python<'_>) -> Vec<Py<PyAny>> {
        self.loop_thread.get_or_init(|| std::thread::current().id());
        let mut spawned = Vec::new();
        let mut events = self.inbox.take();
        for event in events.drain(..) {
            let result = match event {
                Event::Spawn(build) => build(py).map(|protocol| spawned.push(protocol)),
                Event::Resolve(future, build) => resolve_future(py, &future, build),
                Event::Run(run) => run(py),
            };
            if let Err(err) = result {
                // One bad event must not lose the rest of the batch.
                err.write_unraisable(py, None);
            }
        }
        self.inbox.recycle(events);
        spawned
    }
}

/// The phrase of each status code (100 to 999) hyper must be told: uvicorn's (`reasons`, else
/// empty) where it differs from the one hyper writes without being told (its canonical phrase,
/// else `<none>`).
fn reason_table(reasons: &HashMap<u16, ReasonPhrase>) -> Box<[Option<ReasonPhrase>]> {
    (100..=999u16)
        .map(|code| {
            let phrase = reasons
                .get(&code)
                .cloned()
                .unwrap_or_else(|| ReasonPhrase::from_static(b""));
            let hypers = StatusCode::from_u16(code)
                .ok()
                .and_then(|status| status.canonical_reason());
            (hypers.map(str::as_bytes) != Some(phrase.as_bytes())).then_some(phrase)
        })
        .collect()
}

/// Locks `m`, going on with its data if a holder panicked.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn phrase(table: &[Option<ReasonPhrase>], code: u16) -> Option<&[u8]> {
        table[usize::from(code) - 100]
            .as_ref()
            .map(ReasonPhrase::as_bytes)
    }

    #[test]
    fn only_phrases_hyper_would_not_write_are_kept() {
        let reasons: HashMap<u16, ReasonPhrase> = [
            (200, "OK"),
            (404, "Not Found"),
            (413, "Content Too Large"),
            (418, "I'm a Teapot"),
        ]
        .into_iter()
        .map(|(code, text)| (code, ReasonPhrase::try_from(text.as_bytes()).unwrap()))
        .collect();
        let table = reason_table(&reasons);
        assert_eq!(table.len(), 900);
        // hyper writes these itself, the same
        assert_eq!(phrase(&table, 200), None);
        assert_eq!(phrase(&table, 404), None);
        // uvicorn's differ from hyper's ("Payload Too Large", "I'm a teapot")
        assert_eq!(phrase(&table, 413), Some(&b"Content Too Large"[..]));
        assert_eq!(phrase(&table, 418), Some(&b"I'm a Teapot"[..]));
        // not in the table: empty, where hyper has a phrase of its own or writes `<none>`
        assert_eq!(phrase(&table, 500), Some(&b""[..]));
        assert_eq!(phrase(&table, 599), Some(&b""[..]));
    }
}
