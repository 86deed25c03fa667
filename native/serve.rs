//! Accepting connections and serving HTTP/1.1 or HTTP/2 on them with hyper (over TLS when the
//! listener has it), until told to stop.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::rt::bounds::Http2ServerConnExec;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper::service::HttpService;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::sync::{mpsc, watch, Notify};

use crate::asgi;
use crate::backoff::AcceptBackoff;
use crate::body::ResBody;
use crate::conn_io::{ConnIo, ConnState, HeadTimeouts};
use crate::head::{Gate, HeadGuard, HYPER_MAX_HEAD};
use crate::inbox::Event;
use crate::listener::{Listener, Stream};
use crate::metrics::{Gauged, Held, Note, Tier, Timing};
use crate::router::MirrorSlot;
use crate::shared::EngineShared;
use crate::site::{ConnCloser, ConnInfo, Local, Site};
use crate::tls;

/// After a shutdown began and nothing is in flight on a connection, how long hyper gets to
/// flush what it has and close it; a head only partly sent is dropped then (uvicorn closes
/// those at once).
const FLUSH_GRACE: Duration = Duration::from_millis(300);

/// After a shutdown began, how long a connection that has just answered (or was just accepted)
/// is given to send its next request, which is answered with `connection: close`. A keep-alive
/// client under load sends it at once, and may have sent it already: closing the connection
/// then loses it (the client sees EOF or a reset on a request it sent). Connections idle for
/// longer are closed at once, as uvicorn closes idle connections.
const IDLE_GRACE: Duration = Duration::from_millis(100);

/// After a shutdown began, how long (from its accept) a connection accepted before gets to
/// finish its TLS handshake and send its first request.
const OPENING_GRACE: Duration = Duration::from_secs(1);

/// One accepted connection as its requests see it: its addresses and site, its listener's
/// route mirror, and its requests in flight.
struct Connection {
    info: ConnInfo,
    mirror: Arc<MirrorSlot>,
    /// Requests being answered: from their head to the end of their response body.
    in_flight: AtomicUsize,
    none_in_flight: Notify,
    some_in_flight: Notify,
    /// When it was accepted, and when (nanoseconds after that) its last response ended.
    accepted_at: Instant,
    idle_at: AtomicU64,
    /// Requests started on this connection.
    started: AtomicU64,
    /// With TLS, [`OPENING_GRACE`] after the accept: until then a shutdown waits for its first
    /// request (a client that has just finished its handshake is about to send it).
    opening_until: Option<Instant>,
    /// Set once it answered 413 (maybe before the body came): it closes lingering.
    lingers: AtomicBool,
    /// Each request head's raw-byte verdict (`native/head.rs`); HTTP/1.1 only.
    gate: Arc<Gate>,
    /// Whether the connection speaks HTTP/2 (its requests are not in order, nor framed as
    /// the gate reads them).
    h2: bool,
}

impl ConnState for Connection {
    fn busy(&self) -> bool {
        Connection::busy(self)
    }

    fn started(&self) -> u64 {
        self.started.load(Ordering::SeqCst)
    }

    fn timeout_answer(&self) -> Bytes {
        asgi::canned::request_timeout_bytes(&self.info.site.defaults)
    }

    fn lingers(&self) -> bool {
        self.lingers.load(Ordering::Relaxed)
    }

    fn switched(&self) -> bool {
        !self.h2 && self.gate.switched()
    }

    fn idle_since(&self) -> Instant {
        self.accepted_at + Duration::from_nanos(self.idle_at.load(Ordering::SeqCst))
    }
}

impl Connection {
    fn busy(&self) -> bool {
        self.in_flight.load(Ordering::SeqCst) > 0
    }

