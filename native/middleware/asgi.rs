//! The layers inside the app's Python middleware: the same request and response phases as the
//! native tier's ([`Stack::on_head`], [`Stack::start`]), driven by an ASGI scope and the
//! messages the app sends, so each Python middleware outside them sees the scope and the
//! messages Starlette's own classes would have produced.
//!
//! `MiddlewareStack.enter(scope)` runs the request phases: `None` (the case is one the engine
//! leaves to Starlette's classes: Python runs them), the answer's messages (a preflight, a
//! redirect, an invalid host), or a [`PyLayerCall`] for the request's response phases. A
//! `SessionMiddleware` the request passed has put its `Session` in `scope["session"]`, as
//! Starlette's does before the layers inside it run. The response phases:
//! `start` for `http.response.start` (with the first body message when a `GZipMiddleware`
//! needs it, see `holds`), `chunk` for each later body message. Failures are [`LayerError`]
//! values, turned into Python exceptions once, here.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use super::{Encoders, Flow, Head, Layer, PathText, Pending, RawHeaders, Session, Stack};

/// What can go wrong between the messages and the layers.
#[derive(Debug)]
pub enum LayerError {
    /// A response header that is not a pair of `bytes` (what Starlette's `MutableHeaders`
    /// would fail on too).
    Header,
    /// A method called again after the state it guards was poisoned by a panic elsewhere.
    Poisoned,
}

impl fmt::Display for LayerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Header => f.write_str("response headers must be (bytes, bytes) pairs"),
            Self::Poisoned => f.write_str("the request's middleware state is unusable"),
        }
    }
}

impl From<LayerError> for PyErr {
    fn from(error: LayerError) -> Self {
        match error {
            LayerError::Header => PyTypeError::new_err(error.to_string()),
            LayerError::Poisoned => PyRuntimeError::new_err(error.to_string()),
        }
    }
}

/// The parts of an `http` scope the request phases read, owned.
struct ScopeHead {
    method: Method,
    headers: HeaderMap,
    scheme: String,
    root_path: String,
    path: String,
    query: Vec<u8>,
    server: Option<SocketAddr>,
}

impl ScopeHead {
    /// `None` when the scope holds something the layers would read differently from Python
    /// (a header name not in lower case, a value `http` refuses, a missing key): Starlette's
    /// classes then run.
    fn read(scope: &Bound<'_, PyDict>) -> Option<Self> {
        let text = |key: &str, default: &str| -> Option<String> {
            match scope.get_item(key).ok()? {
                Some(value) => value.extract().ok(),
                None => Some(default.to_owned()),
            }
        };
        let method: String = scope.get_item("method").ok()??.extract().ok()?;
        let mut headers = HeaderMap::new();
        for pair in scope.get_item("headers").ok()??.try_iter().ok()? {
            let pair = pair.ok()?;
            let name = pair.get_item(0).ok()?;
            let value = pair.get_item(1).ok()?;
            let name = name.cast::<PyBytes>().ok()?.as_bytes();
            let value = value.cast::<PyBytes>().ok()?.as_bytes();
            if name.iter().any(u8::is_ascii_uppercase) {
                return None;
            }
            headers.append(
                HeaderName::from_bytes(name).ok()?,
                HeaderValue::from_bytes(value).ok()?,
            );
        }
        let query = match scope.get_item("query_string").ok()? {
            Some(value) => value.cast::<PyBytes>().ok()?.as_bytes().to_vec(),
            None => Vec::new(),
        };
        let server = match scope.get_item("server").ok()? {
            Some(server) if !server.is_none() => {
                let (host, port): (String, u16) = server.extract().ok()?;
                host.parse::<IpAddr>()
                    .ok()
                    .map(|ip| SocketAddr::new(ip, port))
            }
            _ => None,
        };
        Some(Self {
            method: Method::from_bytes(method.as_bytes()).ok()?,
            headers,
            scheme: text("scheme", "http")?,
            root_path: text("root_path", "")?,
            path: scope.get_item("path").ok()??.extract().ok()?,
            query,
            server,
        })
    }

    fn head(&self) -> Head<'_> {
        Head {
            method: &self.method,
            headers: &self.headers,
            scheme: &self.scheme,
            root_path: &self.root_path,
            path: PathText::Decoded(&self.path),
            query: &self.query,
            server: self.server,
            defaults: None, // answers go to the app's `send`
        }
    }
}

/// `MiddlewareStack.enter(scope)`: see the module docs.
pub(super) fn enter<'py>(
    stack: &Arc<Stack>,
    py: Python<'py>,
    scope: &Bound<'py, PyDict>,
) -> PyResult<Bound<'py, PyAny>> {
    let Some(parsed) = ScopeHead::read(scope) else {
        return Ok(py.None().into_bound(py));
    };
    let flow = stack.on_head(&parsed.head());
    let pending = match &flow {
        Flow::Punt => return Ok(py.None().into_bound(py)),
        Flow::Answer(answer) => &answer.pending,
        Flow::Next(pending) => pending,
    };
    let session = stack.open_session(py, pending)?;
    if let Some(session) = &session {
        scope.set_item("session", &session.object)?;
    }
    match flow {
        Flow::Punt => Ok(py.None().into_bound(py)),
        Flow::Answer(answer) => {
            let mut headers = RawHeaders::from(&answer.headers);
            let body = stack.complete(
                Some(py),
                &answer.pending,
                session.as_ref(),
                answer.status,
                &mut headers,
                answer.body,
            )?;
            let start = start_message(py, answer.status.as_u16(), &headers)?;
            let message = PyDict::new(py);
            message.set_item("type", "http.response.body")?;
            message.set_item("body", PyBytes::new(py, &body))?;
            Ok(PyList::new(py, [start.into_any(), message.into_any()])?.into_any())
        }
        Flow::Next(pending) => Ok(Bound::new(
            py,
            PyLayerCall {
                stack: stack.clone(),
                state: Mutex::new(CallState {
                    pending,
                    initial_empty: session.is_none_or(|s| s.initial_empty),
                    encoders: Encoders::default(),
                }),
            },
        )?
        .into_any()),
    }
}

