//! permessage-deflate (RFC 7692) as uvicorn offers it: websockets' server extension with
//! `server_max_window_bits=12`, `client_max_window_bits=12` and zlib's `memLevel` 5. The
//! client's offer is negotiated as websockets negotiates it (the same response header for the
//! same offer), messages are compressed by zlib with websockets' settings (so the frames equal
//! uvicorn's byte for byte), and inflated within the size limit.

use std::os::raw::{c_int, c_uint, c_void};
use std::ptr;

use bytes::Bytes;
use flate2::{Decompress, FlushDecompress, Status};
use libz_sys as z;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;

const NAME: &[u8] = b"permessage-deflate";
/// uvicorn's limits on the window each side compresses with.
const SERVER_MAX_WINDOW_BITS: u8 = 12;
const CLIENT_MAX_WINDOW_BITS: u8 = 12;
/// websockets' `compress_settings={"memLevel": 5}` (zlib's default is 8: 4.5 times the memory).
const MEM_LEVEL: c_int = 5;
/// What a sync flush ends with: cut from each message sent, put back before inflating one.
const SYNC_TAIL: [u8; 4] = [0, 0, 0xff, 0xff];

/// The extension as agreed with one client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Agreement {
    pub server_no_context_takeover: bool,
    pub client_no_context_takeover: bool,
    pub server_max_window_bits: u8,
    /// `None`: the client did not offer the parameter (its window is then up to 15 bits).
    pub client_max_window_bits: Option<u8>,
}

/// The `Sec-WebSocket-Extensions` request header does not parse: the handshake gets a 400
/// saying why in websockets' words (`invalid Sec-WebSocket-Extensions header: expected token
/// at 0 in ...`).
#[derive(Debug, PartialEq, Eq)]
pub struct Malformed(pub String);