    /// Resolves once no request has been in flight, nor started, for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        loop {
            self.idle().await;
            let started = self.started.load(Ordering::SeqCst);
            tokio::time::sleep(timeout).await;
            if !self.busy() && self.started.load(Ordering::SeqCst) == started {
                return;
            }
        }
    }

    /// Resolves once no request is in flight.
    async fn idle(&self) {
        loop {
            let notified = self.none_in_flight.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !self.busy() {
                return;
            }
            notified.await;
        }
    }

    /// After a shutdown began: resolves once a request is in flight (hyper then answers it with
    /// `connection: close`) or the connection has been idle for [`IDLE_GRACE`] (at once if it
    /// already was); the caller polls the connection meanwhile.
    async fn settle(&self) {
        let idle_at = Duration::from_nanos(self.idle_at.load(Ordering::SeqCst));
        let mut deadline = self.accepted_at + idle_at + IDLE_GRACE;
        if let Some(opening) = self.opening_until.filter(|_| self.started() == 0) {
            deadline = deadline.max(opening); // its first request, after a handshake
        }
        let deadline = tokio::time::Instant::from_std(deadline);
        loop {
            let notified = self.some_in_flight.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.busy() {
                return;
            }
            tokio::select! {
                () = notified => {}
                () = tokio::time::sleep_until(deadline) => return,
            }
        }
    }
}

/// A request in flight on its connection (and its listener), until dropped with its
/// response body.
struct InFlight(
    Arc<Connection>,
    #[expect(dead_code, reason = "held for its Drop")] Held,
);

impl InFlight {
    fn new(conn: &Arc<Connection>) -> Self {
        let held = Held::new(conn.info.site.metrics.as_ref(), Gauged::InFlight);
        if conn.in_flight.fetch_add(1, Ordering::SeqCst) == 0 {
            conn.some_in_flight.notify_waiters();
        }
        conn.started.fetch_add(1, Ordering::SeqCst);
        conn.info
            .site
            .limits
            .in_flight
            .fetch_add(1, Ordering::Relaxed);
        Self(conn.clone(), held)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0
            .info
            .site
            .limits
            .in_flight
            .fetch_sub(1, Ordering::Relaxed);
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            let idle_at = self.0.accepted_at.elapsed().as_nanos();
            self.0
                .idle_at
                .store(u64::try_from(idle_at).unwrap_or(u64::MAX), Ordering::SeqCst);
            self.0.none_in_flight.notify_waiters();
        }
    }
}

/// Counted among the listener's open connections while alive.
struct Open(
    Arc<Site>,
    #[expect(dead_code, reason = "held for its Drop")] Held,
);

