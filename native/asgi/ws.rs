//! ASGI `websocket` scope: the handshake through hyper's upgrade, then frames with tungstenite.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use http::header::{
    CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_PROTOCOL, SEC_WEBSOCKET_VERSION, UPGRADE,
};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::http::parse_headers;
use crate::awaitable::Ready;
use crate::body::ResBody;
use crate::errors::EngineError;
use crate::inbox::Event;
use crate::request::RequestHead;
use crate::shared::EngineShared;
use crate::site::ConnInfo;

/// Messages read from the socket and not yet received by the app.
const INBOUND_CAPACITY: usize = 32;
/// How long to wait for the peer's close frame after the app closed.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

pub fn is_upgrade(req: &Request<Incoming>) -> bool {
    let has_token = |name: HeaderName, token: &str| {
        req.headers().get_all(name).iter().any(|v| {
            v.to_str()
                .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
                .unwrap_or(false)
        })
    };
    req.method() == http::Method::GET
        && has_token(UPGRADE, "websocket")
        && has_token(CONNECTION, "upgrade")
}

enum Inbound {
    Connect,
    Text(String),
    Binary(Bytes),
    Disconnect(u16, String),
}

enum Decision {
    Accept {
        headers: HeaderMap,
        outbound: mpsc::UnboundedReceiver<Message>,
    },
    Respond(Response<ResBody>),
}

enum Phase {
    Handshake(oneshot::Sender<Decision>),
    Denial {
        tx: oneshot::Sender<Decision>,
        status: StatusCode,
        headers: HeaderMap,
        body: BytesMut,
    },
    Open(mpsc::UnboundedSender<Message>),
    Closed,
}

pub struct WsShared {
    engine: Arc<EngineShared>,
    head: RequestHead,
    subprotocols: Vec<String>,
    phase: Mutex<Phase>,
    inbound: tokio::sync::Mutex<mpsc::Receiver<Inbound>>,
    /// The app's own close, delivered by `receive()` once the queue is empty.
    closed_by_app: Mutex<Option<(u16, String)>>,
    disconnected: AtomicBool,
}

impl WsShared {
    fn phase(&self) -> MutexGuard<'_, Phase> {
        self.phase
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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
    // RFC 6455 4.2.1: version 13 only (else 426 naming it, 4.4); a key of 16 bytes in base64.
    if req
        .headers()
        .get(SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        let mut response = empty_response(StatusCode::UPGRADE_REQUIRED);
        response
            .headers_mut()
            .insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        return response;
    }
    let Some(key) = req.headers().get(SEC_WEBSOCKET_KEY).cloned() else {
        return empty_response(StatusCode::BAD_REQUEST);
    };
    let decoded = base64::engine::general_purpose::STANDARD.decode(key.as_bytes());
    if decoded.map_or(true, |bytes| bytes.len() != 16) {
        return empty_response(StatusCode::BAD_REQUEST);
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    let (parts, _body) = req.into_parts();
    let head = RequestHead::new(&parts, conn);
    let subprotocols = head
        .headers
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|t| t.trim().to_owned()))
        .collect();
    let (decide, decision) = oneshot::channel();
    let (inbound_tx, inbound_rx) = mpsc::channel(INBOUND_CAPACITY);
    let _ = inbound_tx.try_send(Inbound::Connect);
    let shared = Arc::new(WsShared {
        engine: engine.clone(),
        head,
        subprotocols,
        phase: Mutex::new(Phase::Handshake(decide)),
        inbound: tokio::sync::Mutex::new(inbound_rx),
        closed_by_app: Mutex::new(None),
        disconnected: AtomicBool::new(false),
    });
    let for_python = shared.clone();
    engine.websockets.fetch_add(1, Ordering::Relaxed);
    engine.inbox.push(Event::Spawn(Box::new(move |py| {
        Ok(Py::new(py, WebSocketProtocol { inner: for_python })?.into_any())
    })));
    match decision.await {
        Ok(Decision::Accept { headers, outbound }) => {
            let mut response = Response::new(ResBody::empty());
            *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            let h = response.headers_mut();
            h.insert(UPGRADE, HeaderValue::from_static("websocket"));
            h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
            if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
                h.insert(SEC_WEBSOCKET_ACCEPT, accept);
            }
            for (name, value) in &headers {
                h.append(name, value.clone());
            }
            tokio::spawn(run_socket(on_upgrade, inbound_tx, outbound, shared));
            response
        }
        Ok(Decision::Respond(response)) => response,
        Err(_) => super::http::internal_error(),
    }
}

