//! The websocket's connection as tungstenite reads it. tungstenite has no extensions and
//! refuses frames with RSV1 set, so with permessage-deflate negotiated, the frames of each
//! compressed message are inflated here and handed on as plain frames; every other frame
//! passes through untouched (its errors stay tungstenite's), and writes go straight to the
//! connection. A compressed frame is checked as websockets checks it (its size against what
//! the message may still take, RSV1 only on a message's first frame, valid deflate data, the
//! inflated size), and a failure is an `io::Error` carrying the close code and reason
//! uvicorn sends ([`failure_of`]).

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncRead, ReadBuf};

use super::deflate::{Decoder, InflateError};

const OP_CONTINUATION: u8 = 0;
const OP_TEXT: u8 = 1;
const OP_BINARY: u8 = 2;
/// Bytes asked of the connection at least, when more are needed.
const READ_CHUNK: usize = 8 * 1024;

/// A frame the peer should not have sent: the close code and reason to answer with.
#[derive(Debug, Clone)]
struct Failure {
    code: u16,
    reason: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.reason)
    }
}

impl std::error::Error for Failure {}

/// The close code and reason of a read error that is a compressed frame's failure.
pub fn failure_of(error: &io::Error) -> Option<(u16, String)> {
    let failure = error.get_ref()?.downcast_ref::<Failure>()?;
    Some((failure.code, failure.reason.clone()))
}

/// websockets' `PayloadTooBig` message: `size` is the frame's length when that is what is too
/// big (else it inflates to too much), `current` what the message's earlier frames took.
fn too_big(size: Option<u64>, current: Option<usize>, limit: usize) -> Failure {
    let mut reason = String::from("frame ");
    if let Some(size) = size {
        reason.push_str(&format!("with {size} bytes "));
    }
    let mut limit = limit;
    if let Some(current) = current {
        reason.push_str(&format!("after reading {current} bytes "));
        limit = limit.saturating_add(current);
    }
    reason.push_str(&format!("exceeds limit of {limit} bytes"));
    Failure { code: 1009, reason }
}

fn protocol_error(reason: &str) -> Failure {
    Failure {
        code: 1002,
        reason: reason.to_owned(),
    }
}

/// The connection, with compressed messages inflated when `inflating` is set.
pub struct WsIo<S> {
    inner: S,
    inflating: Option<Box<Inflating>>,
}

impl<S> WsIo<S> {
    /// `decoder`: permessage-deflate was negotiated; `max_size`: the largest message.
    pub fn new(inner: S, decoder: Option<Decoder>, max_size: usize) -> Self {
        let inflating = decoder.map(|decoder| {
            Box::new(Inflating {
                decoder,
                max_size,
                raw: BytesMut::new(),
                ready: BytesMut::new(),
                pass: 0,
                message: None,
                failed: None,
                eof: false,
            })
        });
        Self { inner, inflating }
    }
}

struct Inflating {
    decoder: Decoder,
    max_size: usize,
    /// Read from the connection, not handled yet.
    raw: BytesMut,
    /// For tungstenite: frames passed through or inflated.
    ready: BytesMut,
    /// Payload bytes still to come of a frame passed through.
    pass: u64,
    /// Inside a compressed message: the bytes its frames inflated to so far.
    message: Option<usize>,
    failed: Option<Failure>,
    eof: bool,
}

enum Step {
    /// Something was put in `ready`, or a frame passes through.
    Progress,
    /// This many more bytes are needed to go on.
    More(usize),
    Failed(Failure),
}

