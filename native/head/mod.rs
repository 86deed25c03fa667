//! Each request head's raw bytes, checked before hyper parses them: what uvicorn (httptools)
//! refuses with `400 Invalid HTTP request received.` and hyper would take (bare LF line ends,
//! equal `Content-Length` lines, `Content-Length` beside `Transfer-Encoding`: RFC 9112 and
//! 9110 allow hyper's choices, which hide them from the `Request` it hands over) or refuse
//! with its own empty 400 (obs-fold, a bad `Content-Length` or `Transfer-Encoding`, a bad
//! request line).
//!
//! [`HeadGuard`] wraps a connection's stream and looks at the bytes hyper reads, in hyper's
//! buffer, as they come: each head (`parse::check`), then its body, counted as hyper frames it
//! (a chunked one followed through its size lines), then the next head, pipelined or not. The
//! [`Gate`] tells the connection's service, per request in order, whether its head was
//! refused. A refused head never reaches hyper: it gets a stand-in `GET / HTTP/1.1`, which the
//! service answers with uvicorn's 400 (the connection then closes), and nothing after it. A
//! head split over reads is gathered until its end, refused as soon as its start is (garbage
//! is answered at once), and handed to hyper as it is beyond the listener's head limit (431).
//! A chunked body that httptools would refuse fails the read once, which hyper hands the app
//! as a body error (a framing error: `asgi::framing`). After a head that may switch protocols
//! (`Upgrade`, `CONNECT`) and its body, nothing more is handed out until the service answered
//! it; after a switch (101) bytes only pass through. In the common case (whole heads in a
//! read) nothing is copied.

mod parse;

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BytesMut};
use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, ReadBuf};

use parse::{check, Chunks, Framing, Head, Partial};

/// What hyper is handed instead of a refused head: any head it parses will do.
const STAND_IN: &[u8] = b"GET / HTTP/1.1\r\n\r\n";

/// hyper's largest read buffer by default (`max_buf_size`): a head that does not end within
/// it is answered 431.
pub const HYPER_MAX_HEAD: usize = 8192 + 4096 * 100;

const NONE: u64 = u64::MAX;
const WAITING: u8 = 0;
const SWITCHED: u8 = 1;
const NOT_SWITCHED: u8 = 2;

/// What a connection's [`HeadGuard`] and its service share. Requests are numbered from 0 in
/// the order hyper hands them over, which is the order of their heads.
pub struct Gate {
    /// Heads the guard has looked at (and accepted, up to `refused_from`).
    seen: AtomicU64,
    /// The first refused one (`NONE`: none).
    refused_from: AtomicU64,
    /// Requests hyper has handed the service.
    served: AtomicU64,
    /// The request that may switch protocols, whose answer the guard waits for (`NONE`).
    awaited: AtomicU64,
    /// What its answer did: `WAITING`, `SWITCHED`, `NOT_SWITCHED`.
    outcome: AtomicU8,
    waker: AtomicWaker,
}

impl Default for Gate {
    fn default() -> Self {
        Self {
            seen: AtomicU64::new(0),
            refused_from: AtomicU64::new(NONE),
            served: AtomicU64::new(0),
            awaited: AtomicU64::new(NONE),
            outcome: AtomicU8::new(WAITING),
            waker: AtomicWaker::new(),
        }
    }
}

impl Gate {
    /// Called as hyper hands over a request: its number, and whether it must be refused
    /// (its head was refused, or the guard did not see it: then they disagree on where heads
    /// end, and whatever hyper made of the bytes is refused).
    pub fn head_parsed(&self) -> (u64, bool) {
        let n = self.served.fetch_add(1, Ordering::Relaxed);
        let refused = n >= self.seen.load(Ordering::Acquire)
            || n >= self.refused_from.load(Ordering::Acquire);
        (n, refused)
    }

    /// Whether a request answered switched protocols: the connection speaks another one.
    pub fn switched(&self) -> bool {
        self.outcome.load(Ordering::Acquire) == SWITCHED
    }

