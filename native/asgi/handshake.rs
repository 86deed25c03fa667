//! A websocket handshake checked before the app runs, as RFC 6455 4.2.1 asks and as uvicorn
//! (the websockets library) refuses one: a `GET` (else 405) on HTTP/1.1 without a body, one
//! `Sec-WebSocket-Version: 13` (else 426 naming 13, RFC 6455 4.4; uvicorn answers 400), one
//! `Sec-WebSocket-Key` of 16 bytes in base64, a `Sec-WebSocket-Protocol` that parses (else 400).
//! The connection closes after a refusal. `Sec-WebSocket-Extensions` is read only when
//! permessage-deflate is on, as uvicorn reads it (`deflate.rs`, with its refusal's wording).

use base64::Engine as _;
use http::header::{
    CONNECTION, CONTENT_LENGTH, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL, SEC_WEBSOCKET_VERSION,
};
use http::{HeaderValue, Method, Response, StatusCode, Version};
use http_body::Body;
use hyper::body::Incoming;
use hyper::Request;

use crate::body::ResBody;

/// How a handshake is refused, if it is.
pub fn refusal(req: &Request<Incoming>) -> Option<Response<ResBody>> {
    let headers = req.headers();
    if req.method() != Method::GET {
        return Some(refuse(StatusCode::METHOD_NOT_ALLOWED));
    }
    if req.version() != Version::HTTP_11 || !req.body().is_end_stream() {
        return Some(refuse(StatusCode::BAD_REQUEST));
    }
    let mut versions = headers.get_all(SEC_WEBSOCKET_VERSION).iter();
    if versions.next().map(HeaderValue::as_bytes) != Some(b"13") || versions.next().is_some() {
        let mut response = refuse(StatusCode::UPGRADE_REQUIRED);
        response
            .headers_mut()
            .insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        return Some(response);
    }
    let mut keys = headers.get_all(SEC_WEBSOCKET_KEY).iter();
    let key_ok = keys.next().is_some_and(|key| {
        base64::engine::general_purpose::STANDARD
            .decode(key.as_bytes())
            .is_ok_and(|bytes| bytes.len() == 16)
    });
    let lists_ok = headers
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .all(|v| is_token_list(v.as_bytes()));
    if !key_ok || keys.next().is_some() || !lists_ok {
        return Some(refuse(StatusCode::BAD_REQUEST));
    }
    None
}

/// An answer without a body, after which the connection closes.
fn refuse(status: StatusCode) -> Response<ResBody> {
    let mut response = Response::new(ResBody::empty());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
    headers.insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

/// RFC 9110 5.6.2's token characters.
fn is_token(text: &[u8]) -> bool {
    !text.is_empty()
        && text
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Comma-separated tokens (empty elements allowed, as RFC 9110 5.6.1 asks a recipient to).
fn is_token_list(value: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .all(|element| element.is_empty() || is_token(element))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_as_the_websockets_library_parses_them() {
        for good in [&b"chat"[..], b"a, b", b"a,,b", b""] {
            assert!(is_token_list(good), "{good:?}");
        }
        for bad in [&b"a b"[..], b",,a b,", b"a/b"] {
            assert!(!is_token_list(bad), "{bad:?}");
        }
    }
}
