//! The answers the server makes itself, as uvicorn words them: a request it cannot parse, an
//! app that failed before its response, a body that could not be read; and beyond uvicorn, a
//! body over `--limit-request-body` and a head slower than `--timeout-request-header`.

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Response, StatusCode};

use crate::body::ResBody;
use crate::defaults::DefaultHeaders;

/// A plain-text answer; the connection is closed after it.
pub fn plain_response(status: StatusCode, text: &'static str) -> Response<ResBody> {
    plain(status, Bytes::from_static(text.as_bytes()))
}

fn plain(status: StatusCode, text: Bytes) -> Response<ResBody> {
    let length = text.len();
    let mut response = Response::new(ResBody::full(text, true));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
    headers.insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

/// uvicorn's answer to a request it cannot parse (and the connection is closed).
pub fn invalid_request() -> Response<ResBody> {
    plain_response(StatusCode::BAD_REQUEST, "Invalid HTTP request received.")
}

/// uvicorn's answer when the app fails before starting a response.
pub fn internal_error() -> Response<ResBody> {
    plain_response(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
}

/// The answer to a body beyond `--limit-request-body` (Starlette's `max_body_size` answer).
pub fn content_too_large() -> Response<ResBody> {
    plain_response(StatusCode::PAYLOAD_TOO_LARGE, "Content Too Large")
}

/// The answer to a request head slower than `--timeout-request-header`, as bytes for the wire
/// (no request was parsed, so hyper is not there to write it): the listener's default headers,
/// then those of [`plain_response`].
pub fn request_timeout_bytes(defaults: &DefaultHeaders) -> Bytes {
    let mut headers = HeaderMap::new();
    defaults.apply(&mut headers);
    let text = "Request Timeout";
    let mut out = Vec::with_capacity(160);
    out.extend_from_slice(b"HTTP/1.1 408 Request Timeout\r\n");
    for (name, value) in &headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"content-type: text/plain; charset=utf-8\r\n");
    out.extend_from_slice(format!("content-length: {}\r\n", text.len()).as_bytes());
    out.extend_from_slice(b"connection: close\r\n\r\n");
    out.extend_from_slice(text.as_bytes());
    Bytes::from(out)
}

/// uvicorn's (the websockets library's) refusal of a websocket handshake, saying why.
pub fn websocket_refused(why: &str) -> Response<ResBody> {
    let text = format!("Failed to open a WebSocket connection: {why}.\n");
    plain(StatusCode::BAD_REQUEST, Bytes::from(text))
}

/// uvicorn's answer beyond `--limit-concurrency`.
pub fn service_unavailable() -> Response<ResBody> {
    plain_response(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable")
}