    /// Request `n` was answered; `switched`: the connection now speaks another protocol
    /// (101, or 2xx to `CONNECT`). The guard, if it waits on `n`, goes on.
    pub fn answered(&self, n: u64, switched: bool) {
        if self.awaited.load(Ordering::Acquire) == n {
            let outcome = if switched { SWITCHED } else { NOT_SWITCHED };
            self.outcome.store(outcome, Ordering::Release);
            self.waker.wake();
        }
    }
}

/// Where the guard is in the connection's byte stream.
#[derive(Debug)]
enum Mode {
    /// At the start of a head.
    Head,
    /// Inside a body of this many more bytes; then (`wait`) wait on the switch.
    Body { left: u64, wait: bool },
    /// Inside a chunked body; then (`wait`) wait on the switch.
    Chunked { chunks: Chunks, wait: bool },
    /// After a request that may switch protocols: nothing is handed out until it is answered.
    Await,
    /// Bytes only pass through: after a switch, or a head over the limit.
    Through,
    /// A chunked body turned out malformed: the next read fails.
    Failing,
    /// After a refused head, or a malformed chunked body (whose read failed once: the app
    /// gets `http.disconnect`, the client uvicorn's 400 if no response started): nothing
    /// more, the connection closes after the answer.
    Refused,
}

/// What to do with bytes just put in hyper's buffer, after the first `n` (handed out).
enum Cut {
    All,
    /// The rest starts a head: gather it.
    Gather(usize),
    /// The rest waits on a switch of protocols.
    Hold(usize),
    /// The rest starts a refused head: hyper gets the stand-in instead, and nothing more.
    Refuse(usize),
    /// The body is malformed there: what comes before goes out, then reading fails.
    Fail(usize),
}

/// A connection's stream whose request heads are checked before hyper reads them.
pub struct HeadGuard<S> {
    inner: S,
    gate: Arc<Gate>,
    mode: Mode,
    /// Heads looked at so far.
    heads: u64,
    /// Largest head gathered (the listener's head limit).
    limit: usize,
    /// A head read in parts, gathered until its end (`partial` looks at it as it comes).
    head: BytesMut,
    partial: Partial,
    /// Bytes to hand out as they are, before anything else (a gathered head, the stand-in).
    ready: BytesMut,
    /// Bytes read and not yet looked at, handed out (and looked at) before reading more.
    held: BytesMut,
}

impl<S> HeadGuard<S> {
    pub fn new(inner: S, gate: Arc<Gate>, limit: usize) -> Self {
        Self {
            inner,
            gate,
            mode: Mode::Head,
            heads: 0,
            limit,
            head: BytesMut::new(),
            partial: Partial::default(),
            ready: BytesMut::new(),
            held: BytesMut::new(),
        }
    }

    /// Looks at bytes about to be handed out: how far they may go.
    fn look(&mut self, data: &[u8]) -> Cut {
        let mut at = 0;
        while at < data.len() {
            let rest = &data[at..];
            match &mut self.mode {
                Mode::Through | Mode::Refused | Mode::Failing => return Cut::All,
                Mode::Await => return Cut::Hold(at),
                Mode::Body { left, wait } => {
                    let n = usize::try_from(*left).map_or(rest.len(), |left| left.min(rest.len()));
                    *left -= n as u64;
                    at += n;
                    if *left == 0 {
                        self.mode = after_body(*wait);
                    }
                }
                Mode::Chunked { chunks, wait } => match chunks.feed(rest) {
                    Ok(Some(end)) => {
                        at += end;
                        self.mode = after_body(*wait);
                    }
                    Ok(None) => return Cut::All,
                    Err(()) => {
                        self.mode = Mode::Failing;
                        self.held.clear();
                        return Cut::Fail(at);
                    }
                },
                Mode::Head => match check(rest) {
                    None => return Cut::Gather(at),
                    Some(head) if head.refused => {
                        self.refuse();
                        return Cut::Refuse(at);
                    }
                    Some(head) => {
                        at += head.end;
                        self.accept(&head);
                    }
                },
            }
        }
        Cut::All
    }

