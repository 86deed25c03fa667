//! ASGI `websocket` scope: the handshake through hyper's upgrade, then frames with tungstenite
//! (permessage-deflate by `deflate` and `ws_inflate`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use http::header::{
    CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_EXTENSIONS,
    SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL, UPGRADE,
};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore, TryAcquireError};
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::deflate::{self, Agreement};
use super::http::parse_headers;
use super::ws_inflate::{failure_of, WsIo};
use crate::awaitable::Ready;
use crate::body::ResBody;
use crate::errors::EngineError;
use crate::inbox::Event;
use crate::request::RequestHead;
use crate::shared::EngineShared;
use crate::site::{ConnInfo, WsOptions};

/// How long to wait for the peer's close frame after the app closed, or for our close frame
/// to be written after a protocol error.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes of the app's messages that may wait for a peer that does not read (a message larger
/// than this takes all of it); beyond it, `send` waits until the peer reads (as uvicorn's
/// transport's high-water mark makes it wait).
const WRITE_LIMIT: u32 = 64 * 1024;
/// Bytes of the peer's messages read ahead of the app (a larger message takes all of it);
/// beyond it, reading stops until the app receives, as uvicorn pauses reading.
const READ_LIMIT: u32 = 64 * 1024;

pub fn is_upgrade(req: &Request<Incoming>) -> bool {
    let has_token = |name: HeaderName, token: &str| {
        req.headers().get_all(name).iter().any(|v| {
            v.to_str()
                .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
                .unwrap_or(false)
        })
    };
    // any method, as uvicorn: a handshake that is not a GET is refused (`handshake.rs`)
    has_token(UPGRADE, "websocket") && has_token(CONNECTION, "upgrade")
}

enum Inbound {
    Connect,
    Text(String),
    Binary(Bytes),
    Disconnect(u16, String),
}

/// A message read ahead of the app, holding its share of the read budget until received.
type Queued = (Inbound, Option<OwnedSemaphorePermit>);

enum Decision {
    Accept {
        headers: HeaderMap,
        outbound: mpsc::UnboundedReceiver<Outgoing>,
        /// For the server's own frames (pings, a close after a protocol error): weak, so that
        /// the writer still ends once the app is done with the websocket.
        ours: mpsc::WeakUnboundedSender<Outgoing>,
    },
    Respond(Response<ResBody>),
}

/// A frame for the writer, holding its share of the write budget until it is written.
type Outgoing = (Message, Option<OwnedSemaphorePermit>);

/// The app's way to the writer: frames in order, data frames paid for from a byte budget.
#[derive(Clone)]
struct Outbound {
    tx: mpsc::UnboundedSender<Outgoing>,
    budget: Arc<Semaphore>,
}

impl Outbound {
    /// Queues a control frame (close, ping): these never wait for the budget.
    fn control(&self, message: Message) {
        let _ = self.tx.send((message, None));
    }

    /// No more data frames: sends waiting for the budget fail as disconnected.
    fn shut(&self) {
        self.budget.close();
    }
}

enum Phase {
    Handshake(oneshot::Sender<Decision>),
    Denial {
        tx: oneshot::Sender<Decision>,
        status: StatusCode,
        headers: HeaderMap,
        body: BytesMut,
    },
    Open(Outbound),
    Closed,
}

pub struct WsShared {
    engine: Arc<EngineShared>,
    head: RequestHead,
    subprotocols: Vec<String>,
    phase: Mutex<Phase>,
    inbound: tokio::sync::Mutex<mpsc::Receiver<Queued>>,
    /// How the websocket ended (the first of: the app's close, the peer's close, a protocol
    /// error, a server shutdown), delivered by `receive()` once the queue is empty.
    closed: Mutex<Option<(u16, String)>>,
    /// Set once `closed` is: wakes a `receive()` waiting on an empty queue.
    ended: watch::Sender<bool>,
    disconnected: AtomicBool,
}

impl WsShared {
    fn phase(&self) -> MutexGuard<'_, Phase> {
        self.phase
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records how the websocket ended, unless that is already known.
    fn set_closed(&self, code: u16, reason: String) {
        self.closed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get_or_insert((code, reason));
    }

    /// The websocket ended (`set_closed`), and a waiting `receive()` is told.
    fn end(&self, code: u16, reason: String) {
        self.set_closed(code, reason);
        self.ended.send_replace(true);
    }

