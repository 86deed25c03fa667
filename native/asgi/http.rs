//! ASGI `http` scope: one request, its `receive` and `send`, as uvicorn implements them.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};
use hyper::{Request, Response};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use tokio::sync::{mpsc, oneshot};

use crate::asgi::canned::{content_too_large, internal_error, invalid_request, plain_response};
use crate::asgi::finished::Finished;
use crate::asgi::framing::is_framing_error;
pub(super) use crate::asgi::messages::parse_headers;
use crate::asgi::messages::{
    body_bytes, build_response, complete_response, disconnect_message, more_body, request_message,
    start_message,
};
use crate::awaitable::Ready;
use crate::body::ResBody;
use crate::errors::EngineError;
use crate::inbox::Event;
use crate::metrics::{Note, Tier};
use crate::middleware::Encoders;
use crate::native_tier::{match_to_py, native_match, route, Layers, NativeMatch, Routed};
use crate::request::RequestHead;
use crate::router::MirrorSlot;
use crate::shared::EngineShared;
use crate::site::{ConnCloser, ConnInfo};

/// Bodies announced at most this big are read before the app is called, so that its first
/// `receive()` needs no trip back to tokio.
const PREREAD_LIMIT: u64 = 64 * 1024;
/// How long a request body may go without sending a byte before the client counts as gone.
const BODY_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// Chunks of a streamed response buffered between the app and the socket.
const STREAM_CAPACITY: usize = 16;

enum BodyState {
    Buffered(Bytes),
    /// `None` while a read is in flight.
    Streaming(Option<Incoming>),
    Consumed,
}

enum ResponseState {
    Pending(oneshot::Sender<Response<ResBody>>),
    Started {
        tx: oneshot::Sender<Response<ResBody>>,
        status: StatusCode,
        headers: HeaderMap,
    },
    Streaming(mpsc::Sender<Result<Bytes, io::Error>>, Encoders),
    Done,
}

struct State {
    body: BodyState,
    response: ResponseState,
    /// The app's middleware around this native request (`None`: none, or the ASGI tier).
    layers: Option<Layers>,
}

pub struct HttpShared {
    engine: Arc<EngineShared>,
    head: RequestHead,
    state: Mutex<State>,
    /// Set when the response is complete or the client went away; `receive()` then answers
    /// `http.disconnect`.
    finished: Finished,
    disconnected: AtomicBool,
    /// The app's response start was invalid: the connection is closed without an answer.
    aborted: AtomicBool,
    /// The request body's framing was invalid (a bad chunk): answered 400, the client's error.
    framing_error: AtomicBool,
    /// The body grew past `--limit-request-body` while the app read it: answered 413.
    too_large: AtomicBool,
    /// Body bytes read so far (for `--limit-request-body`).
    received: std::sync::atomic::AtomicU64,
    /// The native route the mirror picked (plan id, raw path parameters), until Python takes it.
    matched: Mutex<Option<NativeMatch>>,
    /// Closes the connection after the response (`close_connection`).
    closer: Arc<ConnCloser>,
    /// Set when Python serves the request natively (`served_natively`): its metrics tier.
    native: AtomicBool,
    /// The response handed over starts with the default headers (`HTTPProtocol.respond`).
    seeded: AtomicBool,
}

impl HttpShared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn client_gone(&self) {
        if !self.finished.is_set() {
            self.disconnected.store(true, Ordering::SeqCst);
        }
        self.finished.set();
    }

    fn is_head(&self) -> bool {
        self.head.method == http::Method::HEAD
    }

    /// The body turned out to be framed wrongly while the app read it: the client gets
    /// uvicorn's 400 if no response has started (else the response is aborted), the
    /// connection closes, and the app sees `http.disconnect` from now on.
    fn reject_framing(&self) {
        self.reject(&self.framing_error, invalid_request);
    }

    /// Counts `more` body bytes read; `true` once they exceed `--limit-request-body`.
    fn over_body_limit(&self, more: usize) -> bool {
        let Some(limit) = self.head.site.max_body else {
            return false;
        };
        let total = self.received.fetch_add(more as u64, Ordering::Relaxed) + more as u64;
        total > limit
    }

    /// `reject_framing` for a body that grew past `--limit-request-body`: 413.
    fn reject_too_large(&self) {
        self.reject(&self.too_large, content_too_large);
    }

    fn reject(&self, flag: &AtomicBool, answer: fn() -> Response<ResBody>) {
        flag.store(true, Ordering::SeqCst);
        let previous = std::mem::replace(&mut self.lock().response, ResponseState::Done);
        match previous {
            ResponseState::Pending(tx) | ResponseState::Started { tx, .. } => {
                let mut response = answer();
                self.engine.set_reason(&mut response);
                let _ = tx.send(response);
            }
            ResponseState::Streaming(chunks, _) => {
                let _ = chunks.try_send(Err(io::Error::other("invalid request body framing")));
            }
            ResponseState::Done => {}
        }
        self.client_gone();
    }
}