fn start_message<'py>(
    py: Python<'py>,
    status: u16,
    headers: &RawHeaders,
) -> PyResult<Bound<'py, PyDict>> {
    let message = PyDict::new(py);
    message.set_item("type", "http.response.start")?;
    message.set_item("status", status)?;
    message.set_item("headers", header_list(py, headers)?)?;
    Ok(message)
}

fn header_list<'py>(py: Python<'py>, headers: &RawHeaders) -> PyResult<Bound<'py, PyList>> {
    let pairs = headers
        .0
        .iter()
        .map(|(name, value)| PyTuple::new(py, [PyBytes::new(py, name), PyBytes::new(py, value)]));
    PyList::new(py, pairs.collect::<PyResult<Vec<_>>>()?)
}

fn raw_headers(headers: &Bound<'_, PyAny>) -> Result<RawHeaders, LayerError> {
    let mut raw = Vec::new();
    for pair in headers.try_iter().map_err(|_| LayerError::Header)? {
        let pair = pair.map_err(|_| LayerError::Header)?;
        let bytes = |index: usize| -> Result<Vec<u8>, LayerError> {
            let item = pair.get_item(index).map_err(|_| LayerError::Header)?;
            let item = item.cast::<PyBytes>().map_err(|_| LayerError::Header)?;
            Ok(item.as_bytes().to_vec())
        };
        raw.push((bytes(0)?, bytes(1)?));
    }
    Ok(RawHeaders(raw))
}

/// The only status a layer decides on is 206 (`GZipMiddleware`); a status `http` refuses is
/// "not 206", as it is to Starlette.
fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::OK)
}

struct CallState {
    pending: Vec<Pending>,
    /// `SessionMiddleware`'s `initial_session_was_empty`.
    initial_empty: bool,
    encoders: Encoders,
}

/// One request inside the layers: what its request phases left for its response phases.
#[pyclass(frozen, module = "fastrapi_compat._native", name = "LayerCall")]
pub struct PyLayerCall {
    stack: Arc<Stack>,
    state: Mutex<CallState>,
}

impl PyLayerCall {
    fn state(&self) -> Result<std::sync::MutexGuard<'_, CallState>, LayerError> {
        self.state.lock().map_err(|_| LayerError::Poisoned)
    }
}

#[pymethods]
impl PyLayerCall {
    /// Whether `http.response.start` waits for the first body message (a `GZipMiddleware`
    /// that acts on this response decides with the body).
    fn holds(&self, status_code: u16, headers: &Bound<'_, PyAny>) -> PyResult<bool> {
        let headers = raw_headers(headers)?;
        let state = self.state()?;
        Ok(self
            .stack
            .layers
            .iter()
            .zip(&state.pending)
            .any(|(layer, note)| match (layer, note) {
                (Layer::GZip(gzip), Pending::GZip { .. }) => {
                    !gzip.passes(status(status_code), &headers)
                }
                _ => false,
            }))
    }

    /// The response phases for `http.response.start` (and the first body message, `body`,
    /// when [`holds`](Self::holds) said so: else `b""` with `more_body`): the headers and body
    /// to send. `session`: the scope's `session` now (None without that layer).
    #[pyo3(signature = (status_code, headers, body, more, session=None))]
    fn start<'py>(
        &self,
        py: Python<'py>,
        status_code: u16,
        headers: &Bound<'py, PyAny>,
        body: &[u8],
        more: bool,
        session: Option<Py<PyAny>>,
    ) -> PyResult<(Bound<'py, PyList>, Bound<'py, PyBytes>)> {
        let mut raw = raw_headers(headers)?;
        let mut state = self.state()?;
        let session = session.map(|object| Session {
            object,
            initial_empty: state.initial_empty,
        });
        let (out, encoders) = self.stack.start(
            Some(py),
            &state.pending,
            session.as_ref(),
            status(status_code),
            &mut raw,
            Bytes::copy_from_slice(body),
            more,
        )?;
        state.encoders = encoders;
        drop(state);
        Ok((header_list(py, &raw)?, PyBytes::new(py, &out)))
    }

    /// A later body message through the response's encoders (the body unchanged without one).
    fn chunk<'py>(
        &self,
        py: Python<'py>,
        body: &Bound<'py, PyBytes>,
        more: bool,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let mut state = self.state()?;
        if state.encoders.is_empty() {
            return Ok(body.clone());
        }
        let out = state
            .encoders
            .chunk(Bytes::copy_from_slice(body.as_bytes()), more);
        Ok(PyBytes::new(py, &out))
    }
}