    fn closed(&self) -> Option<(u16, String)> {
        self.closed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

fn empty_response(status: StatusCode) -> Response<ResBody> {
    let mut response = Response::new(ResBody::empty());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
    response
}

pub async fn handle(
    mut req: Request<Incoming>,
    engine: Arc<EngineShared>,
    conn: &ConnInfo,
) -> Response<ResBody> {
    if let Some(refused) = super::handshake::refusal(&req) {
        return refused;
    }
    let Some(key) = req.headers().get(SEC_WEBSOCKET_KEY).cloned() else {
        return super::canned::internal_error(); // `refusal` saw one
    };
    let options = conn.site.ws.clone();
    // uvicorn's websockets offers permessage-deflate, and refuses a header it cannot parse.
    let offers = req.headers().get_all(SEC_WEBSOCKET_EXTENSIONS);
    let deflate = match options.per_message_deflate {
        true => match deflate::negotiate(offers.iter().map(HeaderValue::as_bytes)) {
            Ok(agreement) => agreement,
            Err(deflate::Malformed(why)) => return super::canned::websocket_refused(&why),
        },
        false => None,
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let (parts, _body) = req.into_parts();
    let head = RequestHead::new(parts, conn, true);
    let subprotocols = head
        .headers
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|t| t.trim().to_owned()))
        .collect();
    let (decide, decision) = oneshot::channel();
    let (inbound_tx, inbound_rx) = mpsc::channel(options.max_queue.max(1));
    let _ = inbound_tx.try_send((Inbound::Connect, None));
    let shared = Arc::new(WsShared {
        engine: engine.clone(),
        head,
        subprotocols,
        phase: Mutex::new(Phase::Handshake(decide)),
        inbound: tokio::sync::Mutex::new(inbound_rx),
        closed: Mutex::new(None),
        ended: watch::channel(false).0,
        disconnected: AtomicBool::new(false),
    });
    let for_python = shared.clone();
    engine.websockets.fetch_add(1, Ordering::Relaxed);
    engine.inbox.push(Event::Spawn(Box::new(move |py| {
        Ok(Py::new(py, WebSocketProtocol { inner: for_python })?.into_any())
    })));
    match decision.await {
        Ok(Decision::Accept {
            headers,
            outbound,
            ours,
        }) => {
            let mut response = Response::new(ResBody::empty());
            *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            let h = response.headers_mut();
            h.insert(UPGRADE, HeaderValue::from_static("websocket"));
            h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
            if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
                h.insert(SEC_WEBSOCKET_ACCEPT, accept);
            }
            let agreed = deflate.as_ref().map(Agreement::header);
            if let Some(value) = agreed.and_then(|v| HeaderValue::from_str(&v).ok()) {
                h.insert(SEC_WEBSOCKET_EXTENSIONS, value);
            }
            for (name, value) in &headers {
                h.append(name, value.clone());
            }
            tokio::spawn(run_socket(
                on_upgrade,
                inbound_tx,
                (outbound, ours),
                shared,
                (options, deflate),
            ));
            response
        }
        Ok(Decision::Respond(response)) => response,
        Err(_) => super::canned::internal_error(),
    }
}

