//! `GZipMiddleware`: Starlette's `GZipResponder`/`IdentityResponder`, with zlib itself doing the
//! compression (`zlib.compressobj(level, DEFLATED, 31)`), so the bytes are Python's.
//!
//! Older releases (switches set by the Python side from the module's source digest): before
//! Starlette 1.4 the body goes through `gzip.GzipFile` (its own header: the request's time as
//! mtime, OS 255; raw deflate with no flush between chunks; CRC and size at the end); 1.4.x
//! compress with zlib but without `Z_SYNC_FLUSH`; before 0.46 a client that does not take gzip
//! gets the response untouched (no `Vary`) and no content type is excluded; 0.46 to 1.4 exclude
//! only content types starting with `text/event-stream`; 206 passes from 1.5, `grpc+` from 1.8;
//! before 0.46 `Vary` is added after `Content-Encoding` and `Content-Length`. On Python 3.12+
//! `GzipFile` buffers what it is given (32 KiB on 3.13) before compressing, so stock Starlette
//! sends a streamed body's compressed bytes in later chunks than here: the body's bytes are the
//! same (zlib's output does not depend on how its input was cut), only the chunk ends differ.

use bytes::Bytes;
use flate2::{Compress, Compression, Crc, FlushCompress};
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, StatusCode};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::{add_vary, first, option, py_strip, Head, HeaderList, Pending, Step};
use crate::errors::EngineError;

pub struct GZip {
    minimum_size: usize,
    level: u32,
    /// Normalised as Starlette normalises them (media type only, lower case), or prefixes of
    /// the raw `Content-Type` (`exclude_prefix`).
    exclude: Vec<Vec<u8>>,
    exclude_prefix: bool,
    /// `gzip.GzipFile` framing (Starlette < 1.4).
    gzip_file: bool,
    sync_flush: bool,
    /// `IdentityResponder` (Starlette >= 0.46): `Vary` for clients without gzip too.
    identity_vary: bool,
    partial_passes: bool,
    grpc_alias: bool,
    vary_join_all: bool,
}

/// The compressor of one streamed response.
pub struct Encoder {
    compress: Compress,
    /// `GzipFile`'s running CRC-32 and size, written after the deflate stream; `None` for
    /// zlib's own gzip framing.
    crc: Option<Crc>,
    sync_flush: bool,
}

impl GZip {
    pub fn from_options(options: &Bound<'_, PyDict>) -> PyResult<Self> {
        let exclude: Vec<String> = option(options, "exclude_content_types")?;
        let exclude_mode: String = option(options, "exclude_mode")?;
        let framing: String = option(options, "framing")?;
        for (key, value, known) in [
            (
                "exclude_mode",
                &exclude_mode,
                &["media", "prefix", "none"][..],
            ),
            ("framing", &framing, &["zlib", "gzipfile"][..]),
        ] {
            if !known.contains(&value.as_str()) {
                return Err(EngineError::OptionValue(key.to_owned(), value.clone()).into());
            }
        }
        Ok(Self {
            minimum_size: option(options, "minimum_size")?,
            level: option(options, "compresslevel")?,
            exclude: exclude.into_iter().map(String::into_bytes).collect(),
            exclude_prefix: exclude_mode == "prefix",
            gzip_file: framing == "gzipfile",
            sync_flush: option(options, "sync_flush")?,
            identity_vary: option(options, "identity_vary")?,
            partial_passes: option(options, "partial_passes")?,
            grpc_alias: option(options, "grpc_alias")?,
            vary_join_all: option(options, "vary_join_all")?,
        })
    }