/// Where the grammar failed: websockets' description and the position in the header.
type Fault = (&'static str, usize);

type Params = Vec<(String, Option<String>)>;

/// The first acceptable `permessage-deflate` offer among the `Sec-WebSocket-Extensions`
/// header values (other extensions, and offers with parameters websockets declines, are
/// skipped), as websockets' server negotiates it.
pub fn negotiate<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Option<Agreement>, Malformed> {
    let mut accepted = None;
    for value in values {
        for (name, params) in parse_header(value)? {
            if accepted.is_none() && name.as_bytes() == NAME {
                accepted = accept(&params);
            }
        }
    }
    Ok(accepted)
}

fn window_bits(value: Option<&str>) -> Option<u8> {
    match value? {
        "8" => Some(8),
        "9" => Some(9),
        "10" => Some(10),
        "11" => Some(11),
        "12" => Some(12),
        "13" => Some(13),
        "14" => Some(14),
        "15" => Some(15),
        _ => None,
    }
}

/// One offer: `None` when websockets would decline it (an unknown, repeated or ill-valued
/// parameter, or a server window of 8 bits, which zlib cannot compress with).
fn accept(params: &Params) -> Option<Agreement> {
    let (mut server_nct, mut client_nct) = (false, false);
    let mut server_bits: Option<u8> = None;
    // `Some(None)`: offered without a value ("any window you like").
    let mut client_bits: Option<Option<u8>> = None;
    for (name, value) in params {
        match name.as_str() {
            "server_no_context_takeover" if !server_nct && value.is_none() => server_nct = true,
            "client_no_context_takeover" if !client_nct && value.is_none() => client_nct = true,
            "server_max_window_bits" if server_bits.is_none() => {
                server_bits = Some(window_bits(value.as_deref())?);
            }
            "client_max_window_bits" if client_bits.is_none() => {
                client_bits = Some(match value {
                    None => None,
                    Some(v) => Some(window_bits(Some(v))?),
                });
            }
            _ => return None,
        }
    }
    let server_max_window_bits =
        server_bits.map_or(SERVER_MAX_WINDOW_BITS, |b| b.min(SERVER_MAX_WINDOW_BITS));
    if server_max_window_bits == 8 {
        return None;
    }
    Some(Agreement {
        server_no_context_takeover: server_nct,
        client_no_context_takeover: client_nct,
        server_max_window_bits,
        client_max_window_bits: client_bits
            .map(|b| b.map_or(CLIENT_MAX_WINDOW_BITS, |b| b.min(CLIENT_MAX_WINDOW_BITS))),
    })
}

impl Agreement {
    /// The response's `Sec-WebSocket-Extensions` value, worded as websockets words it.
    pub fn header(&self) -> String {
        let mut header = String::from("permessage-deflate");
        if self.server_no_context_takeover {
            header.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            header.push_str("; client_no_context_takeover");
        }
        header.push_str(&format!(
            "; server_max_window_bits={}",
            self.server_max_window_bits
        ));
        if let Some(bits) = self.client_max_window_bits {
            header.push_str(&format!("; client_max_window_bits={bits}"));
        }
        header
    }

    pub fn encoder(&self) -> Encoder {
        Encoder {
            window_bits: self.server_max_window_bits,
            fresh_each_message: self.server_no_context_takeover,
            stream: None,
        }
    }

    pub fn decoder(&self) -> Decoder {
        Decoder {
            // flate2 takes 9 to 15; a 9-bit window also inflates what an 8-bit one compressed.
            window_bits: self.client_max_window_bits.unwrap_or(15).max(9),
            fresh_each_message: self.client_no_context_takeover,
            stream: None,
        }
    }
}

// -- the header's grammar (RFC 6455 9.1, RFC 7230 7), as websockets parses it --------------------

fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn token(&mut self) -> Result<String, Fault> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        if self.pos == start {
            return Err(("expected token", start));
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.pos]).into_owned())
    }

    /// A quoted string whose content, unescaped, must be a token.
    fn quoted_token(&mut self) -> Result<String, Fault> {
        let quote = self.pos;
        let unquoted = ("expected quoted string", quote);
        self.pos += 1;
        let mut content = Vec::new();
        loop {
            let c = self.peek().ok_or(unquoted)?;
            self.pos += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let escaped = self.peek().ok_or(unquoted)?;
                    if !(escaped == b'\t' || (0x20..=0x7e).contains(&escaped) || escaped >= 0x80) {
                        return Err(unquoted);
                    }
                    self.pos += 1;
                    content.push(escaped);
                }
                b'\t' | 0x20..=0x21 | 0x23..=0x5b | 0x5d..=0x7e => content.push(c),
                _ => return Err(unquoted),
            }
        }
        if content.is_empty() || !content.iter().copied().all(is_tchar) {
            return Err(("invalid quoted header content", quote));
        }
        Ok(String::from_utf8_lossy(&content).into_owned())
    }

    fn param(&mut self) -> Result<(String, Option<String>), Fault> {
        let name = self.token()?;
        self.ows();
        let mut value = None;
        if self.peek() == Some(b'=') {
            self.pos += 1;
            self.ows();
            value = Some(if self.peek() == Some(b'"') {
                self.quoted_token()?
            } else {
                self.token()?
            });
            self.ows();
        }
        Ok((name, value))
    }

    fn item(&mut self) -> Result<(String, Params), Fault> {
        let name = self.token()?;
        self.ows();
        let mut params = Vec::new();
        while self.peek() == Some(b';') {
            self.pos += 1;
            self.ows();
            params.push(self.param()?);
        }
        Ok((name, params))
    }

    fn skip_commas(&mut self) {
        while self.peek() == Some(b',') {
            self.pos += 1;
            self.ows();
        }
    }
}

/// `1#extension`: empty list elements are skipped, anything else out of place is malformed.
fn parse_header(value: &[u8]) -> Result<Vec<(String, Params)>, Malformed> {
    let start = value.iter().position(|c| !matches!(c, b' ' | b'\t'));
    let end = value.iter().rposition(|c| !matches!(c, b' ' | b'\t'));
    let s = match (start, end) {
        (Some(start), Some(end)) => &value[start..=end],
        _ => &[],
    };
    parse_list(s).map_err(|(fault, pos)| {
        // websockets reads header values as ISO-8859-1
        let header: String = s.iter().map(|&b| char::from(b)).collect();
        Malformed(format!(
            "invalid Sec-WebSocket-Extensions header: {fault} at {pos} in {header}"
        ))
    })
}

