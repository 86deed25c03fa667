//! The bytes of request heads and bodies as the head guard reads them: where a head ends,
//! whether uvicorn (httptools) refuses it and how its body is framed (`check`), where a head
//! read in parts ends and whether its start is refused already (`Partial`), where a chunked
//! body ends (`Chunks`).

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
/// `METHOD SP TARGET SP HTTP/1.0|1.1` with a path, `*` or an absolute URI as its target; a
/// header line starting with a blank (obs-fold);
/// `Content-Length` repeated, not a number, or beside `Transfer-Encoding`; a
/// `Transfer-Encoding` other than one `chunked`. What else httparse refuses (a line without a
/// colon, control bytes, a name's characters) hyper answers with its own 400 (uvicorn's
/// status, no text); `Transfer-Encoding: chunked` on HTTP/1.0 too (RFC 9112 6.1; httptools
/// reads it).
///
/// Only line ends are searched for, 16 bytes at a time (two words: a pair without one costs
/// a few instructions); each line is then looked at by its first bytes only.
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

/// `METHOD SP TARGET SP HTTP/1.0|1.1` as far as its ends tell, ASCII (httptools refuses raw
/// bytes beyond ASCII in the target, hyper takes them), with a target that is a path, `*` or
/// an absolute URI (httptools refuses others, `CONNECT`'s authority among them; hyper takes
/// them); blanks within are httparse's to refuse.
fn is_request_line(line: &[u8]) -> bool {
    let n = line.len();
    if n <= 11 || line[0] == b' ' || line[n - 10] == b' ' || !line.is_ascii() {
        return false;
    }
    if !line.ends_with(b" HTTP/1.1") && !line.ends_with(b" HTTP/1.0") {
        return false;
    }
    let Some(space) = line.iter().position(|&b| b == b' ') else {
        return false;
    };
    let target = &line[space + 1..n - 9];
    match target.first() {
        Some(b'/') => true,
        Some(b'*') => target.len() == 1,
        _ => target.windows(3).any(|w| w == b"://"),
    }
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

/// A head read in several parts, looked at as its bytes gather (in one buffer): where it ends,
/// and whether what came so far is refused already, so that garbage (a TLS hello, a banner, a
/// line with a lone CR) is answered at once rather than when a head end never comes.
#[derive(Default)]
pub struct Partial {
    lines: Lines,
    /// Where the current line starts in the gathered bytes.
    line: usize,
    /// How many of them were looked at.
    seen: usize,
    /// Refused from its incomplete last line: a CR not followed by LF; in the request line, a
    /// control byte or one beyond ASCII; a header line starting with a blank (obs-fold).
    broken: bool,
}

impl Partial {
    /// Looks at the gathered bytes `head` from where it left off: the head, once it ends.
    pub fn feed(&mut self, head: &[u8]) -> Option<Head> {
        for i in self.seen..head.len() {
            let b = head[i];
            if b == b'\n' {
                if let Some(found) = self.lines.line(&head[self.line..i], i + 1) {
                    return Some(found);
                }
                self.line = i + 1;
                continue;
            }
            self.broken |= i > self.line && head[i - 1] == b'\r';
            self.broken |= !self.lines.started && b != b'\r' && !(0x20..0x7f).contains(&b);
            self.broken |= self.lines.started && i == self.line && matches!(b, b' ' | b'\t');
        }
        self.seen = head.len();
        None
    }

    /// Whether what came so far is refused, whatever follows.
    pub fn refused(&self) -> bool {
        self.broken || self.lines.refused
    }
}

/// A chunked body followed through its framing (hyper decodes it; this finds its end and
/// refuses what httptools refuses and hyper would take): size lines of hex digits and an
/// optional extension without blanks outside quotes, ending in CRLF; data and its CRLF; after
/// the `0` size line, trailer lines up to an empty one, none ending in a bare LF or naming
/// `Content-Length` or `Transfer-Encoding`.
#[derive(Debug, Default)]
pub struct Chunks {
    state: ChunkState,
    size: u64,
    /// The first bytes of the current trailer line, for its name.
    name: [u8; NAME],
    name_len: usize,
}

/// Trailer names looked at: the longest one and its colon.
const NAME: usize = 18;

#[derive(Debug, Default, Clone, Copy, PartialEq)]
enum ChunkState {
    #[default]
    Start,
    Size,
    /// Just after a `;`.
    Extension,
    /// Within an extension, outside quotes.
    Bare,
    /// Within an extension, inside quotes (`escaped`: after a backslash).
    Quoted {
        escaped: bool,
    },
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
    /// framing httptools refuses (hyper refuses most of them too).
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
                let rest = &data[at..];
                let end = rest.iter().position(|&b| b == b'\r' || b == b'\n');
                let part = &rest[..end.unwrap_or(rest.len())];
                let n = part.len().min(NAME - self.name_len);
                self.name[self.name_len..self.name_len + n].copy_from_slice(&part[..n]);
                self.name_len += n;
                match end {
                    Some(end) if rest[end] == b'\r' && !self.framing_trailer() => {
                        at += end + 1;
                        self.state = TrailerLf;
                    }
                    Some(_) => return Err(()),
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
                (Size | Bare, b'\r') => SizeLf,
                (Size, b';') => Extension,
                (Extension | Bare, b'"') => Quoted { escaped: false },
                (Extension | Bare, b' ' | b'\t' | b'\r' | b'\n') => return Err(()),
                (Extension | Bare, _) => Bare,
                (Quoted { escaped: false }, b'"') => Bare,
                (Quoted { .. }, b'\r' | b'\n') => return Err(()),
                (Quoted { escaped: false }, b'\\') => Quoted { escaped: true },
                (Quoted { .. }, _) => Quoted { escaped: false },
                (SizeLf, b'\n') if self.size == 0 => EndCr,
                (SizeLf, b'\n') => Data,
                (DataCr, b'\r') => DataLf,
                (DataLf, b'\n') => Start,
                (EndCr, b'\r') => EndLf,
                (EndCr, b'\n') => return Err(()),
                (EndCr, _) => {
                    self.name[0] = byte;
                    self.name_len = 1;
                    Trailer
                }
                (TrailerLf, b'\n') => EndCr,
                (EndLf, b'\n') => return Ok(Some(at)),
                _ => return Err(()),
            };
        }
        Ok(None)
    }

    /// Whether the trailer line being read names a field that frames the message.
    fn framing_trailer(&self) -> bool {
        let line = &self.name[..self.name_len];
        ["content-length:", "transfer-encoding:"]
            .iter()
            .any(|name| {
                line.len() >= name.len() && line[..name.len()].eq_ignore_ascii_case(name.as_bytes())
            })
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

    /// `Partial` fed `input` in parts of `step` bytes, as they gather.
    fn gathered(input: &[u8], step: usize) -> (Option<Head>, bool) {
        let mut partial = Partial::default();
        for end in (step..input.len() + step).step_by(step) {
            if let Some(head) = partial.feed(&input[..end.min(input.len())]) {
                return (Some(head), partial.refused());
            }
        }
        (None, partial.refused())
    }

    #[test]
    fn a_head_ends_after_its_first_empty_line_however_it_is_split() {
        let input = b"\r\n\nGET / HTTP/1.1\r\nHost: x\r\n\r\nabc";
        let whole = check(input).unwrap();
        assert_eq!(whole.end, input.len() - 3);
        for step in 1..input.len() {
            assert_eq!(
                gathered(&input[..whole.end], step),
                (check(input), false),
                "step {step}"
            );
        }
        assert_eq!(check(b"\r\n\r\n\n"), None);
        assert_eq!(check(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
    }

    #[test]
    fn what_comes_first_may_refuse_a_head_before_its_end() {
        for start in [
            &b"\x16\x03\x01\x00\xa5\x01"[..],
            b"SSH-2.0-OpenSSH_9.6\r\n",
            b"GET / HTTP/1.1\r\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\r",
            b"GET /caf\xc3\xa9",
            b"GET / HTTP/1.1\nHost",
            b"GET / HTTP/1.1\r\n X",
        ] {
            assert_eq!(gathered(start, 1), (None, true), "{start:?}");
        }
        for start in [
            &b"GET /hello HTTP/1.1\r\nHost: x\r"[..],
            b"\r\n\r\nGE",
            b"GET / HTTP/1.1\r\nX: \x01",
        ] {
            assert_eq!(gathered(start, 1), (None, false), "{start:?}");
        }
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
            b"GET hello HTTP/1.1\r\n\r\n",
            b"GET x:80 HTTP/1.1\r\n\r\n",
            b"GET ?q HTTP/1.1\r\n\r\n",
            b"GET ** HTTP/1.1\r\n\r\n",
            b"GET  / HTTP/1.1\r\n\r\n",
            b"CONNECT x:443 HTTP/1.1\r\n\r\n",
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
            framed(b"CONNECT /x HTTP/1.1\r\n\r\n"),
            (Framing::Length(0), true)
        );
        assert_eq!(
            framed(b"GET * HTTP/1.1\r\n\r\n"),
            (Framing::Length(0), false)
        );
        assert_eq!(
            framed(b"GET ftp://x/y HTTP/1.1\r\n\r\n"),
            (Framing::Length(0), false)
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
        let body = b"5\r\nhello\r\n6;ext=1;q=\"a \\\" b\"\r\n world\r\nA\r\n0123456789\r\n0\r\nX-T: t\r\nY: y\r\n\r\nGET";
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
            // what hyper takes and httptools refuses
            b"3 \r\n",
            b"3\t\r\n",
            b"3 ;x\r\n",
            b"3;\r\n",
            b"3; x\r\n",
            b"3;x = 1\r\n",
            b"3;x=a b\r\n",
            b"3;x=\"a\nb\"",
            b"0\r\nX: y\n",
            b"0\r\n\n",
            b"0\r\nContent-Length: 5\r\n",
            b"0\r\nX: y\r\ntransfer-encoding: chunked\r\n",
        ] {
            assert_eq!(Chunks::default().feed(bad), Err(()), "{bad:?}");
        }
    }
}