    pub(super) fn on_request(&self, head: &Head<'_>) -> Step {
        let accept = first(head.headers, http::header::ACCEPT_ENCODING).unwrap_or_default();
        let gzip = accept.windows(4).any(|w| w == b"gzip");
        let mtime = if gzip && self.gzip_file {
            // `int(time.time())` when `GZipResponder` makes its `GzipFile`.
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as u32)
        } else {
            0
        };
        Step::Next(Pending::GZip { gzip, mtime })
    }

    /// Whether the response passes untouched: already encoded, partial, or an excluded type.
    pub(super) fn passes(&self, status: StatusCode, headers: &impl HeaderList) -> bool {
        if headers.first(CONTENT_ENCODING.as_str()).is_some()
            || (self.partial_passes && status.as_u16() == 206)
        {
            return true;
        }
        let content_type = headers.first(CONTENT_TYPE.as_str()).unwrap_or_default();
        if self.exclude_prefix {
            return self.exclude.iter().any(|p| content_type.starts_with(p));
        }
        let media = content_type
            .split(|&b| b == b';')
            .next()
            .unwrap_or_default();
        let media = py_strip(media).to_ascii_lowercase();
        let major = media.split(|&b| b == b'/').next().unwrap_or_default();
        let mut wildcard = major.to_vec();
        wildcard.extend_from_slice(b"/*");
        let grpc = self.grpc_alias && media.starts_with(b"application/grpc+");
        self.exclude.iter().any(|excluded| {
            *excluded == media || *excluded == wildcard || (grpc && excluded == b"application/grpc")
        })
    }

    /// The start of a response with its first body message.
    pub(super) fn on_start(
        &self,
        gzip: bool,
        mtime: u32,
        status: StatusCode,
        headers: &mut impl HeaderList,
        body: Bytes,
        more: bool,
    ) -> (Bytes, Option<Encoder>) {
        if (!gzip && !self.identity_vary)
            || self.passes(status, headers)
            || (body.len() < self.minimum_size && !more)
        {
            return (body, None);
        }
        if self.identity_vary {
            add_vary(headers, "Accept-Encoding", self.vary_join_all);
        }
        if !gzip {
            return (body, None);
        }
        let mut encoder = self.encoder();
        let mut out = Vec::new();
        if self.gzip_file {
            out.extend_from_slice(&self.gzip_file_header(mtime));
        }
        out.extend_from_slice(&encoder.chunk(&body, more));
        let out = Bytes::from(out);
        headers.set(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        let result = if more {
            headers.remove(CONTENT_LENGTH.as_str());
            (out, Some(encoder))
        } else {
            headers.set(CONTENT_LENGTH, HeaderValue::from(out.len()));
            (out, None)
        };
        if !self.identity_vary {
            add_vary(headers, "Accept-Encoding", self.vary_join_all);
        }
        result
    }

    fn encoder(&self) -> Encoder {
        let level = Compression::new(self.level);
        if self.gzip_file {
            Encoder {
                compress: Compress::new(level, false), // raw deflate, as `GzipFile` makes it
                crc: Some(Crc::new()),
                sync_flush: false,
            }
        } else {
            Encoder {
                compress: Compress::new_gzip(level, 15),
                crc: None,
                sync_flush: self.sync_flush,
            }
        }
    }

    /// `GzipFile._write_gzip_header` for an unnamed file object.
    fn gzip_file_header(&self, mtime: u32) -> [u8; 10] {
        let xfl = match self.level {
            9 => 2,
            1 => 4,
            _ => 0,
        };
        let t = mtime.to_le_bytes();
        [0x1f, 0x8b, 8, 0, t[0], t[1], t[2], t[3], xfl, 0xff]
    }
}

impl Encoder {
    /// `compressor.compress(body) + compressor.flush(Z_SYNC_FLUSH or Z_FINISH)`; for a
    /// `GzipFile`, `write(body)` (no flush) and, at the end, `close()`.
    pub fn chunk(&mut self, body: &[u8], more: bool) -> Bytes {
        let mut out = Vec::with_capacity(body.len() / 2 + 64);
        if let Some(crc) = &mut self.crc {
            crc.update(body);
        }
        self.run(body, FlushCompress::None, &mut out);
        if more && !self.sync_flush {
            return Bytes::from(out);
        }
        let flush = if more {
            FlushCompress::Sync
        } else {
            FlushCompress::Finish
        };
        self.run(&[], flush, &mut out);
        if let (false, Some(crc)) = (more, &self.crc) {
            out.extend_from_slice(&crc.sum().to_le_bytes());
            out.extend_from_slice(&crc.amount().to_le_bytes());
        }
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
            crc: None,
            sync_flush: true,
        };
        assert_eq!(gunzip(&whole.chunk(&body, false)), body);
        let mut streamed = Encoder {
            compress: Compress::new_gzip(Compression::new(1), 15),
            crc: None,
            sync_flush: true,
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
            crc: None,
            sync_flush: true,
        };
        let out = encoder.chunk(&b"hello ".repeat(100), false);
        assert_eq!(
            out.as_ref(),
            b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03\xcbH\xcd\xc9\xc9W\xc8\x18%GI\xaa\x92\x00\xf31\xa2\rX\x02\x00\x00"
        );
    }

    #[test]
    fn python_gzip_file_bytes() {
        // GzipFile(mode="wb", fileobj=BytesIO(), compresslevel=9, mtime=1700000000), the body
        // written in two parts, then closed.
        let gzip = GZip {
            minimum_size: 0,
            level: 9,
            exclude: Vec::new(),
            exclude_prefix: false,
            gzip_file: true,
            sync_flush: false,
            identity_vary: false,
            partial_passes: false,
            grpc_alias: false,
            vary_join_all: false,
        };
        let mut encoder = gzip.encoder();
        let mut out = gzip.gzip_file_header(1_700_000_000).to_vec();
        out.extend_from_slice(&encoder.chunk(&b"hello ".repeat(50), true));
        out.extend_from_slice(&encoder.chunk(&b"hello ".repeat(50), false));
        assert_eq!(
            out,
            b"\x1f\x8b\x08\x00\x00\xf1Se\x02\xff\xcbH\xcd\xc9\xc9W\xc8\x18%GI\xaa\x92\x00\xf31\xa2\rX\x02\x00\x00"
        );
    }
}