fn parse_list(s: &[u8]) -> Result<Vec<(String, Params)>, Fault> {
    let mut cursor = Cursor { s, pos: 0 };
    cursor.skip_commas();
    let mut items = Vec::new();
    loop {
        items.push(cursor.item()?);
        cursor.ows();
        if cursor.pos == s.len() {
            break;
        }
        if cursor.peek() != Some(b',') {
            return Err(("expected comma", cursor.pos));
        }
        cursor.skip_commas();
        if cursor.pos == s.len() {
            break;
        }
    }
    Ok(items)
}

// -- sending: zlib with websockets' settings ------------------------------------------------------

/// Compresses the server's messages, each as one frame with RSV1 set.
pub struct Encoder {
    window_bits: u8,
    fresh_each_message: bool,
    /// Made on the first message (a websocket that never sends costs nothing).
    stream: Option<Deflater>,
}

impl Encoder {
    /// A text or binary message as its compressed frame; other messages as they are. Should
    /// zlib fail (out of memory), the message goes uncompressed, which RFC 7692 allows.
    pub fn message(&mut self, message: Message) -> Message {
        let (data, opcode) = match message {
            Message::Text(text) => (Bytes::from(text), Data::Text),
            Message::Binary(data) => (data, Data::Binary),
            other => return other,
        };
        match self.compress(&data) {
            Some(compressed) => {
                let mut frame = Frame::message(compressed, OpCode::Data(opcode), true);
                frame.header_mut().rsv1 = true;
                Message::Frame(frame)
            }
            None => Message::Frame(Frame::message(data, OpCode::Data(opcode), true)),
        }
    }

    /// RFC 7692 7.2.1: deflate, sync flush, cut the flush's empty block.
    fn compress(&mut self, data: &[u8]) -> Option<Vec<u8>> {
        if self.fresh_each_message {
            self.stream = None;
        }
        let stream = match &mut self.stream {
            Some(stream) => stream,
            empty => empty.insert(Deflater::new(self.window_bits)?),
        };
        let compressed = stream.sync_flush(data);
        if compressed.is_none() || self.fresh_each_message {
            self.stream = None; // a failed stream is not reused; a fresh one is always valid
        }
        let mut compressed = compressed?;
        if !compressed.ends_with(&SYNC_TAIL) {
            return None;
        }
        compressed.truncate(compressed.len() - SYNC_TAIL.len());
        Some(compressed)
    }
}

/// A raw deflate stream of zlib's, with a window and memory level flate2 does not offer
/// (it always uses `memLevel` 8).
struct Deflater {
    /// Boxed: zlib keeps a pointer to it in its state, so it must not move.
    stream: Box<z::z_stream>,
}

// SAFETY: the stream and the memory zlib allocated for it belong to this value alone (no
// pointer to them is shared), and zlib's state has no tie to a thread.
unsafe impl Send for Deflater {}

// SAFETY (this block and `Deflater`'s methods): zlib is given a `z_stream` it initialised,
// which never moves (boxed) and is ended once (in `drop`); `next_in`/`next_out` point into
// live slices only for the duration of one `deflate` call, with `avail_*` no larger than them.
// The allocation callbacks below never unwind (no panic crosses into C).
impl Deflater {
    fn new(window_bits: u8) -> Option<Self> {
        let mut stream = Box::new(z::z_stream {
            next_in: ptr::null_mut(),
            avail_in: 0,
            total_in: 0,
            next_out: ptr::null_mut(),
            avail_out: 0,
            total_out: 0,
            msg: ptr::null_mut(),
            state: ptr::null_mut(),
            zalloc,
            zfree,
            opaque: ptr::null_mut(),
            data_type: 0,
            adler: 0,
            reserved: 0,
        });
        let size = c_int::try_from(std::mem::size_of::<z::z_stream>()).ok()?;
        // SAFETY: see above; on failure zlib frees what it allocated itself.
        let rc = unsafe {
            z::deflateInit2_(
                &mut *stream,
                z::Z_DEFAULT_COMPRESSION,
                z::Z_DEFLATED,
                -c_int::from(window_bits),
                MEM_LEVEL,
                z::Z_DEFAULT_STRATEGY,
                z::zlibVersion(),
                size,
            )
        };
        (rc == z::Z_OK).then_some(Self { stream })
    }

