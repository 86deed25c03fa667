//! A connection's socket as hyper sees it: request heads timed (the keep-alive timeout, and
//! `--timeout-request-header`, beyond uvicorn, against slowloris), and a lingering close after
//! a 413.
//!
//! Head timing: while no request is in flight, the connection may stay silent for the
//! keep-alive timeout (then it is closed, as uvicorn closes an idle connection). With
//! `--timeout-request-header`, once the first byte of a request head arrives, the whole head
//! has the head timeout; a slower head is answered `408 Request Timeout` and the connection is
//! closed. Without it, the keep-alive timeout bounds the head too and the connection is closed
//! silently (hyper's header read timeout's rule, which this replaces: hyper makes, registers
//! and drops a timer per request; this one timer per connection is moved forward). After a
//! switch of protocols (a websocket) reads are not timed here.
//!
//! Lingering close: a 413 is answered before the client has sent its body, and closing a socket
//! with unread data makes the kernel send a reset, which can destroy the answer before a client
//! that writes its whole body first has read it. So after such an answer the socket is shut
//! for writing and what the client still sends is read and dropped, for a bounded time.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::listener::Stream;

/// At most this long reading what a client still sends after a 413 (nginx's `lingering_time`).
const LINGER_TOTAL: Duration = Duration::from_secs(30);
/// A lingering client silent this long is done (nginx's `lingering_timeout`).
const LINGER_IDLE: Duration = Duration::from_secs(5);

/// What a connection knows of its requests: reads while one is in flight (its head was read,
/// its response is not done) belong to a body or a pipelined request, and are not timed here.
pub trait ConnState: Send + Sync {
    /// Whether a request is in flight.
    fn busy(&self) -> bool;
    /// How many requests have started on the connection so far.
    fn started(&self) -> u64;
    /// The whole `408 Request Timeout` response, as written on the wire.
    fn timeout_answer(&self) -> Bytes;
    /// Whether the connection answered before reading a body (413): close it lingering.
    fn lingers(&self) -> bool;
    /// Whether the connection switched protocols (101, or 2xx to `CONNECT`).
    fn switched(&self) -> bool;
    /// When its last response ended (or it was accepted): the idle clock's start.
    fn idle_since(&self) -> std::time::Instant;
}

/// The two timeouts of head timing.
#[derive(Clone, Copy, Debug)]
pub struct HeadTimeouts {
    /// Silence allowed between requests (`--timeout-keep-alive`).
    pub idle: Duration,
    /// Time allowed for a request head from its first byte (`--timeout-request-header`);
    /// `None`: the idle deadline bounds the head too, and a late head closes silently.
    pub head: Option<Duration>,
}

enum Phase {
    /// A request is in flight (or nothing was read yet since it ended): no deadline applies
    /// (the clock is only kept armed, [`ConnIo::keep_armed`]).
    Off,
    /// Waiting for the first byte of the next head, until the deadline.
    Idle,
    /// A head has started arriving; it must be complete by the deadline.
    Head,
    /// The head took too long: writing the 408 answer (this much of it is written).
    Answering(usize),
}

/// The socket of one connection.
pub struct ConnIo {
    /// `None` only once dropped (handed to the lingering task).
    inner: Option<Stream>,
    state: Arc<dyn ConnState>,
    /// `None`: reads go straight through (hyper times heads).
    timeouts: Option<HeadTimeouts>,
    phase: Phase,
    /// `state.started()` when the phase began: a request started since ends the phase.
    since: u64,
    /// Made when first needed.
    deadline: Option<Pin<Box<Sleep>>>,
    /// The 408 response being written when a head was too slow.
    answer: Bytes,
}

impl ConnIo {
    pub fn new(inner: Stream, state: Arc<dyn ConnState>, timeouts: Option<HeadTimeouts>) -> Self {
        Self {
            inner: Some(inner),
            state,
            timeouts,
            phase: Phase::Off,
            since: 0,
            deadline: None,
            answer: Bytes::new(),
        }
    }

    fn io(&mut self) -> Pin<&mut Stream> {
        Pin::new(
            self.inner
                .as_mut()
                .expect("the socket is there until dropped"),
        )
    }

