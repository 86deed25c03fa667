//! `GZipMiddleware`: Starlette's `GZipResponder`/`IdentityResponder`, with zlib itself doing the
//! compression (`zlib.compressobj(level, DEFLATED, 31)`), so the bytes are Python's.

use bytes::Bytes;
use flate2::{Compress, Compression, FlushCompress};
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, StatusCode};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::{add_vary, first, option, py_strip, Pending, Step};
use crate::request::RequestHead;

pub struct GZip {
    minimum_size: usize,
    level: u32,
    /// Normalised as Starlette normalises them (media type only, lower case).
    exclude: Vec<Vec<u8>>,
}

/// The compressor of one streamed response.
pub struct Encoder {
    compress: Compress,
}

impl GZip {
    pub fn from_options(options: &Bound<'_, PyDict>) -> PyResult<Self> {
        let exclude: Vec<String> = option(options, "exclude_content_types")?;
        Ok(Self {
            minimum_size: option(options, "minimum_size")?,
            level: option(options, "compresslevel")?,
            exclude: exclude.into_iter().map(String::into_bytes).collect(),
        })
    }

    pub(super) fn on_request(&self, head: &RequestHead) -> Step {
        let accept = first(&head.headers, http::header::ACCEPT_ENCODING).unwrap_or_default();
        let gzip = accept.windows(4).any(|w| w == b"gzip");
        Step::Next(Pending::GZip { gzip })
    }

    /// Whether the response passes untouched: already encoded, partial, or an excluded type.
    fn passes(&self, status: StatusCode, headers: &HeaderMap) -> bool {
        if headers.contains_key(CONTENT_ENCODING) || status.as_u16() == 206 {
            return true;
        }
        let content_type = first(headers, CONTENT_TYPE).unwrap_or_default();
        let media = content_type
            .split(|&b| b == b';')
            .next()
            .unwrap_or_default();
        let media = py_strip(media).to_ascii_lowercase();
        let major = media.split(|&b| b == b'/').next().unwrap_or_default();
        let mut wildcard = major.to_vec();
        wildcard.extend_from_slice(b"/*");
        let grpc = media.starts_with(b"application/grpc+");
        self.exclude.iter().any(|excluded| {
            *excluded == media || *excluded == wildcard || (grpc && excluded == b"application/grpc")
        })
    }

    /// The start of a response with its first body message.
    pub(super) fn on_start(
        &self,
        gzip: bool,
        status: StatusCode,
        headers: &mut HeaderMap,
        body: Bytes,
        more: bool,
    ) -> (Bytes, Option<Encoder>) {
        if self.passes(status, headers) || (body.len() < self.minimum_size && !more) {
            return (body, None);
        }
        add_vary(headers, "Accept-Encoding");
        if !gzip {
            return (body, None);
        }
        let mut encoder = Encoder {
            compress: Compress::new_gzip(Compression::new(self.level), 15),
        };
        let out = encoder.chunk(&body, more);
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        if more {
            headers.remove(CONTENT_LENGTH);
            (out, Some(encoder))
        } else {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(out.len()));
            (out, None)
        }
    }
}

impl Encoder {
    /// `compressor.compress(body) + compressor.flush(Z_SYNC_FLUSH or Z_FINISH)`.
    pub fn chunk(&mut self, body: &[u8], more: bool) -> Bytes {
        let mut out = Vec::with_capacity(body.len() / 2 + 64);
        self.run(body, FlushCompress::None, &mut out);
        let flush = if more {
            FlushCompress::Sync
        } else {
            FlushCompress::Finish
        };
        self.run(&[], flush, &mut out);
        Bytes::from(out)
    }

    fn run(&mut self, mut input: &[u8], flush: FlushCompress, out: &mut Vec<u8>) {
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(256));
            }
            let before_in = self.compress.total_in();
            let status = self.compress.compress_vec(input, out, flush);
            let consumed = (self.compress.total_in() - before_in) as usize;
            input = &input[consumed..];
            match status {
                Ok(flate2::Status::StreamEnd) | Err(_) => return,
                // zlib is done with this call when it consumed the input and had output room
                // left; `Z_FINISH` is done at the stream's end only.
                Ok(_)
                    if input.is_empty()
                        && out.len() < out.capacity()
                        && !matches!(flush, FlushCompress::Finish) =>
                {
                    return
                }
                Ok(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gunzip(data: &[u8]) -> Vec<u8> {
        use std::io::Read;
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(data)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn whole_and_streamed_bodies_decompress() {
        let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut whole = Encoder {
            compress: Compress::new_gzip(Compression::new(9), 15),
        };
        assert_eq!(gunzip(&whole.chunk(&body, false)), body);
        let mut streamed = Encoder {
            compress: Compress::new_gzip(Compression::new(1), 15),
        };
        let mut all = Vec::new();
        for part in body.chunks(7000) {
            all.extend_from_slice(&streamed.chunk(part, true));
        }
        all.extend_from_slice(&streamed.chunk(b"", false));
        assert_eq!(gunzip(&all), body);
    }

    #[test]
    fn python_zlib_bytes() {
        // zlib.compressobj(9, zlib.DEFLATED, 31): c.compress(b"hello " * 100) + c.flush()
        let mut encoder = Encoder {
            compress: Compress::new_gzip(Compression::new(9), 15),
        };
        let out = encoder.chunk(&b"hello ".repeat(100), false);
        assert_eq!(
            out.as_ref(),
            b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03\xcbH\xcd\xc9\xc9W\xc8\x18%GI\xaa\x92\x00\xf31\xa2\rX\x02\x00\x00"
        );
    }
}