async fn run_socket(
    on_upgrade: hyper::upgrade::OnUpgrade,
    inbound: mpsc::Sender<Queued>,
    (mut outbound, ours): (
        mpsc::UnboundedReceiver<Outgoing>,
        mpsc::WeakUnboundedSender<Outgoing>,
    ),
    shared: Arc<WsShared>,
    (options, deflate): (WsOptions, Option<Agreement>),
) {
    // Our own frames go through the app's queue, so that they follow what the app sent.
    let Ok(upgraded) = on_upgrade.await else {
        peer_gone(&shared, 1006, String::new());
        return;
    };
    let metrics = shared.head.site.metrics.as_ref();
    let _open = crate::metrics::Held::new(metrics, crate::metrics::Gauged::Websocket);
    let config = WebSocketConfig::default()
        .max_message_size(Some(options.max_size))
        .max_frame_size(Some(options.max_size));
    let decoder = deflate.as_ref().map(Agreement::decoder);
    let mut encoder = deflate.as_ref().map(Agreement::encoder);
    let io = WsIo::new(TokioIo::new(upgraded), decoder, options.max_size);
    let socket = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
    let (mut sink, mut stream) = socket.split();
    let (pong_tx, mut pongs) = mpsc::unbounded_channel::<Bytes>();
    let read_budget = Arc::new(Semaphore::new(READ_LIMIT as usize));
    // Ends `true` when the websocket failed (a protocol error) and our close frame is queued.
    let reader = async {
        let mut told = false;
        while let Some(frame) = stream.next().await {
            let item = match frame {
                Ok(Message::Text(text)) => Inbound::Text(text.as_str().to_owned()),
                Ok(Message::Binary(data)) => Inbound::Binary(data),
                Ok(Message::Close(frame)) => {
                    let (code, reason) = frame.map_or((1005, String::new()), |f| {
                        (u16::from(f.code), f.reason.as_str().to_owned())
                    });
                    if !told {
                        told = true;
                        peer_gone(&shared, code, reason);
                    }
                    continue; // keep polling so tungstenite flushes its close reply
                }
                Ok(Message::Pong(data)) => {
                    let _ = pong_tx.send(data);
                    continue;
                }
                Ok(_) => continue,
                Err(error) => match failure(&error) {
                    Some((code, reason)) if !told => {
                        queue(&ours, close_frame(code, &reason));
                        peer_gone(&shared, code, reason);
                        return true;
                    }
                    _ => break,
                },
            };
            // Waits while the app has `max_queue` messages or `READ_LIMIT` bytes it has not
            // received: reading stops, and the peer's sends wait on TCP.
            let size = match &item {
                Inbound::Text(text) => text.len(),
                Inbound::Binary(data) => data.len(),
                _ => 0,
            };
            let cost = u32::try_from(size)
                .unwrap_or(READ_LIMIT)
                .clamp(1, READ_LIMIT);
            let Ok(permit) = read_budget.clone().acquire_many_owned(cost).await else {
                break;
            };
            if inbound.send((item, Some(permit))).await.is_err() {
                break;
            }
        }
        if !told {
            peer_gone(&shared, 1006, String::new());
        }
        false
    };
    let writer = async {
        while let Some((mut message, permit)) = outbound.recv().await {
            let closing = matches!(message, Message::Close(_));
            if let Some(encoder) = encoder.as_mut() {
                message = encoder.message(message);
            }
            let sent = sink.send(message).await.is_ok();
            drop(permit); // written: the app may queue that much more
            if !sent {
                return false;
            }
            if closing {
                return true;
            }
        }
        false
    };
    // uvicorn's keepalive: a ping every `ping_interval`; no pong within `ping_timeout` fails
    // the websocket with 1011.
    let pinger = async {
        let Some(every) = options.ping_interval else {
            return std::future::pending::<()>().await;
        };
        let mut sequence: u32 = 0;
        loop {
            tokio::time::sleep(every).await;
            sequence = sequence.wrapping_add(1);
            let payload = Bytes::copy_from_slice(&sequence.to_be_bytes());
            queue(&ours, Message::Ping(payload.clone()));
            let Some(limit) = options.ping_timeout else {
                continue;
            };
            let answered = tokio::time::timeout(limit, async {
                while let Some(pong) = pongs.recv().await {
                    if pong == payload {
                        return;
                    }
                }
                std::future::pending::<()>().await; // the reader ended: the session ends
            })
            .await;
            if answered.is_err() {
                queue(&ours, close_frame(1011, "keepalive ping timeout"));
                peer_gone(&shared, 1005, String::new()); // what uvicorn tells the app
                return;
            }
        }
    };
    let session = async {
        tokio::pin!(reader, writer, pinger);
        let failed = tokio::select! {
            failed = &mut reader => failed,
            () = &mut pinger => true,
            sent_close = &mut writer => {
                if sent_close {
                    let _ = tokio::time::timeout(CLOSE_TIMEOUT, &mut reader).await;
                }
                false
            }
        };
        if failed {
            // Our close frame goes out after what the app sent, then the connection closes.
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, &mut writer).await;
        }
    };
    // On server shutdown, close with 1012 (Service Restart) and tell the app, as uvicorn does.
    let on_shutdown = async {
        let mut closing = shared.engine.closing.subscribe();
        let _ = async { closing.wait_for(|c| *c).await.is_ok() }.await;
        if let Phase::Open(out) = &*shared.phase() {
            out.control(close_frame(1012, ""));
        }
        shared.end(1012, String::new());
        std::future::pending::<()>().await;
    };
    tokio::select! {
        () = session => {}
        () = on_shutdown => {}
    }
    peer_gone(&shared, 1006, String::new());
}

