//! ASGI `http` messages to and from Python: `http.request` and `http.disconnect` dicts made
//! for `receive`, and the fields of `http.response.*` read from the app's `send`.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::errors::EngineError;

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

/// ASGI `headers` (an iterable of `(name, value)` byte pairs) as a `HeaderMap`; names are
/// lower-cased, invalid names or values raise as uvicorn does.
pub fn parse_headers(headers: Option<Bound<'_, PyAny>>) -> PyResult<HeaderMap> {
    let mut map = HeaderMap::new();
    let Some(headers) = headers else {
        return Ok(map);
    };
    for item in headers.try_iter()? {
        let item = item?;
        let name = item.get_item(0)?;
        let value = item.get_item(1)?;
        let name = HeaderName::from_bytes(name.cast::<PyBytes>()?.as_bytes())
            .map_err(|_| EngineError::InvalidHeaderName)?;
        let value = HeaderValue::from_bytes(value.cast::<PyBytes>()?.as_bytes())
            .map_err(|_| EngineError::InvalidHeaderValue)?;
        map.append(name, value);
    }
    Ok(map)
}

/// The status and headers of an `http.response.start` message.
pub(super) fn start_message(message: &Bound<'_, PyDict>) -> PyResult<(StatusCode, HeaderMap)> {
    let py = message.py();
    let status: u16 = message
        .get_item(pyo3::intern!(py, "status"))?
        .ok_or(EngineError::StartWithoutStatus)?
        .extract()?;
    let status = StatusCode::from_u16(status).map_err(|_| EngineError::InvalidStatus(status))?;
    let headers = parse_headers(message.get_item(pyo3::intern!(py, "headers"))?)?;
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
