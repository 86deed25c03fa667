//! The answers the server makes itself, as uvicorn words them: a request it cannot parse, an
//! app that failed before its response, a body that could not be read.

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Response, StatusCode};

use crate::body::ResBody;

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

/// uvicorn's (the websockets library's) refusal of a websocket handshake, saying why.
pub fn websocket_refused(why: &str) -> Response<ResBody> {
    let text = format!("Failed to open a WebSocket connection: {why}.\n");
    plain(StatusCode::BAD_REQUEST, Bytes::from(text))
}

/// uvicorn's answer beyond `--limit-concurrency`.
pub fn service_unavailable() -> Response<ResBody> {
    plain_response(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable")
}
