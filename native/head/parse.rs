//! The bytes of request heads and bodies as the head guard reads them: where a head ends,
//! whether uvicorn (httptools) refuses it and how its body is framed (`check`), where a head
//! read in parts ends (`Scan`), where a chunked body ends (`Chunks`).

use crate::asgi::framing::not_one_chunked;

/// How the body after a head is framed, as hyper frames it for a head `check` accepts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Framing {
    Length(u64),
    Chunked,
}

/// A whole head, looked at.
#[derive(Debug, PartialEq)]
pub struct Head {
    /// Where it ends: just past its empty line.
    pub end: usize,
    /// Whether uvicorn refuses it (then `framing` and `upgrade` mean nothing).
    pub refused: bool,
    pub framing: Framing,
    /// Whether hyper may switch protocols after it (an `Upgrade` line, or `CONNECT`).
    pub upgrade: bool,
}

/// Looks at a head from its first byte: `None` if it does not end in `data`.
///
/// Refused, as uvicorn (httptools) refuses them: a line ending in a bare LF (empty lines
/// before the request line aside: both servers skip them); a request line that is not ASCII
/// `METHOD SP TARGET SP HTTP/1.0|1.1`; a header line starting with a blank (obs-fold);
/// `Content-Length` repeated, not a number, or beside `Transfer-Encoding`; a
/// `Transfer-Encoding` other than one `chunked`. What else httparse refuses (a line without a
/// colon, control bytes, a name's characters) hyper answers with its own 400 (uvicorn's
/// status, no text); `Transfer-Encoding: chunked` on HTTP/1.0 too (RFC 9112 6.1; httptools
/// reads it).
///
/// Only line ends are searched for, 8 bytes at a time (one word: a word without one costs a
/// few instructions); each line is then looked at by its first bytes only.
pub fn check(data: &[u8]) -> Option<Head> {
    let mut lines = Lines::default();
    let mut start = 0;
    let mut base = 0;
    while let Some(block) = data.get(base..base + 16) {
        let (low, high) = block.split_at(8);
        let low = line_ends(u64::from_le_bytes(low.try_into().unwrap_or_default()));
        let high = line_ends(u64::from_le_bytes(high.try_into().unwrap_or_default()));
        if (low | high) != 0 {
            for (mut ends, at) in [(low, base), (high, base + 8)] {
                while ends != 0 {
                    let lf = at + ends.trailing_zeros() as usize / 8;
                    ends &= ends - 1;
                    if let Some(head) = lines.line(&data[start..lf], lf + 1) {
                        return Some(head);
                    }
                    start = lf + 1;
                }
            }
        }
        base += 16;
    }
    for lf in base..data.len() {
        if data[lf] == b'\n' {
            if let Some(head) = lines.line(&data[start..lf], lf + 1) {
                return Some(head);
            }
            start = lf + 1;
        }
    }
    None
}

/// The high bit of each LF byte of `word` (8 bytes, first in the lowest), and no other bit.
fn line_ends(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let x = word ^ (ONES * u64::from(b'\n')); // LF bytes become zero
    !(((x & LOW7) + LOW7) | x | LOW7)
}

/// What the lines of a head said so far.
#[derive(Default)]
struct Lines {
    started: bool,
    refused: bool,
    upgrade: bool,
    length: Option<u64>,
    lengths: u32,
    codings: u32,
}

impl Lines {
    /// Takes in a line (its LF excluded), which ends just before `next`: the head, once this
    /// is its empty line.
    #[inline(always)]
    fn line(&mut self, line: &[u8], next: usize) -> Option<Head> {
        let (line, cr) = match line {
            [line @ .., b'\r'] => (line, true),
            line => (line, false),
        };
        if line.is_empty() {
            if !self.started {
                return None; // before the request line: skipped, as httparse and httptools do
            }
            let refused =
                self.refused || !cr || self.lengths > 1 || (self.lengths > 0 && self.codings > 0);
            let framing = match (self.codings, self.length) {
                (0, length) => Framing::Length(length.unwrap_or(0)),
                _ => Framing::Chunked,
            };
            return Some(Head {
                end: next,
                refused,
                framing,
                upgrade: self.upgrade,
            });
        }
        self.refused |= !cr;
        if !std::mem::replace(&mut self.started, true) {
            self.refused |= !is_request_line(line);
            self.upgrade = line.starts_with(b"CONNECT ");
            return None;
        }
        match line[0] {
            b' ' | b'\t' => self.refused = true, // obs-fold
            b'c' | b'C' => {
                if let Some(value) = field(line, b"content-length") {
                    self.lengths += 1;
                    self.length = parse_length(value);
                    self.refused |= self.length.is_none();
                }
            }
            b't' | b'T' => {
                if let Some(value) = field(line, b"transfer-encoding") {
                    self.codings += 1;
                    self.refused |= self.codings > 1 || not_one_chunked([value]);
                }
            }
            b'u' | b'U' => self.upgrade |= field(line, b"upgrade").is_some(),
            _ => {}
        }
        None
    }
}