/// Dropped with hyper's service future or the streamed body: if the response was not
/// complete by then, the client is gone.
struct Watch(Option<Arc<HttpShared>>);

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(shared) = self.0.take() {
            shared.client_gone();
        }
    }
}

/// One request's response, with the listener's default headers.
pub async fn handle(
    req: Request<Incoming>,
    engine: Arc<EngineShared>,
    conn: &ConnInfo,
    mirror: &MirrorSlot,
    mut note: Option<&mut Note>,
) -> Result<Response<ResBody>, Aborted> {
    let (parts, incoming) = req.into_parts();
    let head = RequestHead::new(parts, conn, false);
    let access = conn.site.access_log.then(|| head.access_line());
    let announced = incoming.size_hint().exact();
    let mut seeded = false;
    let mut result = match conn.site.max_body {
        // Refused before the app runs (and before any of the body is read).
        Some(limit) if announced.is_some_and(|n| n > limit) => {
            let mut refused = content_too_large();
            engine.set_reason(&mut refused);
            Ok(refused)
        }
        _ => {
            let (routed, template) = native_match(&head, mirror, note.is_some());
            if let Some(note) = note.as_deref_mut() {
                note.route = template;
            }
            match routed {
                // a middleware's answer (a CORS preflight...): no future of its own to make
                Routed::Answered(status, headers, body, with_defaults) => {
                    seeded = with_defaults;
                    engine.http_requests.fetch_add(1, Ordering::Relaxed);
                    engine.native_requests.fetch_add(1, Ordering::Relaxed);
                    let is_head = head.method == http::Method::HEAD;
                    Ok(complete_response(&engine, is_head, status, headers, body))
                }
                routed => {
                    let closer = conn.closer.clone();
                    respond(
                        head,
                        routed,
                        incoming,
                        engine.clone(),
                        closer,
                        note,
                        &mut seeded,
                    )
                    .await
                }
            }
        }
    };
    if let (false, Ok(response)) = (seeded, &mut result) {
        conn.site.defaults.apply(response.headers_mut());
    }
    if let (Some(line), Ok(response)) = (access, &result) {
        // uvicorn logs each response started; an aborted one is not.
        line.log(&engine, conn.site.clone(), response.status().as_u16());
    }
    result
}

