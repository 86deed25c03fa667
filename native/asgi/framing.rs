//! Request framing the engine refuses (what h11 and httptools refuse), answered with
//! `canned::invalid_request`: a `Transfer-Encoding` other than one `chunked` (the head guard,
//! `native/head/`, asks), a chunked body that turns out malformed while the app reads it.

use std::io;

/// Whether `Transfer-Encoding` values (one per header line) say anything but one `chunked`.
pub fn not_one_chunked<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> bool {
    let mut tokens = 0;
    for value in values {
        for token in value.split(|&b| b == b',') {
            tokens += 1;
            if tokens > 1 || !token.trim_ascii().eq_ignore_ascii_case(b"chunked") {
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

    #[test]
    fn one_chunked_and_nothing_else() {
        assert!(!not_one_chunked([&b"chunked"[..]]));
        assert!(!not_one_chunked([&b" Chunked "[..]]));
        for values in [
            &[&b"chunked, chunked"[..]][..],
            &[b"chunked", b"chunked"],
            &[b"gzip, chunked"],
            &[b"chunked, gzip"],
            &[b""],
            &[],
        ] {
            assert!(not_one_chunked(values.iter().copied()), "{values:?}");
        }
    }
}