/// The value of a header line named `name` (lower case letters and `-`; the line's name in
/// any case), blanks trimmed.
fn field<'a, const N: usize>(line: &'a [u8], name: &[u8; N]) -> Option<&'a [u8]> {
    let (Some(head), Some(b':')) = (line.first_chunk::<N>(), line.get(N)) else {
        return None;
    };
    // `| 0x20` lowers ASCII letters and keeps `-`; of other bytes only CR becomes `-`, and
    // httparse refuses a name with a CR (hyper answers 400)
    let differ = head
        .iter()
        .zip(name)
        .fold(0, |differ, (a, b)| differ | ((a | 0x20) ^ b));
    (differ == 0).then(|| line[N + 1..].trim_ascii())
}

/// `METHOD SP TARGET SP HTTP/1.0|1.1` as far as its ends tell, and ASCII (httptools refuses
/// raw bytes beyond ASCII in the target, hyper takes them); blanks within are httparse's to
/// refuse.
fn is_request_line(line: &[u8]) -> bool {
    let n = line.len();
    n > 11
        && line[0] != b' '
        && line[n - 10] != b' '
        && (line.ends_with(b" HTTP/1.1") || line.ends_with(b" HTTP/1.0"))
        && line.is_ascii()
}

/// A `Content-Length` value: one decimal number hyper can hold.
fn parse_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    let mut n = 0u64;
    for &b in value {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    (n < u64::MAX - 2).then_some(n)
}

/// Where a head read in several parts ends, found as `check` finds it: a line ends at LF
/// (with or without CR); empty lines before the request line are skipped; the first empty
/// line after it ends the head.
#[derive(Default)]
pub struct Scan {
    /// Bytes of the current line so far (its CR included, its LF not).
    line: usize,
    /// Its last byte so far.
    last: u8,
    /// Whether the request line was seen.
    started: bool,
}

impl Scan {
    /// Takes in the next bytes of a head; returns where in `data` the head ends (just after
    /// its empty line's LF), if it does.
    pub fn feed(&mut self, data: &[u8]) -> Option<usize> {
        let mut at = 0;
        let ends = data.iter().enumerate().filter(|&(_, &b)| b == b'\n');
        for (lf, _) in ends {
            if lf > at {
                self.line += lf - at;
                self.last = data[lf - 1];
            }
            at = lf + 1;
            let empty = self.line == 0 || (self.line == 1 && self.last == b'\r');
            self.line = 0;
            if !empty {
                self.started = true;
            } else if self.started {
                return Some(at);
            }
        }
        if at < data.len() {
            self.line += data.len() - at;
            self.last = data[data.len() - 1];
        }
        None
    }
}

/// A chunked body followed through its framing, by hyper's rules (hyper decodes it; this only
/// finds its end): size lines of hex digits, optional blanks and an extension, ending in CRLF;
/// data and its CRLF; after the `0` size line, trailer lines up to an empty one.
#[derive(Debug, Default)]
pub struct Chunks {
    state: ChunkState,
    size: u64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq)]
enum ChunkState {
    #[default]
    Start,
    Size,
    Blanks,
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    EndCr,
    EndLf,
    Trailer,
    TrailerLf,
}

