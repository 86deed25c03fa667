//! Batched handoff from tokio threads to the Python event-loop thread.
//!
//! Tokio threads never take the GIL. They push [`Event`]s here; the first push after a drain
//! writes one byte to a socketpair that the asyncio loop watches (`loop.add_reader`). The loop
//! thread then drains the whole batch at once, under the GIL it already holds.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use pyo3::prelude::*;

/// Builds a Python object on the loop thread, from data gathered on a tokio thread.
pub type Build = Box<dyn FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send>;

pub enum Event {
    /// A new connection-level task for Python (an ASGI http or websocket protocol object).
    Spawn(Build),
    /// Complete an asyncio future created by the loop with the built value.
    Resolve(Py<PyAny>, Build),
    /// A call on the loop thread whose result nobody waits for (an access log line).
    Run(Box<dyn FnOnce(Python<'_>) -> PyResult<()> + Send>),
}

pub struct Inbox {
    queue: Mutex<Vec<Event>>,
    /// A drained batch's buffer, given back emptied ([`Inbox::recycle`]): the next take leaves
    /// it as the queue, so that pushes reuse it rather than allocate a new one per batch.
    spare: Mutex<Vec<Event>>,
    armed: AtomicBool,
    writer: UnixStream,
    reader: UnixStream,
}

impl Inbox {
    pub fn new() -> std::io::Result<Self> {
        let (reader, writer) = UnixStream::pair()?;
        reader.set_nonblocking(true)?;
        writer.set_nonblocking(true)?;
        Ok(Self {
            queue: Mutex::new(Vec::with_capacity(64)),
            spare: Mutex::new(Vec::with_capacity(64)),
            armed: AtomicBool::new(false),
            writer,
            reader,
        })
    }

    /// The file descriptor the event loop watches for readability.
    pub fn fd(&self) -> RawFd {
        self.reader.as_raw_fd()
    }

    pub fn push(&self, event: Event) {
        lock(&self.queue).push(event);
        if !self.armed.swap(true, Ordering::SeqCst) {
            // WouldBlock means the pipe is full, so a wake-up is already pending.
            let _ = (&self.writer).write(&[1]);
        }
    }

    /// Takes every queued event. Order matters: clear the fd, disarm, then take the queue, so
    /// that an event pushed after the take always writes a fresh wake-up byte.
    pub fn take(&self) -> Vec<Event> {
        let mut buf = [0u8; 256];
        while let Ok(n) = (&self.reader).read(&mut buf) {
            if n < buf.len() {
                break;
            }
        }
        self.armed.store(false, Ordering::SeqCst);
        let spare = std::mem::take(&mut *lock(&self.spare));
        std::mem::replace(&mut *lock(&self.queue), spare)
    }

    /// Gives back the buffer of a batch [`Inbox::take`] returned, once its events are handled.
    pub fn recycle(&self, mut batch: Vec<Event>) {
        batch.clear();
        if batch.capacity() <= RECYCLED_CAPACITY {
            *lock(&self.spare) = batch;
        }
    }
}

/// A batch buffer larger than this (after a burst) is freed rather than kept.
const RECYCLED_CAPACITY: usize = 4096;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