impl Inflating {
    /// Handles the frame at the start of `raw`, as far as `raw` holds it.
    fn step(&mut self) -> Step {
        let raw = &self.raw;
        if raw.len() < 2 {
            return Step::More(2 - raw.len());
        }
        let (first, second) = (raw[0], raw[1]);
        let (fin, rsv1, opcode) = (first & 0x80 != 0, first & 0x40 != 0, first & 0x0f);
        let masked = second & 0x80 != 0;
        let extra = match second & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let head = 2 + extra + if masked { 4 } else { 0 };
        if raw.len() < head {
            return Step::More(head - raw.len());
        }
        let length = match extra {
            0 => u64::from(second & 0x7f),
            2 => u64::from(u16::from_be_bytes([raw[2], raw[3]])),
            _ => u64::from_be_bytes(raw[2..10].try_into().unwrap_or_default()),
        };
        let compressed = masked
            && match opcode {
                OP_TEXT | OP_BINARY => rsv1,
                OP_CONTINUATION => self.message.is_some(),
                _ => false,
            };
        if !compressed {
            // tungstenite reads it (and refuses it if it must)
            self.ready = self.raw.split_to(head);
            self.pass = length;
            return Step::Progress;
        }
        let current = if opcode == OP_CONTINUATION {
            self.message
        } else {
            None
        };
        let limit = self.max_size.saturating_sub(current.unwrap_or(0));
        if length > limit as u64 {
            return Step::Failed(too_big(Some(length), current, limit));
        }
        let total = head + length as usize; // within `max_size`, a usize
        if raw.len() < total {
            return Step::More(total - raw.len());
        }
        let mut frame = self.raw.split_to(total);
        let (header, payload) = frame.split_at_mut(head);
        let key = [
            header[head - 4],
            header[head - 3],
            header[head - 2],
            header[head - 1],
        ];
        for (i, byte) in payload.iter_mut().enumerate() {
            *byte ^= key[i % 4];
        }
        if opcode == OP_CONTINUATION && rsv1 {
            return Step::Failed(protocol_error("RSV1 bit set in continuation frame"));
        }
        if opcode != OP_CONTINUATION {
            self.decoder.start_message();
        }
        let data = match self.decoder.inflate(payload, fin, limit) {
            Ok(data) => data,
            Err(InflateError::TooBig) => return Step::Failed(too_big(None, current, limit)),
            Err(InflateError::Corrupt) => {
                return Step::Failed(protocol_error("decompression failed"))
            }
        };
        self.message = (!fin).then(|| current.unwrap_or(0) + data.len());
        // The same frame, RSV1 cleared, masked with a zero key (tungstenite wants client
        // frames masked), carrying the inflated data.
        let mut out = BytesMut::with_capacity(14 + data.len());
        out.put_u8(first & !0x40);
        match data.len() {
            n if n < 126 => out.put_u8(0x80 | n as u8),
            n if n <= usize::from(u16::MAX) => {
                out.put_u8(0x80 | 126);
                out.put_u16(n as u16);
            }
            n => {
                out.put_u8(0x80 | 127);
                out.put_u64(n as u64);
            }
        }
        out.put_u32(0);
        out.extend_from_slice(&data);
        self.ready = out;
        Step::Progress
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WsIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(state) = this.inflating.as_deref_mut() else {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        };
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(())); // (an empty read from the connection would look like its end)
        }
        loop {
            if !state.ready.is_empty() {
                let n = state.ready.len().min(buf.remaining());
                buf.put_slice(&state.ready[..n]);
                state.ready.advance(n);
                return Poll::Ready(Ok(()));
            }
            if let Some(failure) = &state.failed {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    failure.clone(),
                )));
            }
            if state.eof {
                return Poll::Ready(Ok(()));
            }
            if state.pass > 0 {
                if !state.raw.is_empty() {
                    let n = state
                        .raw
                        .len()
                        .min(usize::try_from(state.pass).unwrap_or(usize::MAX));
                    state.ready = state.raw.split_to(n);
                    state.pass -= n as u64;
                    continue;
                }
                // A plain frame's payload, straight from the connection into tungstenite's buffer.
                let want = usize::try_from(state.pass)
                    .unwrap_or(usize::MAX)
                    .min(buf.remaining());
                let mut part = ReadBuf::new(buf.initialize_unfilled_to(want));
                ready!(Pin::new(&mut this.inner).poll_read(cx, &mut part))?;
                let n = part.filled().len();
                buf.advance(n);
                state.pass -= n as u64;
                state.eof = n == 0;
                return Poll::Ready(Ok(()));
            }
            let needed = match state.step() {
                Step::Progress => continue,
                Step::Failed(failure) => {
                    state.failed = Some(failure);
                    continue;
                }
                Step::More(needed) => needed,
            };
            let start = state.raw.len();
            state.raw.resize(start + needed.max(READ_CHUNK), 0);
            let mut part = ReadBuf::new(&mut state.raw[start..]);
            let polled = Pin::new(&mut this.inner).poll_read(cx, &mut part);
            let n = part.filled().len();
            state.raw.truncate(start + n);
            ready!(polled)?;
            if n == 0 {
                // the connection ended inside a frame: tungstenite sees the end
                state.raw.clear();
                state.eof = true;
            }
        }
    }
}