impl Chunks {
    /// Takes in the next body bytes: where in `data` the body ends, if it does; `Err` for a
    /// framing hyper refuses too.
    pub fn feed(&mut self, data: &[u8]) -> Result<Option<usize>, ()> {
        use ChunkState::*;
        let mut at = 0;
        while at < data.len() {
            if self.state == Data {
                let n = usize::try_from(self.size)
                    .map_or(data.len() - at, |size| size.min(data.len() - at));
                self.size -= n as u64;
                at += n;
                if self.size == 0 {
                    self.state = DataCr;
                }
                continue;
            }
            if self.state == Trailer {
                match data[at..].iter().position(|&b| b == b'\r') {
                    Some(cr) => {
                        at += cr + 1;
                        self.state = TrailerLf;
                    }
                    None => at = data.len(),
                }
                continue;
            }
            let byte = data[at];
            at += 1;
            self.state = match (self.state, byte) {
                (Start | Size, b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F') => {
                    let digit = (byte as char).to_digit(16).map_or(0, u64::from);
                    self.size = self
                        .size
                        .checked_mul(16)
                        .and_then(|s| s.checked_add(digit))
                        .ok_or(())?;
                    Size
                }
                (Size | Blanks, b' ' | b'\t') => Blanks,
                (Size | Blanks | Extension, b'\r') => SizeLf,
                (Size | Blanks, b';') => Extension,
                (Extension, b'\n') => return Err(()),
                (Extension, _) => Extension,
                (SizeLf, b'\n') if self.size == 0 => EndCr,
                (SizeLf, b'\n') => Data,
                (DataCr, b'\r') => DataLf,
                (DataLf, b'\n') => Start,
                (EndCr, b'\r') => EndLf,
                (EndCr, _) => Trailer,
                (TrailerLf, b'\n') => EndCr,
                (EndLf, b'\n') => return Ok(Some(at)),
                _ => return Err(()),
            };
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `check` on a whole head: whether it is refused.
    fn refused(head: &[u8]) -> bool {
        let found = check(head).unwrap_or_else(|| panic!("not whole: {head:?}"));
        assert_eq!(found.end, head.len());
        found.refused
    }

    #[test]
    fn a_head_ends_after_its_first_empty_line_however_it_is_split() {
        let input = b"\r\n\nGET / HTTP/1.1\r\nHost: x\r\n\r\nabc";
        let end = input.len() - 3;
        assert_eq!(check(input).map(|head| head.end), Some(end));
        assert_eq!(Scan::default().feed(input), Some(end));
        for step in 1..input.len() {
            let mut scan = Scan::default();
            let found = input
                .chunks(step)
                .enumerate()
                .find_map(|(i, part)| scan.feed(part).map(|at| i * step + at));
            assert_eq!(found, Some(end), "step {step}");
        }
        assert_eq!(
            Scan::default().feed(b"GET / HTTP/1.1\nHost: x\n\nabc"),
            Some(24)
        );
        assert_eq!(Scan::default().feed(b"\r\n\r\n\n"), None);
        assert_eq!(check(b"\r\n\r\n\n"), None);
        assert_eq!(check(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
    }

    #[test]
    fn what_uvicorn_refuses_is_refused() {
        for head in [
            &b"GET / HTTP/1.1\nHost: x\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: x\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\n\n",
            b"GET / HTTP/1.1\nHost: x\n\n",
            b"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
            b"GARBAGE\r\n\r\n",
            b"GET /\r\n\r\n",
            b"GET / HTTP/1.2\r\n\r\n",
            b"GET / HTTP/1.1\r\n Host: x\r\n\r\n",
            b"GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length:\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 18446744073709551616\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nTRANSFER-ENCODING: chunked\r\ncontent-length: 0\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding:\r\n\r\n",
            b"POST / HTTP/1.0\r\nTransfer-Encoding: gzip\r\n\r\n",
        ] {
            assert!(refused(head), "{}", String::from_utf8_lossy(head));
        }
    }

    #[test]
    fn the_rest_is_framed_as_hyper_frames_it() {
        let framed = |head: &[u8]| {
            let found = check(head).unwrap();
            assert!(!found.refused, "{}", String::from_utf8_lossy(head));
            (found.framing, found.upgrade)
        };
        assert_eq!(
            framed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            (Framing::Length(0), false)
        );
        assert_eq!(
            framed(b"\n\r\nGET / HTTP/1.1\r\n\r\n"),
            (Framing::Length(0), false)
        );
        assert_eq!(
            framed(b"POST / HTTP/1.1\r\nContent-Length-X: 1\r\nX: content-length: 2\r\nContent-Length: 3\r\n\r\n"),
            (Framing::Length(3), false)
        );
        assert_eq!(
            framed(b"POST / HTTP/1.1\r\nContent-Length:  0018446744073709551612 \r\n\r\n"),
            (Framing::Length(18446744073709551612), false)
        );
        assert_eq!(
            framed(b"POST / HTTP/1.1\r\nTransfer-Encoding:  Chunked \r\n\r\n"),
            (Framing::Chunked, false)
        );
        // hyper's to answer: HTTP/1.0 with Transfer-Encoding (400), too many lines (431)
        assert_eq!(
            framed(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            (Framing::Chunked, false)
        );
        // hyper's own 400: httparse refuses them (whatever framing they seem to have)
        for head in [
            &b"GET / HTTP/1.1\r\nNo colon\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length : 3\r\n\r\n",
            b"GET / HTTP/1.1\r\n: y\r\n\r\n",
            b"GET /a b HTTP/1.1\r\n\r\n",
            b"GET  / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent\rLength: 3\r\n\r\n",
        ] {
            assert!(!check(head).unwrap().refused);
        }
        let many = [
            &b"GET / HTTP/1.1\r\n"[..],
            &b"X: y\r\n".repeat(101),
            b"\r\n",
        ]
        .concat();
        assert_eq!(framed(&many), (Framing::Length(0), false));
        assert_eq!(
            framed(b"GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nupgrade: websocket\r\n\r\n"),
            (Framing::Length(0), true)
        );
        assert_eq!(
            framed(b"CONNECT x:443 HTTP/1.1\r\n\r\n"),
            (Framing::Length(0), true)
        );
    }

    /// `check` with a plain byte loop for the line ends.
    fn plain(data: &[u8]) -> Option<Head> {
        let mut lines = Lines::default();
        let mut start = 0;
        for (lf, &b) in data.iter().enumerate() {
            if b == b'\n' {
                if let Some(head) = lines.line(&data[start..lf], lf + 1) {
                    return Some(head);
                }
                start = lf + 1;
            }
        }
        None
    }

    #[test]
    fn the_word_search_finds_every_line_end() {
        let pieces: [&[u8]; 12] = [
            b"\r\n",
            b"\n",
            b"\r",
            b"GET /x HTTP/1.1",
            b"content-length: 12",
            b"Transfer-Encoding: chunked",
            b"Upgrade: a",
            b"x",
            b"0123456789abcdef",
            b" \t",
            b"\xc3\xa9",
            b"Content-Length: 3, 3",
        ];
        let mut seed = 7u64;
        let mut next = |n: usize| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize % n
        };
        for _ in 0..20_000 {
            let count = 1 + next(16);
            let input: Vec<u8> = (0..count)
                .flat_map(|_| pieces[next(pieces.len())].iter().copied())
                .collect();
            assert_eq!(
                check(&input),
                plain(&input),
                "{:?}",
                String::from_utf8_lossy(&input)
            );
        }
    }

    #[test]
    fn chunked_bodies_end_where_hyper_ends_them() {
        let body = b"5\r\nhello\r\n6;ext=1\r\n world\r\nA \t\r\n0123456789\r\n0\r\nX-T: t\r\nY: y\r\n\r\nGET";
        let mut chunks = Chunks::default();
        assert_eq!(chunks.feed(body), Ok(Some(body.len() - 3)));
        let mut chunks = Chunks::default();
        let end = body
            .iter()
            .position(|b| chunks.feed(std::slice::from_ref(b)) != Ok(None));
        assert_eq!(end, Some(body.len() - 4));
        assert_eq!(Chunks::default().feed(b"0\r\n\r\n"), Ok(Some(5)));
        for bad in [
            &b"zz\r\n"[..],
            b"-1\r\n",
            b"3\nabc",
            b"3\r\nabcd\r\n",
            b"3;a\nb",
            b"3 4\r\n",
            b"\r\n",
            b"10000000000000000\r\n",
            b"0\r\nX: y\r\r",
        ] {
            assert_eq!(Chunks::default().feed(bad), Err(()), "{bad:?}");
        }
    }
}