    /// All of `input` compressed and sync-flushed (the output ends with `SYNC_TAIL`), with
    /// the calls Python's `compress(input)` then `flush(Z_SYNC_FLUSH)` make, so that even an
    /// empty message right after another gives the same bytes.
    fn sync_flush(&mut self, input: &[u8]) -> Option<Vec<u8>> {
        let mut out: Vec<u8> = Vec::with_capacity(input.len() / 4 + 64);
        let mut ok = true;
        let mut chunks = input.chunks(c_uint::MAX as usize);
        let first = chunks.next().unwrap_or_default();
        for chunk in std::iter::once(first).chain(chunks) {
            ok = ok && self.deflate(chunk, z::Z_NO_FLUSH, &mut out);
        }
        ok = ok && self.deflate(&[], z::Z_SYNC_FLUSH, &mut out);
        self.stream.next_in = ptr::null_mut();
        self.stream.next_out = ptr::null_mut();
        self.stream.avail_in = 0;
        self.stream.avail_out = 0;
        ok.then_some(out)
    }

    /// `chunk` (at most `c_uint::MAX` bytes) through zlib's `deflate` with `flush`, as long as
    /// zlib fills the output it is given; `false` when zlib fails.
    fn deflate(&mut self, chunk: &[u8], flush: c_int, out: &mut Vec<u8>) -> bool {
        self.stream.next_in = chunk.as_ptr().cast_mut();
        self.stream.avail_in = c_uint::try_from(chunk.len()).unwrap_or(c_uint::MAX);
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(1024));
            }
            let spare = (out.capacity() - out.len()).min(c_uint::MAX as usize);
            // SAFETY: `spare` bytes after `out.len()` are allocated; zlib writes at most
            // `avail_out` of them, and `set_len` covers only what it wrote.
            let rc = unsafe {
                self.stream.next_out = out.as_mut_ptr().add(out.len());
                self.stream.avail_out = spare as c_uint;
                let rc = z::deflate(&mut *self.stream, flush);
                out.set_len(out.len() + spare - self.stream.avail_out as usize);
                rc
            };
            // Z_BUF_ERROR: nothing to do (no input, nothing to flush), not a failure.
            if rc != z::Z_OK && rc != z::Z_BUF_ERROR {
                return false;
            }
            if self.stream.avail_out != 0 {
                return self.stream.avail_in == 0;
            }
        }
    }
}

impl Drop for Deflater {
    fn drop(&mut self) {
        // SAFETY: initialised by `deflateInit2_`, ended only here.
        unsafe {
            z::deflateEnd(&mut *self.stream);
        }
    }
}

/// Alignment of the blocks handed to zlib, and the room before each that keeps its size.
const ALIGN: usize = 16;

extern "C" fn zalloc(_opaque: *mut c_void, items: c_uint, size: c_uint) -> *mut c_void {
    let Some(total) = (items as usize)
        .checked_mul(size as usize)
        .and_then(|n| n.checked_add(ALIGN))
    else {
        return ptr::null_mut();
    };
    let Ok(layout) = std::alloc::Layout::from_size_align(total, ALIGN) else {
        return ptr::null_mut();
    };
    // SAFETY: `layout` has a non-zero size; the size is written in the block's first bytes,
    // which are aligned for `usize`, and zlib gets the memory after them.
    unsafe {
        let block = std::alloc::alloc(layout);
        if block.is_null() {
            return ptr::null_mut();
        }
        block.cast::<usize>().write(total);
        block.add(ALIGN).cast()
    }
}

extern "C" fn zfree(_opaque: *mut c_void, address: *mut c_void) {
    if address.is_null() {
        return;
    }
    // SAFETY: `address` came from `zalloc`, which put the block's size `ALIGN` bytes before it.
    unsafe {
        let block = address.cast::<u8>().sub(ALIGN);
        let total = block.cast::<usize>().read();
        std::alloc::dealloc(
            block,
            std::alloc::Layout::from_size_align_unchecked(total, ALIGN),
        );
    }
}