/// A request the ASGI tier or a native route answers (`routed`: not a middleware's answer).
async fn respond(
    head: RequestHead,
    routed: Routed,
    incoming: Incoming,
    engine: Arc<EngineShared>,
    closer: Arc<ConnCloser>,
    note: Option<&mut Note>,
    seeded: &mut bool,
) -> Result<Response<ResBody>, Aborted> {
    let (matched, layers) = match routed {
        Routed::Native(found, layers) => (Some(found), layers),
        Routed::Asgi | Routed::Answered(..) => (None, None),
    };
    let body = if incoming.is_end_stream() {
        BodyState::Buffered(Bytes::new())
    } else if incoming
        .size_hint()
        .exact()
        .is_some_and(|n| n <= PREREAD_LIMIT)
    {
        match tokio::time::timeout(BODY_IDLE_TIMEOUT, incoming.collect()).await {
            Ok(Ok(collected)) => BodyState::Buffered(collected.to_bytes()),
            Ok(Err(error)) if is_framing_error(&error) => return Ok(invalid_request()),
            Ok(Err(_)) => {
                return Ok(plain_response(
                    StatusCode::BAD_REQUEST,
                    "Invalid request body",
                ))
            }
            Err(_) => {
                return Ok(plain_response(
                    StatusCode::REQUEST_TIMEOUT,
                    "Request Timeout",
                ))
            }
        }
    } else {
        BodyState::Streaming(Some(incoming))
    };
    let (tx, rx) = oneshot::channel();
    let shared = Arc::new(HttpShared {
        engine: engine.clone(),
        head,
        state: Mutex::new(State {
            body,
            response: ResponseState::Pending(tx),
            layers,
        }),
        finished: Finished::default(),
        disconnected: AtomicBool::new(false),
        aborted: AtomicBool::new(false),
        framing_error: AtomicBool::new(false),
        too_large: AtomicBool::new(false),
        received: std::sync::atomic::AtomicU64::new(0),
        matched: Mutex::new(matched),
        closer,
        native: AtomicBool::new(false),
        seeded: AtomicBool::new(false),
    });
    let mut watch = Watch(Some(shared.clone()));
    engine.http_requests.fetch_add(1, Ordering::Relaxed);
    engine.inbox.push(Event::Spawn(Box::new(move |py| {
        Ok(Py::new(py, HTTPProtocol { inner: shared })?.into_any())
    })));
    let response = rx.await;
    // The service future completed: from here on the streamed body (if any) watches.
    let shared = watch.0.take();
    if let (Some(shared), Some(note)) = (&shared, note) {
        let native = shared.native.load(Ordering::Relaxed);
        note.tier = if native { Tier::Native } else { Tier::Asgi };
    }
    match response {
        Ok(response) => {
            *seeded = shared.is_some_and(|s| s.seeded.load(Ordering::Acquire));
            Ok(response)
        }
        Err(_) if shared.is_some_and(|s| s.aborted.load(Ordering::SeqCst)) => Err(Aborted),
        Err(_) => Ok(internal_error()),
    }
}

/// The connection is closed without a response (hyper drops it when the service fails).
#[derive(Debug)]
pub struct Aborted;

impl std::fmt::Display for Aborted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("invalid response start from the app")
    }
}

impl std::error::Error for Aborted {}

/// One request as seen by Python: build the scope, then `receive`/`send` are the ASGI callables.
#[pyclass(frozen, module = "fastrapi_compat._native", name = "HTTPProtocol")]
pub struct HTTPProtocol {
    inner: Arc<HttpShared>,
}

enum ReadOutcome {
    Data(Bytes, bool),
    Disconnect,
}

async fn next_data(body: &mut Incoming) -> Result<Option<Bytes>, hyper::Error> {
    loop {
        match body.frame().await {
            None => return Ok(None),
            Some(Err(e)) => return Err(e),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    return Ok(Some(data));
                }
            }
        }
    }
}

async fn read_chunk(inner: Arc<HttpShared>, mut incoming: Incoming, future: Py<PyAny>) {
    let read = tokio::select! {
        read = tokio::time::timeout(BODY_IDLE_TIMEOUT, next_data(&mut incoming)) => {
            // A body that stalls past the timeout is treated like a client that went away.
            read.ok()
        }
        () = inner.finished.wait() => None,
    };
    let outcome = match read {
        Some(Ok(Some(data))) if inner.over_body_limit(data.len()) => {
            inner.lock().body = BodyState::Consumed;
            inner.reject_too_large();
            ReadOutcome::Disconnect
        }
        Some(Ok(Some(data))) => {
            let more = !incoming.is_end_stream();
            inner.lock().body = if more {
                BodyState::Streaming(Some(incoming))
            } else {
                BodyState::Consumed
            };
            ReadOutcome::Data(data, more)
        }
        Some(Ok(None)) => {
            inner.lock().body = BodyState::Consumed;
            ReadOutcome::Data(Bytes::new(), false)
        }
        Some(Err(error)) => {
            inner.lock().body = BodyState::Consumed;
            if is_framing_error(&error) {
                inner.reject_framing();
            } else {
                inner.client_gone();
            }
            ReadOutcome::Disconnect
        }
        None => {
            inner.lock().body = BodyState::Consumed;
            inner.client_gone();
            ReadOutcome::Disconnect
        }
    };
    inner.engine.resolve(
        future,
        Box::new(move |py| match outcome {
            ReadOutcome::Data(data, more) => request_message(py, &data, more),
            ReadOutcome::Disconnect => disconnect_message(py),
        }),
    );
}

async fn wait_disconnect(inner: Arc<HttpShared>, future: Py<PyAny>) {
    inner.finished.wait().await;
    inner.engine.resolve(future, Box::new(disconnect_message));
}