fn queue(ours: &mpsc::WeakUnboundedSender<Outgoing>, message: Message) {
    if let Some(tx) = ours.upgrade() {
        let _ = tx.send((message, None));
    }
}

fn close_frame(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    }))
}

/// The close code and reason for a frame the peer should not have sent (RFC 6455 7.4.1), with
/// the reasons uvicorn's websockets gives; `None` when the connection just ended.
fn failure(error: &WsError) -> Option<(u16, String)> {
    let reason = match error {
        // uvicorn gives no reason for text that is not UTF-8
        WsError::Utf8(_) => return Some((1007, String::new())),
        WsError::Capacity(CapacityError::MessageTooLong { size, max_size }) => {
            return Some((
                1009,
                format!("frame with {size} bytes exceeds limit of {max_size} bytes"),
            ))
        }
        WsError::Capacity(_) => return Some((1009, String::new())),
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => return None,
        // a compressed frame that failed (`ws_inflate`)
        WsError::Io(error) => return failure_of(error),
        WsError::Protocol(error) => match error {
            ProtocolError::UnmaskedFrameFromClient => "incorrect masking",
            ProtocolError::NonZeroReservedBits => "reserved bits must be 0",
            ProtocolError::UnknownControlFrameType(_)
            | ProtocolError::UnknownDataFrameType(_)
            | ProtocolError::InvalidOpcode(_) => "invalid opcode",
            ProtocolError::ControlFrameTooBig => "control frame too long",
            ProtocolError::FragmentedControlFrame => "fragmented control frame",
            ProtocolError::InvalidCloseSequence => "close frame too short",
            ProtocolError::UnexpectedContinueFrame => "unexpected continuation frame",
            ProtocolError::ExpectedFragment(_) => "expected a continuation frame",
            _ => "",
        },
        _ => return None,
    };
    Some((1002, reason.to_owned()))
}

/// The websocket is over for the app: its sends fail from now on, and `receive()` gives the
/// disconnect once the messages already read are received.
fn peer_gone(shared: &WsShared, code: u16, reason: String) {
    shared.disconnected.store(true, Ordering::SeqCst);
    let previous = std::mem::replace(&mut *shared.phase(), Phase::Closed);
    if let Phase::Open(out) = &previous {
        out.shut();
    }
    drop(previous);
    shared.end(code, reason);
}

fn inbound_message(py: Python<'_>, item: Inbound) -> PyResult<Py<PyAny>> {
    let msg = PyDict::new(py);
    match item {
        Inbound::Connect => msg.set_item("type", "websocket.connect")?,
        Inbound::Text(text) => {
            msg.set_item("type", "websocket.receive")?;
            msg.set_item("text", PyString::new(py, &text))?;
        }
        Inbound::Binary(data) => {
            msg.set_item("type", "websocket.receive")?;
            msg.set_item("bytes", PyBytes::new(py, &data))?;
        }
        Inbound::Disconnect(code, reason) => {
            msg.set_item("type", "websocket.disconnect")?;
            msg.set_item("code", code)?;
            msg.set_item("reason", reason)?;
        }
    }
    Ok(msg.into_any().unbind())
}

fn get<'py>(message: &Bound<'py, PyDict>, key: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
    Ok(message.get_item(key)?.filter(|v| !v.is_none()))
}

impl WebSocketProtocol {
    /// `send` for a peer that is not reading: an awaitable done once the frame is queued within
    /// the write budget, or failed with `ClientDisconnected` when the websocket ends first.
    fn send_later(
        &self,
        py: Python<'_>,
        out: Outbound,
        frame: Message,
        cost: u32,
    ) -> PyResult<Py<PyAny>> {
        let engine = self.inner.engine.clone();
        let future = engine.future(py)?;
        let done = future.clone_ref(py);
        engine.handle.clone().spawn(async move {
            let queued = match out.budget.clone().acquire_many_owned(cost).await {
                Ok(permit) => out.tx.send((frame, Some(permit))).is_ok(),
                Err(_) => false,
            };
            drop(out);
            engine.resolve(
                done,
                Box::new(move |py| {
                    if queued {
                        Ok(py.None())
                    } else {
                        Err(EngineError::ClientDisconnected.into())
                    }
                }),
            );
        });
        Ok(future)
    }
}

