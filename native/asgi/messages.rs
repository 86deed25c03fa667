//! ASGI `http` messages to and from Python: `http.request` and `http.disconnect` dicts made
//! for `receive`, the fields of `http.response.*` read from the app's `send`, and the hyper
//! response made of them.

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use crate::body::ResBody;
use crate::defaults::DefaultHeaders;
use crate::errors::EngineError;
use crate::shared::EngineShared;

pub(super) fn request_message(py: Python<'_>, body: &[u8], more: bool) -> PyResult<Py<PyAny>> {
    let msg = PyDict::new(py);
    msg.set_item(pyo3::intern!(py, "type"), pyo3::intern!(py, "http.request"))?;
    msg.set_item(pyo3::intern!(py, "body"), PyBytes::new(py, body))?;
    msg.set_item(pyo3::intern!(py, "more_body"), more)?;
    Ok(msg.into_any().unbind())
}

pub(super) fn disconnect_message(py: Python<'_>) -> PyResult<Py<PyAny>> {
    let msg = PyDict::new(py);
    msg.set_item(
        pyo3::intern!(py, "type"),
        pyo3::intern!(py, "http.disconnect"),
    )?;
    Ok(msg.into_any().unbind())
}

/// Room left in a response's header map for the server's default headers (`date`, `server`),
/// which `DefaultHeaders::apply` puts before the app's in place.
const DEFAULTS_ROOM: usize = 2;

/// ASGI `headers` (an iterable of `(name, value)` byte pairs) as a `HeaderMap`; names are
/// lower-cased, invalid names or values raise as uvicorn does. With `seed`, the map starts
/// with those default headers (`DefaultHeaders::seeded`: no `apply` is needed then).
pub fn parse_headers(
    headers: Option<Bound<'_, PyAny>>,
    seed: Option<&DefaultHeaders>,
) -> PyResult<HeaderMap> {
    let empty = |room: usize| match seed {
        Some(defaults) => defaults.seeded(room),
        None => HeaderMap::with_capacity(room + DEFAULTS_ROOM),
    };
    let Some(headers) = headers else {
        return Ok(match seed {
            Some(defaults) => defaults.seeded(0),
            None => HeaderMap::new(),
        });
    };
    // The common shape (a list of tuples, as Starlette's `raw_headers`) is read by index, the
    // map sized once; anything else through Python's iteration and `item[0]`, `item[1]`.
    if let Ok(list) = headers.cast_exact::<PyList>() {
        let mut map = empty(list.len());
        for item in list.iter() {
            match item.cast_exact::<PyTuple>() {
                Ok(pair) if pair.len() >= 2 => {
                    let name = pair.get_borrowed_item(0)?;
                    let value = pair.get_borrowed_item(1)?;
                    append_pair(&mut map, &name, &value)?;
                }
                _ => append_pair(&mut map, &item.get_item(0)?, &item.get_item(1)?)?,
            }
        }
        return Ok(map);
    }
    let mut map = match seed {
        Some(defaults) => defaults.seeded(0),
        None => HeaderMap::new(),
    };
    for item in headers.try_iter()? {
        let item = item?;
        append_pair(&mut map, &item.get_item(0)?, &item.get_item(1)?)?;
    }
    Ok(map)
}

fn append_pair(
    map: &mut HeaderMap,
    name: &Bound<'_, PyAny>,
    value: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let name = HeaderName::from_bytes(name.cast::<PyBytes>()?.as_bytes())
        .map_err(|_| EngineError::InvalidHeaderName)?;
    let value = HeaderValue::from_bytes(value.cast::<PyBytes>()?.as_bytes())
        .map_err(|_| EngineError::InvalidHeaderValue)?;
    map.append(name, value);
    Ok(())
}

/// The status and headers of an `http.response.start` message.
pub(super) fn start_message(message: &Bound<'_, PyDict>) -> PyResult<(StatusCode, HeaderMap)> {
    let py = message.py();
    let status: u16 = message
        .get_item(pyo3::intern!(py, "status"))?
        .ok_or(EngineError::StartWithoutStatus)?
        .extract()?;
    let status = StatusCode::from_u16(status).map_err(|_| EngineError::InvalidStatus(status))?;
    let headers = parse_headers(message.get_item(pyo3::intern!(py, "headers"))?, None)?;
    Ok((status, headers))
}

pub(super) fn body_bytes(message: &Bound<'_, PyDict>) -> PyResult<Bytes> {
    match message.get_item(pyo3::intern!(message.py(), "body"))? {
        None => Ok(Bytes::new()),
        Some(body) => {
            if let Ok(b) = body.cast::<PyBytes>() {
                Ok(Bytes::copy_from_slice(b.as_bytes()))
            } else {
                Ok(Bytes::from(body.extract::<Vec<u8>>()?))
            }
        }
    }
}

pub(super) fn more_body(message: &Bound<'_, PyDict>) -> PyResult<bool> {
    match message.get_item(pyo3::intern!(message.py(), "more_body"))? {
        None => Ok(false),
        Some(v) => v.is_truthy(),
    }
}

/// A response whose whole body is known; hyper may trust its `content-length` when it is
/// exact (and the request is not `HEAD`).
pub(super) fn complete_response(
    engine: &EngineShared,
    is_head: bool,
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
) -> Response<ResBody> {
    let exact = !is_head
        && headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<usize>().ok())
            == Some(body.len());
    build_response(engine, status, headers, ResBody::full(body, exact))
}

pub(super) fn build_response(
    engine: &EngineShared,
    status: StatusCode,
    headers: HeaderMap,
    body: ResBody,
) -> Response<ResBody> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    engine.set_reason(&mut response);
    response
}