    /// A head was accepted: the service will be told so, and its body is next.
    fn accept(&mut self, head: &Head) {
        let n = self.heads;
        self.heads += 1;
        self.gate.seen.store(self.heads, Ordering::Release);
        if head.upgrade {
            self.gate.outcome.store(WAITING, Ordering::Relaxed);
            self.gate.awaited.store(n, Ordering::Release);
        }
        self.mode = match head.framing {
            Framing::Length(0) => after_body(head.upgrade),
            Framing::Length(left) => Mode::Body {
                left,
                wait: head.upgrade,
            },
            Framing::Chunked => Mode::Chunked {
                chunks: Chunks::default(),
                wait: head.upgrade,
            },
        };
    }

    /// A head was refused: the service will be told so; nothing after it is looked at.
    fn refuse(&mut self) {
        let n = self.heads;
        self.heads += 1;
        self.gate.refused_from.store(n, Ordering::Release);
        self.gate.seen.store(self.heads, Ordering::Release);
        self.mode = Mode::Refused;
        self.head.clear();
        self.held.clear();
    }

    /// The head being gathered grew: hand it out (or its stand-in) once it ended, refuse it
    /// as soon as its start is refused, hand it over as it is beyond the limit.
    fn gathering(&mut self) {
        match self.partial.feed(&self.head) {
            Some(found) => {
                let mut rest = self.head.split_off(found.end);
                let head = self.head.split();
                if !rest.is_empty() {
                    rest.unsplit(self.held.split()); // back in front of what was held
                    self.held = rest;
                }
                if found.refused {
                    self.refuse();
                    self.ready = BytesMut::from(STAND_IN);
                } else {
                    self.accept(&found);
                    self.ready = head;
                }
            }
            None if self.partial.refused() => {
                self.refuse();
                self.ready = BytesMut::from(STAND_IN);
            }
            None if self.head.len() >= self.limit => {
                // longer than the limit: hyper gets it as it is (and answers 431)
                self.ready = self.head.split();
                self.mode = Mode::Through;
            }
            None => {}
        }
    }
}

fn after_body(wait: bool) -> Mode {
    if wait {
        Mode::Await
    } else {
        Mode::Head
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for HeadGuard<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            if !this.ready.is_empty() {
                let n = this.ready.len().min(buf.remaining());
                buf.put_slice(&this.ready[..n]);
                this.ready.advance(n);
                return Poll::Ready(Ok(()));
            }
            match this.mode {
                Mode::Refused => return Poll::Pending, // not the end of the stream: hyper answers
                Mode::Failing => {
                    this.mode = Mode::Refused;
                    return Poll::Ready(Err(malformed_body()));
                }
                _ => {}
            }
            if let Mode::Await = this.mode {
                this.gate.waker.register(cx.waker());
                this.mode = match this.gate.outcome.load(Ordering::Acquire) {
                    SWITCHED => Mode::Through,
                    NOT_SWITCHED => Mode::Head,
                    _ => return Poll::Pending,
                };
                this.gate.awaited.store(NONE, Ordering::Release);
            }
            let before = buf.filled().len();
            let from_held = !this.held.is_empty();
            if from_held {
                let n = this.held.len().min(buf.remaining());
                buf.put_slice(&this.held[..n]);
            } else {
                ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
            }
            let new = &buf.filled()[before..];
            if new.is_empty() {
                // the end of the stream: hyper gets what there is of a head, then the end
                if this.head.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                this.ready = this.head.split();
                this.mode = Mode::Through;
                continue;
            }
            // The new bytes: the first `out` are handed out; with `gather`, the rest goes into
            // the head being gathered, else it is held (looked at next time).
            let (out, gather) = if this.head.is_empty() {
                match this.look(new) {
                    Cut::All if !from_held => return Poll::Ready(Ok(())), // the common case
                    Cut::All => (new.len(), false),
                    Cut::Hold(n) => (n, false),
                    Cut::Gather(n) => {
                        this.partial = Partial::default();
                        (n, true)
                    }
                    Cut::Refuse(n) => {
                        // `look` dropped what was held: the connection closes after this
                        buf.set_filled(before + n);
                        if buf.remaining() >= STAND_IN.len() {
                            buf.put_slice(STAND_IN);
                        } else {
                            this.ready = BytesMut::from(STAND_IN);
                        }
                        return Poll::Ready(Ok(()));
                    }
                    Cut::Fail(n) => {
                        buf.set_filled(before + n);
                        if n > 0 {
                            return Poll::Ready(Ok(()));
                        }
                        this.mode = Mode::Refused;
                        return Poll::Ready(Err(malformed_body()));
                    }
                }
            } else {
                (0, true)
            };
            let used = if gather { new.len() } else { out };
            if gather {
                this.head.extend_from_slice(&new[out..]);
            }
            if from_held {
                this.held.advance(used);
            } else if used < new.len() {
                this.held.extend_from_slice(&new[used..]);
            }
            buf.set_filled(before + out);
            if gather {
                this.gathering();
            }
            if out > 0 {
                return Poll::Ready(Ok(()));
            }
        }
    }
}

