//! Request framing the engine refuses before or while the app reads the body (what h11 and
//! httptools refuse), answered with `canned::invalid_request`.

use std::io;

use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::HeaderMap;

/// Whether a request head frames its body ambiguously, as request smuggling does: both
/// `Transfer-Encoding` and `Content-Length`, a `Transfer-Encoding` other than one `chunked`,
/// or `Content-Length` more than once (equal or not). h11 and httptools refuse all of them.
pub fn ambiguous_framing(headers: &HeaderMap) -> bool {
    let lengths = headers.get_all(CONTENT_LENGTH).iter().count();
    let mut codings = headers.get_all(TRANSFER_ENCODING).iter().peekable();
    if codings.peek().is_none() {
        return lengths > 1;
    }
    if lengths > 0 {
        return true;
    }
    let mut tokens = 0;
    for value in codings {
        let Ok(text) = value.to_str() else {
            return true;
        };
        for token in text.split(',') {
            tokens += 1;
            if tokens > 1 || !token.trim().eq_ignore_ascii_case("chunked") {
                return true;
            }
        }
    }
    tokens != 1
}

/// What a body read error means: a body framed wrongly by the client (a bad chunk size, chunk
/// data longer than announced, a bad line ending) rather than a client that went away.
pub fn is_framing_error(error: &hyper::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(io_error) = cause.downcast_ref::<io::Error>() {
            return matches!(
                io_error.kind(),
                io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData
            );
        }
        source = cause.source();
    }
    error.is_parse()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn head(lines: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in lines {
            headers.append(*name, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn one_final_chunked_or_one_length_is_unambiguous() {
        assert!(!ambiguous_framing(&head(&[])));
        assert!(!ambiguous_framing(&head(&[(
            "transfer-encoding",
            "chunked"
        )])));
        assert!(!ambiguous_framing(&head(&[(
            "transfer-encoding",
            " Chunked "
        )])));
        assert!(!ambiguous_framing(&head(&[("content-length", "3")])));
    }

    #[test]
    fn smuggling_shapes_are_ambiguous() {
        for lines in [
            &[("transfer-encoding", "chunked, chunked")][..],
            &[
                ("transfer-encoding", "chunked"),
                ("transfer-encoding", "chunked"),
            ],
            &[("transfer-encoding", "gzip, chunked")],
            &[("transfer-encoding", "chunked"), ("content-length", "3")],
            &[("content-length", "3"), ("content-length", "3")],
            &[("transfer-encoding", "")],
        ] {
            assert!(ambiguous_framing(&head(lines)), "{lines:?}");
        }
    }
}