    fn start(&mut self, phase: Phase, at: Instant) {
        self.phase = phase;
        self.since = self.state.started();
        match &mut self.deadline {
            Some(deadline) => deadline.as_mut().reset(at),
            None => self.deadline = Some(Box::pin(tokio::time::sleep_until(at))),
        }
    }

    /// While a request is in flight: the clock stays armed (its end wakes the connection),
    /// so that the idle clock is looked at after the response even if hyper reads nothing
    /// then (it waits on the socket after a read that found nothing while the request ran).
    fn keep_armed(&mut self, cx: &mut Context<'_>, idle: Duration) {
        let deadline = self
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(Instant::now() + idle)));
        if deadline.as_mut().poll(cx).is_ready() {
            deadline.as_mut().reset(Instant::now() + idle);
            let _ = deadline.as_mut().poll(cx);
        }
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.deadline
            .as_mut()
            .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready())
    }

    /// Writes the 408 answer, then reports the read as timed out (hyper closes the connection).
    fn poll_answer(&mut self, cx: &mut Context<'_>, mut written: usize) -> Poll<io::Result<()>> {
        while written < self.answer.len() {
            let answer = self.answer.clone();
            match self.io().poll_write(cx, &answer[written..]) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => break,
                Poll::Ready(Ok(n)) => written += n,
                Poll::Pending => {
                    self.phase = Phase::Answering(written);
                    return Poll::Pending;
                }
            }
        }
        self.phase = Phase::Answering(self.answer.len());
        let _ = self.io().poll_flush(cx);
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "request head not received within --timeout-request-header",
        )))
    }

    fn poll_timed_read(
        &mut self,
        timeouts: HeadTimeouts,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Phase::Answering(written) = self.phase {
            return self.poll_answer(cx, written);
        }
        if self.state.switched() {
            return self.io().poll_read(cx, buf);
        }
        let busy = self.state.busy();
        if busy || self.state.started() != self.since {
            self.phase = Phase::Off;
        }
        if matches!(self.phase, Phase::Off) && !busy {
            let since = Instant::from_std(self.state.idle_since());
            self.start(Phase::Idle, since + timeouts.idle);
        }
        let before = buf.filled().len();
        match self.io().poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before && matches!(self.phase, Phase::Idle) {
                    match timeouts.head {
                        Some(head) => self.start(Phase::Head, Instant::now() + head),
                        None => self.phase = Phase::Head, // under the idle deadline still
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => {
                if matches!(self.phase, Phase::Off) {
                    self.keep_armed(cx, timeouts.idle);
                    return Poll::Pending;
                }
                if !self.expired(cx) {
                    return Poll::Pending;
                }
                if matches!(self.phase, Phase::Idle) {
                    // Silent past the keep-alive timeout: an end of stream, which hyper takes
                    // as the client closing an idle connection.
                    self.phase = Phase::Off;
                    return Poll::Ready(Ok(()));
                }
                if timeouts.head.is_none() {
                    // hyper's header read timeout closed the connection without an answer
                    self.phase = Phase::Off;
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "request head not received within the keep-alive timeout",
                    )));
                }
                self.phase = Phase::Answering(0);
                self.answer = self.state.timeout_answer();
                self.poll_answer(cx, 0)
            }
        }
    }
}

impl AsyncRead for ConnIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.timeouts {
            None => this.io().poll_read(cx, buf),
            Some(timeouts) => this.poll_timed_read(timeouts, cx, buf),
        }
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().io().poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().io().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.as_ref().is_some_and(Stream::is_write_vectored)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().io().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().io().poll_shutdown(cx)
    }
}

impl Drop for ConnIo {
    fn drop(&mut self) {
        if !self.state.lingers() {
            return;
        }
        let (Some(stream), Ok(runtime)) =
            (self.inner.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        runtime.spawn(linger(stream));
    }
}

/// Shuts `stream` for writing (what was answered is sent, then a FIN) and drops what the client
/// still sends, until it closes, goes quiet or the time is up.
async fn linger(mut stream: Stream) {
    let _ = stream.shutdown().await;
    let mut sink = vec![0u8; 64 * 1024];
    let _ = tokio::time::timeout(LINGER_TOTAL, async {
        while let Ok(Ok(n)) = tokio::time::timeout(LINGER_IDLE, stream.read(&mut sink)).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}