impl Open {
    fn new(site: &Arc<Site>) -> Self {
        site.limits.connections.fetch_add(1, Ordering::Relaxed);
        Self(
            site.clone(),
            Held::new(site.metrics.as_ref(), Gauged::Connection),
        )
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.limits.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Calls `name` on the listener's handler on the loop thread (a log line, a shutdown).
fn tell_handler(shared: &EngineShared, site: &Arc<Site>, name: &'static str, arg: u64) {
    let site = site.clone();
    shared.inbox.push(Event::Run(Box::new(move |py| {
        site.handler.call_method1(py, name, (arg,))?;
        Ok(())
    })));
}

/// The response body, holding its request's place in flight until hyper is done with it.
struct Tracked {
    body: ResBody,
    _in_flight: InFlight,
    /// Observes the request's duration with the end of its body (with `--metrics-port`).
    _timing: Option<Timing>,
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// An accepted connection about to be served: its TLS handshake (if any), then HTTP/1.1 or
/// HTTP/2 (by ALPN, or the h2c preface in cleartext) until it ends or the listener closes.
struct Accepted {
    shared: Arc<EngineShared>,
    site: Arc<Site>,
    mirror: Arc<MirrorSlot>,
    closing: watch::Receiver<bool>,
    accepted_at: Instant,
    /// Holds the listener's shutdown open, and counts the connection as open.
    _alive: (mpsc::Sender<()>, Open),
}

impl Accepted {
    /// `step` (a TLS handshake, the look for the h2c preface), given until `grace` after the
    /// accept once the listener closes (`None` if it takes longer). A connection accepted just
    /// before (a worker told to stop takes some from the shared socket until it sees that) has
    /// a client waiting for its answer: dropped at once, a TLS client sees EOF in the middle of
    /// its handshake.
    async fn opening<F: Future>(&mut self, step: F, grace: Duration) -> Option<F::Output> {
        let deadline = tokio::time::Instant::from_std(self.accepted_at + grace);
        tokio::pin!(step);
        tokio::select! {
            done = step.as_mut() => return Some(done),
            _ = self.closing.wait_for(|c| *c) => {}
        }
        tokio::time::timeout_at(deadline, step).await.ok()
    }

    async fn serve(mut self, stream: Stream, peer: Option<SocketAddr>, local: Local) {
        let site = self.site.clone();
        let (stream, h2) = match site.tls.as_ref() {
            Some(tls) => match self.opening(tls.accept(stream), OPENING_GRACE).await {
                Some(Ok((tls, h2))) => (Stream::Tls(Box::new(tls)), h2),
                // a failed or slow handshake, or still under way long after the listener closed
                Some(Err(_)) | None => return,
            },
            None => {
                let h2 = match (&stream, site.h2) {
                    (Stream::Tcp(tcp), true) => {
                        // a connection just accepted gets its first request answered, as
                        // one that has just answered (`drive`)
                        let looked = tls::starts_with_h2_preface(tcp, site.timeout_keep_alive);
                        match self.opening(looked, IDLE_GRACE).await {
                            Some(Some(h2)) => h2,
                            // silent for the keep-alive timeout, or since the listener closed
                            Some(None) | None => return,
                        }
                    }
                    _ => false,
                };
                (stream, h2)
            }
        };
        let conn = Arc::new(Connection {
            info: ConnInfo {
                peer,
                local,
                site: site.clone(),
                closer: Arc::new(ConnCloser::default()),
            },
            mirror: self.mirror.clone(),
            in_flight: AtomicUsize::new(0),
            none_in_flight: Notify::new(),
            some_in_flight: Notify::new(),
            accepted_at: Instant::now(),
            idle_at: AtomicU64::new(0),
            started: AtomicU64::new(0),
            opening_until: site.tls.is_some().then(|| self.accepted_at + OPENING_GRACE),
            lingers: AtomicBool::new(false),
            gate: Arc::new(Gate::default()),
            h2,
        });
        let shared = self.shared.clone();
        let for_service = conn.clone();
        let service = service_fn(move |req: Request<Incoming>| {
            let verdict = if for_service.h2 {
                (0, false)
            } else {
                for_service.gate.head_parsed()
            };
            dispatch(req, shared.clone(), for_service.clone(), verdict)
        });
        if h2 {
            let mut builder = http2::Builder::new(TokioExecutor::new());
            builder
                .timer(TokioTimer::new())
                .auto_date_header(site.defaults.date);
            if let Some(max) = site.max_head {
                builder.max_header_list_size(u32::try_from(max).unwrap_or(u32::MAX));
            }
            let io = TokioIo::new(ConnIo::new(stream, conn.clone(), None));
            let connection = builder.serve_connection(io, service);
            // HTTP/2 has no header read timeout: an idle connection is closed (GOAWAY) after
            // the keep-alive timeout, as uvicorn closes an idle HTTP/1.1 one.
            let idle = Some(site.timeout_keep_alive);
            self.drive(connection, &conn, idle).await;
            return;
        }
        // The keep-alive timeout runs from the end of the previous response (or the
        // connection's start) to the end of the next head (uvicorn's keep-alive timeout, which
        // also bounds how long a head may take to arrive): timed by `ConnIo`.
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .auto_date_header(site.defaults.date);
        if let Some(max) = site.max_head {
            builder.max_buf_size(max); // a head beyond it: hyper answers 431
        }
        builder.header_read_timeout(None);
        let timeouts = HeadTimeouts {
            idle: site.timeout_keep_alive,
            head: site.head_timeout,
        };
        let io = ConnIo::new(stream, conn.clone(), Some(timeouts));
        // each head checked on its way in (bare LF, smuggling shapes)
        let limit = site.max_head.unwrap_or(HYPER_MAX_HEAD);
        let io = TokioIo::new(HeadGuard::new(io, conn.gate.clone(), limit));
        let connection = builder.serve_connection(io, service).with_upgrades();
        self.drive(connection, &conn, None).await;
    }

    /// Serves `connection` until it ends, the app asks it closed, the listener closes, or (with
    /// `idle`) nothing was asked of it for that long.
    async fn drive<C: Served>(mut self, connection: C, conn: &Connection, idle: Option<Duration>) {
        tokio::pin!(connection);
        // whether the listener's closing may have been told (read without a lock)
        let probe = self.closing.clone();
        tokio::select! {
            () = async { match idle { Some(idle) => conn.idle_for(idle).await, None => std::future::pending().await } } => {
                connection.as_mut().shut();
                let _ = tokio::time::timeout(FLUSH_GRACE, connection.as_mut()).await;
            }
            result = connection.as_mut() => {
                // a head hyper could not parse (answered 400): uvicorn's warning
                if result.is_err_and(|e| e.is_parse() && !e.is_parse_too_large()) {
                    tell_handler(&self.shared, &self.site, "invalid_request", 0);
                }
            }
            () = when_woken(conn.info.closer.asked(), || conn.info.closer.was_asked()) => {
                // The app raised after its response: uvicorn closes the
                // transport once the response is written; so does hyper, told
                // when nothing is in flight (told sooner, it would add
                // `connection: close` to a response not yet written).
                tokio::select! {
                    _ = connection.as_mut() => return,
                    () = conn.idle() => {}
                }
                connection.as_mut().shut();
                let _ = connection.as_mut().await;
            }
            _ = when_woken(async { let _ = self.closing.wait_for(|c| *c).await; }, || probe.has_changed().unwrap_or(true)) => {
                // Idle connections close at once (those that have just answered,
                // after `IDLE_GRACE`); requests in flight finish (within the
                // listener's grace); then hyper gets a moment to flush, and a
                // head only partly sent is dropped.
                tokio::select! {
                    _ = connection.as_mut() => return,
                    () = conn.settle() => {}
                }
                connection.as_mut().shut();
                loop {
                    tokio::select! {
                        _ = connection.as_mut() => break,
                        () = conn.idle() => {}
                    }
                    match tokio::time::timeout(FLUSH_GRACE, connection.as_mut()).await {
                        Err(_) if conn.busy() => {}
                        _ => break,
                    }
                }
            }
        }
    }
}

/// `inner`, polled only when `maybe_ready` says it may be ready or the task's waker is not the
/// one it was last polled with: a pending future has arranged for that waker to be woken, so
/// polling it again on every wake of the connection's task (each read and write of every
/// request) only costs a lock (a `Notify`'s, a watch channel's). `maybe_ready` must be true
/// once what `inner` waits for has happened.
async fn when_woken<F: Future>(inner: F, maybe_ready: impl Fn() -> bool) -> F::Output {
    let mut inner = std::pin::pin!(inner);
    let mut registered: Option<std::task::Waker> = None;
    std::future::poll_fn(move |cx| {
        let same = registered.as_ref().is_some_and(|w| w.will_wake(cx.waker()));
        if same && !maybe_ready() {
            return Poll::Pending;
        }
        let polled = inner.as_mut().poll(cx);
        if polled.is_pending() && !same {
            registered = Some(cx.waker().clone());
        }
        polled
    })
    .await
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A hyper connection being served, of either protocol: a future with a graceful shutdown.
trait Served: Future<Output = hyper::Result<()>> {
    fn shut(self: Pin<&mut Self>);
}

impl<I, S, B> Served for http1::UpgradeableConnection<I, S>
where
    S: HttpService<Incoming, ResBody = B>,
    S::Error: Into<BoxError>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: Body + 'static,
    B::Error: Into<BoxError>,
{
    fn shut(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<I, S, B, E> Served for http2::Connection<I, S, E>
where
    S: HttpService<Incoming, ResBody = B>,
    S::Error: Into<BoxError>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: Body + 'static,
    B::Error: Into<BoxError>,
    E: Http2ServerConnExec<S::Future, B>,
{
    fn shut(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

pub async fn accept_loop(
    listener: Listener,
    shared: Arc<EngineShared>,
    site: Arc<Site>,
    mirror: Arc<MirrorSlot>,
    mut stop: watch::Receiver<Option<Duration>>,
) {
    // Every connection task holds a clone of `alive`; when all are gone, `recv()` ends.
    let (alive, mut all_closed) = mpsc::channel::<()>(1);
    let (closing_tx, closing) = watch::channel(false);
    let mut backoff = AcceptBackoff::default();
    let mut pause: Option<Pin<Box<tokio::time::Sleep>>> = None;
    let grace = loop {
        tokio::select! {
            biased;
            changed = stop.changed() => {
                break if changed.is_ok() { stop.borrow().unwrap_or_default() } else { Duration::ZERO };
            }
            () = async { if let Some(pause) = pause.as_mut() { pause.await } }, if pause.is_some() => {
                pause = None;
            }
            accepted = listener.accept(), if pause.is_none() => match accepted {
                Ok((stream, peer, local)) => {
                    backoff.accepted();
                    let accepted = Accepted {
                        shared: shared.clone(),
                        site: site.clone(),
                        mirror: mirror.clone(),
                        closing: closing.clone(),
                        accepted_at: Instant::now(),
                        _alive: (alive.clone(), Open::new(&site)),
                    };
                    tokio::spawn(accepted.serve(stream, peer, local));
                }
                // Out of file descriptors or similar: pause (`native/backoff.rs`), told once.
                Err(error) => {
                    let (wait, first) = backoff.failed();
                    if first {
                        let errno = error.raw_os_error().unwrap_or(0).unsigned_abs();
                        tell_handler(&shared, &site, "accept_failed", u64::from(errno));
                    }
                    pause = Some(Box::pin(tokio::time::sleep(wait)));
                }
            }
        }
    };
    // closing told before the listener closes: once a connection is refused, every one
    // accepted before knows the shutdown began
    closing_tx.send_replace(true);
    drop(listener);
    drop(alive);
    let _ = tokio::time::timeout(grace, all_closed.recv()).await;
}

/// One request: the `n`th on its connection, `refused` if its head is one uvicorn refuses
/// (`native/head/`). An `Err` makes hyper close the connection without answering (the app
/// sent an invalid response start, which uvicorn answers the same way).
async fn dispatch(
    req: Request<Incoming>,
    shared: Arc<EngineShared>,
    conn: Arc<Connection>,
    (n, refused): (u64, bool),
) -> Result<Response<Tracked>, asgi::http::Aborted> {
    // The clock and the method only for `--metrics-port` (its duration histogram and labels).
    let timed = conn
        .info
        .site
        .metrics
        .is_some()
        .then(|| (Instant::now(), req.method().clone()));
    let mut note = Note::default();
    if refused {
        // before the limits: uvicorn's parser refuses such a head before it counts a request
        tell_handler(&shared, &conn.info.site, "invalid_request", 0);
        let mut response = asgi::canned::invalid_request();
        conn.info.site.defaults.apply(response.headers_mut());
        let in_flight = InFlight::new(&conn);
        return Ok(tracked(response, &conn, in_flight, timed, note));
    }
    let limits = &conn.info.site.limits;
    if limits.count_request() {
        tell_handler(
            &shared,
            &conn.info.site,
            "max_requests_reached",
            limits.requests.load(Ordering::Relaxed),
        );
    }
    let admitted = limits.admit();
    let in_flight = InFlight::new(&conn);
    let connect = req.method() == hyper::Method::CONNECT;
    let defaults = &conn.info.site.defaults;
    let response = if !admitted {
        tell_handler(&shared, &conn.info.site, "concurrency_exceeded", 0);
        let mut response = asgi::canned::service_unavailable();
        defaults.apply(response.headers_mut());
        response
    } else if asgi::ws::is_upgrade(&req) {
        if timed.is_some() {
            note = Note {
                route: conn
                    .mirror
                    .load()
                    .as_ref()
                    .and_then(|m| m.websocket_template(req.uri().path())),
                tier: Tier::Asgi,
            };
        }
        let mut response = asgi::ws::handle(req, shared, &conn.info).await;
        defaults.apply(response.headers_mut());
        response
    } else {
        let note = timed.is_some().then_some(&mut note);
        asgi::http::handle(req, shared, &conn.info, &conn.mirror, note).await?
    };
    if response.status() == hyper::StatusCode::PAYLOAD_TOO_LARGE {
        conn.lingers.store(true, Ordering::Relaxed);
    }
    let status = response.status();
    let switched =
        status == hyper::StatusCode::SWITCHING_PROTOCOLS || (connect && status.is_success());
    if !conn.h2 {
        conn.gate.answered(n, switched);
    }
    Ok(tracked(response, &conn, in_flight, timed, note))
}

/// The response handed to hyper: its body holds the request's place in flight and (with
/// `--metrics-port`) observes its duration when it ends.
fn tracked(
    response: Response<ResBody>,
    conn: &Connection,
    in_flight: InFlight,
    timed: Option<(Instant, hyper::Method)>,
    note: Note,
) -> Response<Tracked> {
    let status = response.status();
    let timing = conn
        .info
        .site
        .metrics
        .as_ref()
        .zip(timed)
        .map(|(m, (started, method))| m.answered(started, &method, status, note));
    response.map(|body| Tracked {
        body,
        _in_flight: in_flight,
        _timing: timing,
    })
}