/// What reading gives once a chunked body turned out malformed: the body's error, a framing
/// error for `asgi::framing::is_framing_error`.
fn malformed_body() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "malformed chunked body")
}

forward_write!(HeadGuard);

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// A stream that gives at most `step` bytes per read.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl AsyncRead for Trickle<'_> {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let n = self.step.min(self.data.len()).min(buf.remaining());
            buf.put_slice(&self.data[..n]);
            self.get_mut().data = &self.data[n..];
            Poll::Ready(Ok(()))
        }
    }

    /// Reads `input` (`step` bytes per socket read, into a buffer of `room`) through a guard,
    /// as hyper would: the bytes it gets and, for `requests` requests, the verdicts.
    fn through(input: &[u8], requests: usize, step: usize, room: usize) -> (Vec<u8>, Vec<bool>) {
        let gate = Arc::new(Gate::default());
        let mut guard = HeadGuard::new(Trickle { data: input, step }, gate.clone(), 1024);
        let (mut out, mut buf) = (Vec::new(), vec![0; room]);
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        loop {
            let mut read = ReadBuf::new(&mut buf);
            match Pin::new(&mut guard).poll_read(&mut cx, &mut read) {
                Poll::Ready(Ok(())) if read.filled().is_empty() => break,
                Poll::Ready(Ok(())) => out.extend_from_slice(read.filled()),
                Poll::Ready(Err(error)) => panic!("{error}"),
                Poll::Pending => break, // waiting: after a refused head
            }
        }
        let verdicts = (0..requests).map(|_| gate.head_parsed().1).collect();
        (out, verdicts)
    }

    const SPLITS: [(usize, usize); 7] = [
        (1, 8192),
        (3, 2),
        (7, 8192),
        (13, 5),
        (64, 8192),
        (4096, 8192),
        (4096, 5),
    ];

    #[test]
    fn pipelined_heads_are_each_checked_once() {
        let input = b"GET /a HTTP/1.1\r\n\r\n\
            POST /b HTTP/1.1\r\nContent-Length: 4\r\n\r\n\n\n\n\n\
            POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n\n\n\r\n0\r\n\r\n\
            \r\nGET /d HTTP/1.1\r\n\r\n";
        for (step, room) in SPLITS {
            let (out, verdicts) = through(input, 5, step, room);
            assert_eq!(
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(input),
                "{step} {room}"
            );
            // the bare LFs in the bodies are not the heads'; a fifth request was never seen
            assert_eq!(
                verdicts,
                [false, false, false, false, true],
                "{step} {room}"
            );
        }
    }

    #[test]
    fn a_refused_head_reaches_hyper_as_the_stand_in_and_nothing_after() {
        let good = &b"GET /a HTTP/1.1\r\n\r\n"[..];
        let post = &b"POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"[..];
        for bad in [
            &b"GET /e HTTP/1.1\nX: y\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\n",
        ] {
            let input = [good, post, bad, good].concat();
            for (step, room) in SPLITS {
                let (out, verdicts) = through(&input, 3, step, room);
                assert_eq!(verdicts, [false, false, true], "{step} {room}");
                assert_eq!(out, [good, post, STAND_IN].concat(), "{step} {room}");
            }
        }
    }

    #[test]
    fn a_head_over_the_limit_reaches_hyper_as_it_is() {
        let input = [
            &b"GET / HTTP/1.1\r\nX: "[..],
            &[b'y'; 2000],
            b"\r\n\r\nGET / HTTP/1.1\n\n",
        ]
        .concat();
        let (out, verdicts) = through(&input, 1, 100, 8192);
        assert_eq!(out, input);
        assert_eq!(verdicts, [true]);
    }

    #[tokio::test]
    async fn after_a_switch_bytes_pass_through_and_without_one_heads_are_checked_again() {
        let head = &b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"[..];
        let after = &b"\x81\x02\n\n\r\n\r\n"[..];
        for switched in [true, false] {
            let gate = Arc::new(Gate::default());
            let input = [head, after].concat();
            let mut guard = HeadGuard::new(&input[..], gate.clone(), 1024);
            let mut buf = [0; 64];
            assert_eq!(guard.read(&mut buf).await.unwrap(), head.len());
            // nothing more until the request is answered
            let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
            let mut none = ReadBuf::new(&mut buf);
            assert!(Pin::new(&mut guard)
                .poll_read(&mut cx, &mut none)
                .is_pending());
            assert_eq!(gate.head_parsed(), (0, false));
            gate.answered(0, switched);
            let n = guard.read(&mut buf).await.unwrap();
            if switched {
                assert_eq!(&buf[..n], after);
                assert!(matches!(guard.mode, Mode::Through));
            } else {
                // the bytes were looked at as a head: refused (bare LFs), the stand-in instead
                assert_eq!(&buf[..n], STAND_IN);
                assert!(matches!(guard.mode, Mode::Refused));
                assert_eq!(gate.head_parsed(), (1, true));
            }
        }
    }

    #[test]
    fn a_malformed_chunked_body_fails_the_read_once() {
        let head = &b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"[..];
        let input = [
            head,
            b"3\r\nabc\r\n3 \r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n",
        ]
        .concat();
        let gate = Arc::new(Gate::default());
        let mut guard = HeadGuard::new(
            Trickle {
                data: &input,
                step: head.len() + 8,
            },
            gate,
            1024,
        );
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        let mut buf = [0; 256];
        let mut read = |guard: &mut HeadGuard<Trickle<'_>>| {
            let mut read = ReadBuf::new(&mut buf);
            Pin::new(guard)
                .poll_read(&mut cx, &mut read)
                .map_ok(|()| read.filled().to_vec())
        };
        assert!(
            matches!(read(&mut guard), Poll::Ready(Ok(bytes)) if bytes == input[..head.len() + 8])
        );
        let failed = read(&mut guard);
        assert!(
            matches!(&failed, Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::InvalidData),
            "{failed:?}"
        );
        assert!(read(&mut guard).is_pending());
    }

    #[test]
    fn the_end_of_the_stream_hands_over_a_partial_head() {
        let input = b"GET / HTTP/1.1\r\nHost: x";
        let (out, verdicts) = through(input, 1, 5, 8192);
        assert_eq!(out, input);
        assert_eq!(verdicts, [true]);
    }
}