async fn run_socket(
    on_upgrade: hyper::upgrade::OnUpgrade,
    inbound: mpsc::Sender<Inbound>,
    mut outbound: mpsc::UnboundedReceiver<Message>,
    shared: Arc<WsShared>,
) {
    let Ok(upgraded) = on_upgrade.await else {
        peer_gone(&shared, &inbound, 1006, String::new()).await;
        return;
    };
    let socket = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
    let (mut sink, mut stream) = socket.split();
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
                        peer_gone(&shared, &inbound, code, reason).await;
                    }
                    continue; // keep polling so tungstenite flushes its close reply
                }
                Ok(_) => continue,
                Err(_) => break,
            };
            if inbound.send(item).await.is_err() {
                break;
            }
        }
        if !told {
            peer_gone(&shared, &inbound, 1006, String::new()).await;
        }
    };
    let writer = async {
        while let Some(message) = outbound.recv().await {
            let closing = matches!(message, Message::Close(_));
            if sink.send(message).await.is_err() {
                return false;
            }
            if closing {
                return true;
            }
        }
        false
    };
    // On server shutdown, close with 1012 (Service Restart) and tell the app, as uvicorn does.
    let on_shutdown = async {
        let mut closing = shared.engine.closing.subscribe();
        let _ = async { closing.wait_for(|c| *c).await.is_ok() }.await;
        if let Phase::Open(out) = &*shared.phase() {
            let _ = out.send(Message::Close(Some(CloseFrame {
                code: CloseCode::Restart,
                reason: "".into(),
            })));
        }
        let _ = inbound.send(Inbound::Disconnect(1012, String::new())).await;
        std::future::pending::<()>().await;
    };
    let session = async {
        tokio::pin!(reader);
        tokio::select! {
            () = &mut reader => {}
            sent_close = writer => {
                if sent_close {
                    let _ = tokio::time::timeout(CLOSE_TIMEOUT, reader).await;
                }
            }
        }
    };
    tokio::select! {
        () = session => {}
        () = on_shutdown => {}
    }
}

async fn peer_gone(shared: &WsShared, inbound: &mpsc::Sender<Inbound>, code: u16, reason: String) {
    shared.disconnected.store(true, Ordering::SeqCst);
    let previous = std::mem::replace(&mut *shared.phase(), Phase::Closed);
    drop(previous);
    let _ = inbound.send(Inbound::Disconnect(code, reason)).await;
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
        let scheme = if inner.head.site.scheme == "https" {
            "wss"
        } else {
            "ws"
        };
        inner
            .head
            .fill_scope(py, &scope, "websocket", "2.4", scheme)?;
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
        if let Ok(mut queue) = inner.inbound.try_lock() {
            match queue.try_recv() {
                Ok(item) => return Ready::new_py(py, inbound_message(py, item)?),
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    let (code, reason) = inner
                        .closed_by_app
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .clone()
                        .unwrap_or((1006, String::new()));
                    return Ready::new_py(
                        py,
                        inbound_message(py, Inbound::Disconnect(code, reason))?,
                    );
                }
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
            let closed = inner
                .closed_by_app
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            if let Some((code, reason)) = closed {
                return Ready::new_py(py, inbound_message(py, Inbound::Disconnect(code, reason))?);
            }
        }
        let future = inner.engine.future(py)?;
        let done = future.clone_ref(py);
        let shared = inner.clone();
        inner.engine.handle.spawn(async move {
            let item = shared
                .inbound
                .lock()
                .await
                .recv()
                .await
                .unwrap_or(Inbound::Disconnect(1006, String::new()));
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
                let mut headers = parse_headers(get(message, "headers")?)?;
                if let Some(sub) = get(message, "subprotocol")? {
                    let sub: String = sub.extract()?;
                    if !sub.is_empty() {
                        let value = HeaderValue::from_str(&sub)
                            .map_err(|_| EngineError::InvalidSubprotocol)?;
                        headers.insert(SEC_WEBSOCKET_PROTOCOL, value);
                    }
                }
                let (out_tx, outbound) = mpsc::unbounded_channel();
                *phase = Phase::Open(out_tx);
                let _ = tx.send(Decision::Accept { headers, outbound });
            }
            ("websocket.close", Phase::Handshake(tx)) => {
                *inner
                    .closed_by_app
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Some((1006, String::new()));
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
                let headers = parse_headers(get(message, "headers")?)?;
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
                    *inner
                        .closed_by_app
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) =
                        Some((1006, String::new()));
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
                if out.send(frame).is_err() {
                    return Err(EngineError::ClientDisconnected.into());
                }
                *phase = Phase::Open(out);
            }
            ("websocket.close", Phase::Open(out)) => {
                let code: u16 = get(message, "code")?.map_or(Ok(1000), |v| v.extract())?;
                let reason: String =
                    get(message, "reason")?.map_or(Ok(String::new()), |v| v.extract())?;
                *inner
                    .closed_by_app
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Some((code, reason.clone()));
                let _ = out.send(Message::Close(Some(CloseFrame {
                    code: CloseCode::from(code),
                    reason: reason.into(),
                })));
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
                let _ = tx.send(Decision::Respond(super::http::internal_error()));
                "not_started"
            }
            // Dropping the sender ends the writer; the connection closes without a close
            // frame, as uvicorn closes the transport.
            Phase::Open(_) | Phase::Closed => "complete",
        }
    }
}