// -- receiving ------------------------------------------------------------------------------------

/// Why a compressed frame could not be inflated.
#[derive(Debug, PartialEq, Eq)]
pub enum InflateError {
    /// It inflates to more than the limit.
    TooBig,
    /// It is not valid deflate data.
    Corrupt,
}

/// Inflates the client's compressed messages.
pub struct Decoder {
    window_bits: u8,
    fresh_each_message: bool,
    stream: Option<Decompress>,
}

impl Decoder {
    /// A compressed message starts: without context takeover, with a fresh window.
    pub fn start_message(&mut self) {
        if self.fresh_each_message {
            self.stream = None;
        }
    }

    /// One frame's payload inflated (RFC 7692 7.2.2: the sync flush's tail put back after the
    /// message's last frame), never to more than `limit` bytes: a small frame that would
    /// inflate beyond is refused once `limit` is passed, without inflating the rest.
    pub fn inflate(
        &mut self,
        data: &[u8],
        fin: bool,
        limit: usize,
    ) -> Result<Vec<u8>, InflateError> {
        let window_bits = self.window_bits;
        let stream = self
            .stream
            .get_or_insert_with(|| Decompress::new_with_window_bits(false, window_bits));
        let ceiling = limit.saturating_add(1);
        let mut out: Vec<u8> = Vec::new();
        let tail: &[u8] = if fin { &SYNC_TAIL } else { &[] };
        for input in [data, tail] {
            let mut rest = input;
            loop {
                if out.len() == out.capacity() {
                    let grow = out.capacity().max(input.len().saturating_mul(4)).max(4096);
                    out.reserve_exact(grow.min(ceiling - out.len()));
                }
                let (before_in, before_out) = (stream.total_in(), out.len());
                let status = stream
                    .decompress_vec(rest, &mut out, FlushDecompress::Sync)
                    .map_err(|_| InflateError::Corrupt)?;
                let used = usize::try_from(stream.total_in() - before_in).unwrap_or(rest.len());
                rest = &rest[used.min(rest.len())..];
                if out.len() > limit {
                    return Err(InflateError::TooBig);
                }
                let progressed = used > 0 || out.len() > before_out;
                let drained = rest.is_empty() && out.len() < out.capacity();
                if status == Status::StreamEnd || drained || !progressed {
                    break;
                }
            }
        }
        if fin && self.fresh_each_message {
            self.stream = None;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(header: &str) -> Result<Option<String>, Malformed> {
        negotiate([header.as_bytes()]).map(|a| a.map(|a| a.header()))
    }

    #[test]
    fn negotiates_as_websockets() {
        let cases = [
            (
                "permessage-deflate",
                Some("permessage-deflate; server_max_window_bits=12"),
            ),
            (
                "permessage-deflate; client_max_window_bits",
                Some("permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"),
            ),
            (
                "permessage-deflate; server_max_window_bits=10; client_max_window_bits=9",
                Some("permessage-deflate; server_max_window_bits=10; client_max_window_bits=9"),
            ),
            (
                "permessage-deflate; server_max_window_bits=15; client_max_window_bits=15",
                Some("permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"),
            ),
            (
                "permessage-deflate; client_no_context_takeover; server_no_context_takeover",
                Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12"),
            ),
            ("permessage-deflate; server_max_window_bits=8", None),
            ("permessage-deflate; server_max_window_bits=16", None),
            ("permessage-deflate; unknown", None),
            ("permessage-deflate; server_no_context_takeover=1", None),
            ("x-webkit-deflate-frame", None),
            (
                "permessage-deflate; server_max_window_bits=8, permessage-deflate; server_max_window_bits=\"9\"",
                Some("permessage-deflate; server_max_window_bits=9"),
            ),
            (
                ", foo, permessage-deflate; client_max_window_bits=8,, permessage-deflate; server_no_context_takeover",
                Some("permessage-deflate; server_max_window_bits=12; client_max_window_bits=8"),
            ),
        ];
        for (header, expected) in cases {
            assert_eq!(offer(header), Ok(expected.map(str::to_owned)), "{header}");
        }
        let malformed = [
            ("", "expected token at 0 in "),
            (
                "permessage-deflate;",
                "expected token at 19 in permessage-deflate;",
            ),
            ("a b", "expected comma at 2 in a b"),
            (
                "p; x=\"a b\"",
                "invalid quoted header content at 5 in p; x=\"a b\"",
            ),
            ("p; x=\"", "expected quoted string at 5 in p; x=\""),
            (" p,; ", "expected token at 2 in p,;"),
        ];
        for (header, why) in malformed {
            let message = format!("invalid Sec-WebSocket-Extensions header: {why}");
            assert_eq!(offer(header), Err(Malformed(message)), "{header:?}");
        }
        assert_eq!(negotiate([]), Ok(None));
    }

    /// The bytes Python's `zlib.compressobj(wbits=-12, memLevel=5)` gives (sync flush, tail
    /// cut), as websockets sends them: with context takeover, without, and for a large text.
    #[test]
    fn compresses_as_websockets() {
        let agreement = negotiate([b"permessage-deflate".as_slice()])
            .unwrap()
            .unwrap();
        let mut encoder = agreement.encoder();
        let mut hex = |m: &[u8]| -> String {
            encoder
                .compress(m)
                .unwrap()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        };
        assert_eq!(hex(b"hello"), "ca48cdc9c90700");
        assert_eq!(hex(b"hello"), "ca00110000");
        assert_eq!(hex(b""), "00");
        let fresh = negotiate([b"permessage-deflate; server_no_context_takeover".as_slice()])
            .unwrap()
            .unwrap();
        let mut encoder = fresh.encoder();
        for _ in 0..2 {
            assert_eq!(
                encoder.compress(b"hello").unwrap(),
                [0xca, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]
            );
        }
        let big: Vec<u8> = (0..40000)
            .flat_map(|i| format!("{i}:{};", "abc".repeat(i % 7)).into_bytes())
            .collect();
        assert_eq!(big.len(), 628_875);
        let compressed = agreement.encoder().compress(&big).unwrap();
        assert_eq!(compressed.len(), 110_318);
        use sha1::Digest;
        let digest: String = sha1::Sha1::digest(&compressed)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(digest, "f8a61cd981717aa31d50dfa0870a9eab6f18c6d0");
        let mut decoder = negotiate([b"permessage-deflate".as_slice()])
            .unwrap()
            .unwrap()
            .decoder();
        decoder.start_message();
        assert_eq!(
            decoder.inflate(&compressed, true, big.len()),
            Ok(big.clone())
        );
        decoder.start_message();
        assert_eq!(
            decoder.inflate(&compressed, true, big.len() - 1),
            Err(InflateError::TooBig)
        );
    }

    #[test]
    fn inflates_within_the_limit() {
        let agreement = negotiate([b"permessage-deflate; client_no_context_takeover".as_slice()])
            .unwrap()
            .unwrap();
        let mut encoder = agreement.encoder();
        let bomb = encoder.compress(&vec![0u8; 1 << 20]).unwrap();
        assert!(bomb.len() < 2048, "{}", bomb.len());
        let mut decoder = agreement.decoder();
        decoder.start_message();
        assert_eq!(
            decoder.inflate(&bomb, true, 1 << 20).map(|d| d.len()),
            Ok(1 << 20)
        );
        decoder.start_message();
        assert_eq!(
            decoder.inflate(&bomb, true, 1000),
            Err(InflateError::TooBig)
        );
        // a message in two frames, the second one carrying the tail
        let hello = encoder.compress(b"hello world").unwrap();
        decoder.start_message();
        let first = decoder.inflate(&hello[..3], false, 100).unwrap();
        let second = decoder
            .inflate(&hello[3..], true, 100 - first.len())
            .unwrap();
        assert_eq!([first, second].concat(), b"hello world");
        decoder.start_message();
        assert_eq!(
            decoder.inflate(b"\xff\xff\xff", true, 100),
            Err(InflateError::Corrupt)
        );
    }
}