forward_write!(WsIo);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asgi::deflate::negotiate;
    use tokio::io::AsyncReadExt;

    fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
        let key = [1u8, 2, 3, 4];
        let mut frame = vec![first];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
        }
        frame.extend_from_slice(&key);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        frame
    }

    async fn read_all(input: Vec<u8>, offer: &str, max_size: usize) -> io::Result<Vec<u8>> {
        let offers = (!offer.is_empty()).then_some(offer.as_bytes());
        let decoder = negotiate(offers).unwrap().map(|a| a.decoder());
        let mut io = WsIo::new(std::io::Cursor::new(input), decoder, max_size);
        let mut out = Vec::new();
        io.read_to_end(&mut out).await.map(|_| out)
    }

    fn compress(data: &[u8]) -> Vec<u8> {
        let mut encoder = negotiate([b"permessage-deflate".as_slice()])
            .unwrap()
            .unwrap()
            .encoder();
        match encoder.message(tokio_tungstenite::tungstenite::Message::Binary(
            data.to_vec().into(),
        )) {
            tokio_tungstenite::tungstenite::Message::Frame(frame) => frame.into_payload().to_vec(),
            _ => unreachable!(),
        }
    }

    #[tokio::test]
    async fn passes_plain_frames_and_inflates_compressed_ones() {
        let plain = [masked(0x81, b"plain"), masked(0x89, b"ping")].concat();
        let hello = compress(b"hello hello hello");
        let input = [plain.clone(), masked(0xc1, &hello), masked(0x82, b"x")].concat();
        let out = read_all(input, "permessage-deflate", 100).await.unwrap();
        let inflated = [
            vec![0x81, 0x80 | 17, 0, 0, 0, 0],
            b"hello hello hello".to_vec(),
        ]
        .concat();
        assert_eq!(out, [plain, inflated, masked(0x82, b"x")].concat());
        // without the extension, nothing is touched
        let input = masked(0xc1, &hello);
        assert_eq!(read_all(input.clone(), "", 100).await.unwrap(), input);
    }

    #[tokio::test]
    async fn fragments_and_failures() {
        let data = compress(&[7u8; 300]);
        let (a, b) = data.split_at(2);
        let input = [masked(0x42, a), masked(0x89, b""), masked(0x80, b)].concat();
        let out = read_all(input, "permessage-deflate", 300).await.unwrap();
        assert_eq!(out.len(), 6 + 6 + 8 + 300);
        let failed = |input: Vec<u8>, max: usize| async move {
            failure_of(
                &read_all(input, "permessage-deflate", max)
                    .await
                    .unwrap_err(),
            )
            .unwrap()
        };
        let input = [masked(0x42, a), masked(0x80, b)].concat();
        assert_eq!(
            failed(input, 299).await,
            (
                1009,
                "frame after reading 1 bytes exceeds limit of 299 bytes".into()
            )
        );
        assert_eq!(
            failed(masked(0xc2, &data), 299).await,
            (1009, "frame exceeds limit of 299 bytes".into())
        );
        let too_long = masked(0xc2, &[0u8; 200]);
        assert_eq!(
            failed(too_long, 100).await,
            (
                1009,
                "frame with 200 bytes exceeds limit of 100 bytes".into()
            )
        );
        let input = [masked(0x42, a), masked(0xc0, b)].concat();
        assert_eq!(
            failed(input, 300).await,
            (1002, "RSV1 bit set in continuation frame".into())
        );
        assert_eq!(
            failed(masked(0xc1, b"\xff\xff"), 300).await,
            (1002, "decompression failed".into())
        );
    }
}