/// One websocket as seen by Python.
#[pyclass(frozen, module = "fastrapi_compat._native", name = "WebSocketProtocol")]
pub struct WebSocketProtocol {
    inner: Arc<WsShared>,
}

#[pymethods]
impl WebSocketProtocol {
    fn scope<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let inner = &self.inner;
        let scope = PyDict::new(py);
        inner.head.fill_scope(py, &scope, "websocket", "2.4")?;
        scope.set_item("subprotocols", PyList::new(py, &inner.subprotocols)?)?;
        let extensions = PyDict::new(py);
        extensions.set_item("websocket.http.response", PyDict::new(py))?;
        scope.set_item("extensions", extensions)?;
        Ok(scope)
    }

    /// The handler of the listener this websocket came in on.
    #[getter]
    fn handler(&self, py: Python<'_>) -> Py<PyAny> {
        self.inner.head.site.handler.clone_ref(py)
    }

    /// ASGI `receive`.
    fn receive(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let inner = &self.inner;
        let ended = |shared: &WsShared| {
            let (code, reason) = shared.closed().unwrap_or((1006, String::new()));
            Inbound::Disconnect(code, reason)
        };
        if let Ok(mut queue) = inner.inbound.try_lock() {
            match queue.try_recv() {
                Ok((item, _permit)) => return Ready::new_py(py, inbound_message(py, item)?),
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    return Ready::new_py(py, inbound_message(py, ended(inner))?);
                }
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
            if inner.closed().is_some() {
                return Ready::new_py(py, inbound_message(py, ended(inner))?);
            }
        }
        let future = inner.engine.future(py)?;
        let done = future.clone_ref(py);
        let shared = inner.clone();
        inner.engine.handle.spawn(async move {
            let mut over = shared.ended.subscribe();
            let item = {
                let mut queue = shared.inbound.lock().await;
                tokio::select! {
                    biased;
                    item = queue.recv() => item.map(|(item, _permit)| item),
                    _ = over.wait_for(|e| *e) => None,
                }
            };
            // Messages read before the end still come first.
            let item = match item {
                Some(item) => item,
                None => match shared.inbound.lock().await.try_recv() {
                    Ok((item, _permit)) => item,
                    Err(_) => ended(&shared),
                },
            };
            shared
                .engine
                .resolve(done, Box::new(move |py| inbound_message(py, item)));
        });
        Ok(future)
    }

    /// ASGI `send`.
    fn send(&self, py: Python<'_>, message: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let inner = &self.inner;
        let message = message.cast::<PyDict>()?;
        let kind: String = get(message, "type")?
            .ok_or(EngineError::MessageWithoutType)?
            .extract()?;
        let mut phase = inner.phase();
        match (kind.as_str(), std::mem::replace(&mut *phase, Phase::Closed)) {
            ("websocket.accept", Phase::Handshake(tx)) => {
                let mut headers = parse_headers(get(message, "headers")?, None)?;
                if let Some(sub) = get(message, "subprotocol")? {
                    let sub: String = sub.extract()?;
                    if !sub.is_empty() {
                        let value = HeaderValue::from_str(&sub)
                            .map_err(|_| EngineError::InvalidSubprotocol)?;
                        headers.insert(SEC_WEBSOCKET_PROTOCOL, value);
                    }
                }
                let (out_tx, outbound) = mpsc::unbounded_channel();
                let ours = out_tx.downgrade();
                *phase = Phase::Open(Outbound {
                    tx: out_tx,
                    budget: Arc::new(Semaphore::new(WRITE_LIMIT as usize)),
                });
                let _ = tx.send(Decision::Accept {
                    headers,
                    outbound,
                    ours,
                });
            }
            ("websocket.close", Phase::Handshake(tx)) => {
                inner.end(1006, String::new());
                let mut response = empty_response(StatusCode::FORBIDDEN);
                response.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                response
                    .headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
                let _ = tx.send(Decision::Respond(response));
            }
            ("websocket.http.response.start", Phase::Handshake(tx)) => {
                let status: u16 = get(message, "status")?
                    .ok_or(EngineError::DenialWithoutStatus)?
                    .extract()?;
                let status = StatusCode::from_u16(status)
                    .ok()
                    .filter(|s| (100..600).contains(&s.as_u16()))
                    .ok_or(EngineError::InvalidStatus(status))?;
                let headers = parse_headers(get(message, "headers")?, None)?;
                *phase = Phase::Denial {
                    tx,
                    status,
                    headers,
                    body: BytesMut::new(),
                };
            }
            (
                "websocket.http.response.body",
                Phase::Denial {
                    tx,
                    status,
                    mut headers,
                    mut body,
                },
            ) => {
                if let Some(chunk) = get(message, "body")? {
                    body.extend_from_slice(chunk.cast::<PyBytes>()?.as_bytes());
                }
                let more = get(message, "more_body")?.map_or(Ok(false), |v| v.is_truthy())?;
                if more {
                    *phase = Phase::Denial {
                        tx,
                        status,
                        headers,
                        body,
                    };
                } else {
                    headers
                        .entry(CONNECTION)
                        .or_insert(HeaderValue::from_static("close"));
                    headers
                        .entry(CONTENT_LENGTH)
                        .or_insert(HeaderValue::from(body.len()));
                    headers
                        .entry(CONTENT_TYPE)
                        .or_insert(HeaderValue::from_static("text/plain; charset=utf-8"));
                    inner.end(1006, String::new());
                    let mut response = Response::new(ResBody::full(body.freeze(), true));
                    *response.status_mut() = status;
                    *response.headers_mut() = headers;
                    inner.engine.set_reason(&mut response);
                    let _ = tx.send(Decision::Respond(response));
                }
            }
            ("websocket.send", Phase::Open(out)) => {
                let frame = if let Some(data) = get(message, "bytes")? {
                    Message::Binary(Bytes::copy_from_slice(data.cast::<PyBytes>()?.as_bytes()))
                } else if let Some(text) = get(message, "text")? {
                    Message::Text(text.extract::<String>()?.into())
                } else {
                    *phase = Phase::Open(out);
                    return Ready::none(py);
                };
                let cost = u32::try_from(frame.len())
                    .unwrap_or(WRITE_LIMIT)
                    .clamp(1, WRITE_LIMIT);
                let queued = match out.budget.clone().try_acquire_many_owned(cost) {
                    Ok(permit) => out.tx.send((frame, Some(permit))).is_ok(),
                    Err(TryAcquireError::Closed) => false,
                    Err(TryAcquireError::NoPermits) => {
                        // The peer is not reading: the app waits, as on uvicorn.
                        let waiting = out.clone();
                        *phase = Phase::Open(out);
                        drop(phase);
                        return self.send_later(py, waiting, frame, cost);
                    }
                };
                *phase = Phase::Open(out);
                if !queued {
                    return Err(EngineError::ClientDisconnected.into());
                }
            }
            ("websocket.close", Phase::Open(out)) => {
                let code: u16 = get(message, "code")?.map_or(Ok(1000), |v| v.extract())?;
                let reason: String =
                    get(message, "reason")?.map_or(Ok(String::new()), |v| v.extract())?;
                out.control(close_frame(code, &reason));
                inner.end(code, reason);
            }
            (_, Phase::Closed) if inner.disconnected.load(Ordering::SeqCst) => {
                return Err(EngineError::ClientDisconnected.into());
            }
            (_, previous) => {
                let expected = match &previous {
                    Phase::Handshake(_) => EngineError::ExpectedHandshake(kind),
                    Phase::Denial { .. } => EngineError::ExpectedDenialBody(kind),
                    Phase::Open(_) => EngineError::ExpectedSendOrClose(kind),
                    Phase::Closed => EngineError::AfterClose(kind),
                };
                *phase = previous;
                return Err(expected.into());
            }
        }
        Ready::none(py)
    }

    /// Called once the app returned or raised: `"complete"`, or `"not_started"` when the
    /// handshake was never answered (a 500 is sent).
    fn finish(&self) -> &'static str {
        let previous = std::mem::replace(&mut *self.inner.phase(), Phase::Closed);
        match previous {
            Phase::Handshake(tx) | Phase::Denial { tx, .. } => {
                let _ = tx.send(Decision::Respond(super::canned::internal_error()));
                "not_started"
            }
            // Dropping the sender ends the writer; the connection closes without a close
            // frame, as uvicorn closes the transport.
            Phase::Open(_) | Phase::Closed => "complete",
        }
    }
}