#[pymethods]
impl HTTPProtocol {
    /// The ASGI scope of this request (a new dict; the caller adds `state`).
    fn scope<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let inner = &self.inner;
        let scope = PyDict::new(py);
        inner.head.fill_scope(py, &scope, "http", "2.3")?;
        scope.set_item("method", inner.head.method.as_str())?;
        let mut state = inner.lock();
        if let Some(layers) = state.layers.as_mut() {
            if let Some(session) = layers.session(py) {
                scope.set_item("session", session.bind(py))?;
            }
        }
        Ok(scope)
    }

    /// The handler of the listener this request came in on.
    #[getter]
    fn handler(&self, py: Python<'_>) -> Py<PyAny> {
        self.inner.head.site.handler.clone_ref(py)
    }

    /// The request's method (the scope's `method`), without building the scope.
    #[getter]
    fn method(&self) -> &str {
        self.inner.head.method.as_str()
    }

    /// The scope's `query_string`, without building the scope.
    #[getter]
    fn query_string<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.head.query)
    }

    /// The first value of header `name` (lower-case) as Starlette's `Headers.get` gives it
    /// (latin-1), without building the scope.
    fn header(&self, name: &str) -> Option<String> {
        self.inner
            .head
            .headers
            .get(name)
            .map(|value| value.as_bytes().iter().map(|&b| char::from(b)).collect())
    }

    /// The whole request body when the engine has already read it, taken as a `receive()`
    /// giving it would take it (later calls get `http.disconnect`); `None` otherwise.
    fn take_body<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        let mut state = self.inner.lock();
        match std::mem::replace(&mut state.body, BodyState::Consumed) {
            BodyState::Buffered(body) => {
                drop(state);
                Some(PyBytes::new(py, &body))
            }
            other => {
                state.body = other;
                None
            }
        }
    }

    /// The scope's `root_path`, without building the scope.
    #[getter]
    fn root_path(&self) -> &str {
        &self.inner.head.site.root_path
    }

    /// The native route the mirror picked for this request, as `(plan id, {name: raw value})`,
    /// or `None` (the ASGI tier serves it). Taken once.
    fn take_match<'py>(&self, py: Python<'py>) -> PyResult<Option<(u32, Bound<'py, PyDict>)>> {
        let taken = self
            .inner
            .matched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        match_to_py(py, taken)
    }

    /// `take_match`, asked of another mirror (one compiled after the app changed).
    /// A request a middleware of the new app would answer goes to the ASGI tier.
    fn rematch<'py>(
        &self,
        py: Python<'py>,
        mirror: PyRef<'py, crate::router::PyRouteMirror>,
    ) -> PyResult<Option<(u32, Bound<'py, PyDict>)>> {
        let (found, mut layers) = match route(&self.inner.head, &mirror.inner, false).0 {
            Routed::Native(found, layers) => (Some(found), layers),
            Routed::Asgi | Routed::Answered(..) => (None, None),
        };
        let mut state = self.inner.lock();
        // The scope may already hold the session opened for the old stack: keep that object.
        if let (Some(layers), Some(old)) = (layers.as_mut(), state.layers.take()) {
            layers.keep_session(old);
        }
        state.layers = layers;
        drop(state);
        match_to_py(py, found)
    }

    /// Counts this request as served by the native tier (in `Engine.stats()["native"]`); from
    /// now on its responses pass the app's middleware run by the engine.
    fn served_natively(&self) {
        let inner = &self.inner;
        if let Some(layers) = inner.lock().layers.as_mut() {
            layers.arm();
        }
        inner.engine.native_requests.fetch_add(1, Ordering::Relaxed);
        inner.native.store(true, Ordering::Relaxed);
    }

    /// What opening the request's session raised, if anything (taken once): the executor
    /// raises it where Starlette's `SessionMiddleware` would have.
    fn session_error(&self) -> Option<PyErr> {
        self.inner
            .lock()
            .layers
            .as_mut()
            .and_then(Layers::take_session_error)
    }

    /// The next response skips the app's middleware: it is `ServerErrorMiddleware`'s, which
    /// sits outside them all.
    fn skip_middleware(&self) {
        self.inner.lock().layers = None;
    }

    /// The whole response in one call (`http.response.start` then a final `http.response.body`),
    /// for the native tier: `headers` as ASGI gives them, `body` the complete body.
    fn respond(
        &self,
        status: u16,
        headers: &Bound<'_, PyAny>,
        body: &Bound<'_, PyBytes>,
    ) -> PyResult<()> {
        let inner = &self.inner;
        let headers_py = headers.py();
        let defaults = &inner.head.site.defaults;
        let seed = defaults.seeds().then_some(defaults);
        let parsed = StatusCode::from_u16(status)
            .map_err(|_| PyErr::from(EngineError::InvalidStatus(status)))
            .and_then(|status| Ok((status, parse_headers(Some(headers.clone()), seed)?)));
        if inner.disconnected.load(Ordering::SeqCst) {
            return parsed.map(|_| ());
        }
        let mut state = inner.lock();
        let (status, mut headers) = match parsed {
            Ok(parsed) => parsed,
            Err(error) => {
                if let ResponseState::Pending(_) = state.response {
                    // As in `send`: a bad start drops the connection, unanswered.
                    inner.aborted.store(true, Ordering::SeqCst);
                    state.response = ResponseState::Done;
                }
                return Err(error);
            }
        };
        match std::mem::replace(&mut state.response, ResponseState::Done) {
            ResponseState::Pending(tx) => {
                let layers = state.layers.take();
                drop(state);
                let mut body = Bytes::copy_from_slice(body.as_bytes());
                if let Some(layers) = layers.filter(Layers::is_armed) {
                    body = layers.complete(headers_py, status, &mut headers, body)?;
                }
                let response =
                    complete_response(&inner.engine, inner.is_head(), status, headers, body);
                inner.seeded.store(seed.is_some(), Ordering::Release);
                inner.engine.deliver(headers_py, (tx, response));
                inner.finished.set();
                Ok(())
            }
            ResponseState::Done => {
                Err(EngineError::AfterResponse("http.response.start".to_owned()).into())
            }
            previous => {
                state.response = previous;
                Err(EngineError::ExpectedResponseBody("http.response.start".to_owned()).into())
            }
        }
    }

    /// ASGI `receive`: an awaitable giving the next `http.request` or `http.disconnect`.
    fn receive(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let inner = &self.inner;
        let mut state = inner.lock();
        match std::mem::replace(&mut state.body, BodyState::Consumed) {
            BodyState::Buffered(body) => {
                drop(state);
                Ready::new_py(py, request_message(py, &body, false)?)
            }
            BodyState::Streaming(Some(incoming)) => {
                state.body = BodyState::Streaming(None);
                drop(state);
                let future = inner.engine.future(py)?;
                let task = read_chunk(inner.clone(), incoming, future.clone_ref(py));
                inner.engine.handle.spawn(task);
                Ok(future)
            }
            other => {
                state.body = other;
                drop(state);
                if inner.finished.is_set() {
                    return Ready::new_py(py, disconnect_message(py)?);
                }
                let future = inner.engine.future(py)?;
                let task = wait_disconnect(inner.clone(), future.clone_ref(py));
                inner.engine.handle.spawn(task);
                Ok(future)
            }
        }
    }

    /// ASGI `send` for `http.response.start` / `http.response.body`.
    fn send(&self, py: Python<'_>, message: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let inner = &self.inner;
        let message = message.cast::<PyDict>()?;
        let kind: String = message
            .get_item(pyo3::intern!(py, "type"))?
            .ok_or(EngineError::MessageWithoutType)?
            .extract()?;
        if inner.disconnected.load(Ordering::SeqCst) {
            return Ready::none(py);
        }
        let mut state = inner.lock();
        match (
            kind.as_str(),
            std::mem::replace(&mut state.response, ResponseState::Done),
        ) {
            ("http.response.start", ResponseState::Pending(tx)) => {
                // uvicorn counts the response as started before it checks the status and
                // headers: a bad one drops the connection (`tx` goes, unanswered).
                let (status, headers) = start_message(message).inspect_err(|_| {
                    inner.aborted.store(true, Ordering::SeqCst);
                })?;
                state.response = ResponseState::Started {
                    tx,
                    status,
                    headers,
                };
            }
            (
                "http.response.body",
                ResponseState::Started {
                    tx,
                    status,
                    mut headers,
                },
            ) => {
                let mut body = body_bytes(message)?;
                let more = more_body(message)?;
                let mut encoders = Encoders::default();
                if let Some(layers) = state.layers.take().filter(Layers::is_armed) {
                    (body, encoders) = layers.start(py, status, &mut headers, body, more)?;
                }
                if more {
                    let (chunks, rx) = mpsc::channel(STREAM_CAPACITY);
                    if !body.is_empty() {
                        let _ = chunks.try_send(Ok(body));
                    }
                    let guard: crate::body::DropGuard = Box::new(Watch(Some(inner.clone())));
                    let streamed = ResBody::Stream {
                        rx,
                        _guard: Some(guard),
                    };
                    let _ = tx.send(build_response(&inner.engine, status, headers, streamed));
                    state.response = ResponseState::Streaming(chunks, encoders);
                } else {
                    let response =
                        complete_response(&inner.engine, inner.is_head(), status, headers, body);
                    drop(state);
                    inner.engine.deliver(py, (tx, response));
                    inner.finished.set();
                }
            }
            ("http.response.body", ResponseState::Streaming(chunks, mut encoders)) => {
                let mut body = body_bytes(message)?;
                let more = more_body(message)?;
                if !encoders.is_empty() {
                    body = encoders.chunk(body, more);
                }
                if !body.is_empty() {
                    match chunks.try_send(Ok(body)) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(chunk)) => {
                            if more {
                                state.response = ResponseState::Streaming(chunks.clone(), encoders);
                            }
                            drop(state);
                            if !more {
                                inner.finished.set();
                            }
                            let future = inner.engine.future(py)?;
                            let done = future.clone_ref(py);
                            let engine = inner.engine.clone();
                            inner.engine.handle.spawn(async move {
                                let _ = chunks.send(chunk).await;
                                drop(chunks);
                                engine.resolve(done, Box::new(|py| Ok(py.None())));
                            });
                            return Ok(future);
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => {
                            drop(state);
                            inner.client_gone();
                            return Ready::none(py);
                        }
                    }
                }
                if more {
                    state.response = ResponseState::Streaming(chunks, encoders);
                } else {
                    drop(chunks);
                    drop(state);
                    inner.finished.set();
                }
            }
            (_, ResponseState::Done) => {
                return Err(EngineError::AfterResponse(kind).into());
            }
            (_, previous @ ResponseState::Pending(_)) => {
                state.response = previous;
                return Err(EngineError::ExpectedResponseStart(kind).into());
            }
            (_, previous) => {
                state.response = previous;
                return Err(EngineError::ExpectedResponseBody(kind).into());
            }
        }
        Ready::none(py)
    }

    /// The app raised after its response had started: the connection closes once the response
    /// is out (uvicorn closes the transport), so nothing else is served on it.
    fn close_connection(&self) {
        self.inner.closer.ask();
    }

    /// Called once the app returned or raised. Returns what was left undone:
    /// `"complete"`, `"disconnected"`, `"not_started"` (a 500 was sent) or `"not_completed"`
    /// (the connection is aborted).
    fn finish(&self) -> &'static str {
        let inner = &self.inner;
        let mut state = inner.lock();
        let previous = std::mem::replace(&mut state.response, ResponseState::Done);
        // The session object is a Python handle: dropped here, with the GIL held.
        let layers = state.layers.take();
        drop(state);
        drop(layers);
        let outcome = match previous {
            _ if inner.framing_error.load(Ordering::SeqCst) => "invalid_request",
            _ if inner.too_large.load(Ordering::SeqCst) => "too_large",
            ResponseState::Done => "complete",
            _ if inner.disconnected.load(Ordering::SeqCst) => "disconnected",
            ResponseState::Pending(tx) => {
                let _ = tx.send(internal_error());
                "not_started"
            }
            // The status line was promised (uvicorn has already written it): send it, then
            // abort the body so the client sees an incomplete response.
            ResponseState::Started {
                tx,
                status,
                headers,
            } => {
                let (chunks, rx) = mpsc::channel(1);
                let _ = chunks.try_send(Err(io::Error::other(
                    "ASGI callable returned without completing response",
                )));
                let _ = tx.send(build_response(
                    &inner.engine,
                    status,
                    headers,
                    ResBody::Stream { rx, _guard: None },
                ));
                "not_completed"
            }
            ResponseState::Streaming(chunks, _) => {
                inner.engine.handle.spawn(async move {
                    let _ = chunks
                        .send(Err(io::Error::other(
                            "ASGI callable returned without completing response",
                        )))
                        .await;
                });
                "not_completed"
            }
        };
        inner.finished.set();
        outcome
    }
}
