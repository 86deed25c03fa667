//! `SessionMiddleware`: itsdangerous' `TimestampSigner` cookies, checked and signed here.
//!
//! The request phase finds the session cookie and checks its signature and age; the verified
//! payload (base64 of the JSON) goes to Python, which makes Starlette's own `Session` object
//! from it. The response phase reads that object (`accessed`, `modified`, empty or not) and
//! writes the `Set-Cookie` Starlette would, signing the payload Python serialised.
//!
//! Before Starlette 1.0 the session is a plain `dict` (`tracks_access` off): no `Vary: Cookie`,
//! and the cookie is written for every non-empty session, cleared for every emptied one.
//! Before 1.8 `max_age=0` writes no `Max-Age`; before 0.49 only the first `Cookie` header is
//! read.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::header::SET_COOKIE;
use http::{HeaderMap, HeaderValue};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use sha1::Sha1;

use super::{add_vary, latin1, option, py_strip, Head, HeaderList, Pending, Step};
use crate::errors::EngineError;

/// itsdangerous' `base64_encode`/`base64_decode`: URL-safe alphabet, no padding written, any
/// padding and trailing bits accepted on the way in.
const URLSAFE: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

pub struct Sessions {
    cookie: Vec<u8>,
    /// `signer.derive_key()`: the HMAC key.
    key: Vec<u8>,
    max_age: Option<i64>,
    path: Vec<u8>,
    security_flags: Vec<u8>,
    /// `Session(json.loads(b64decode(data)))` or `Session()` for `None`.
    factory: Py<PyAny>,
    /// `b64encode(json.dumps(session).encode("utf-8"))`.
    dump: Py<PyAny>,
    /// Starlette's `Session` (1.0+): `accessed` and `modified` decide; else a plain dict.
    tracks_access: bool,
    /// Starlette < 1.8: `Max-Age` only for a truthy `max_age`.
    max_age_truthy: bool,
    /// Starlette >= 0.49 reads every `Cookie` header.
    all_cookie_headers: bool,
    vary_join_all: bool,
}

/// The session of one native request: the object the app sees, and whether a valid cookie
/// came with the request.
pub struct Session {
    pub object: Py<PyAny>,
    pub initial_empty: bool,
}

/// The request phase's finding.
pub enum Cookie {
    /// No cookie, or one whose signature or age fails (`initial_session_was_empty`).
    Empty,
    /// The verified payload.
    Valid(Bytes),
}

impl Sessions {
    pub fn from_options(options: &Bound<'_, PyDict>) -> PyResult<Self> {
        let cookie: String = option(options, "session_cookie")?;
        let path: String = option(options, "path")?;
        let flags: String = option(options, "security_flags")?;
        Ok(Self {
            cookie: latin1(&cookie)?,
            key: option(options, "key")?,
            max_age: option(options, "max_age")?,
            path: latin1(&path)?,
            security_flags: latin1(&flags)?,
            factory: option(options, "factory")?,
            dump: option(options, "dump")?,
            tracks_access: option(options, "tracks_access")?,
            max_age_truthy: option(options, "max_age_truthy")?,
            all_cookie_headers: option(options, "all_cookie_headers")?,
            vary_join_all: option(options, "vary_join_all")?,
        })
    }

    pub(super) fn on_request(&self, head: &Head<'_>) -> Step {
        match self.find(head.headers) {
            Some(cookie) => Step::Next(Pending::Session(cookie)),
            None => Step::Punt,
        }
    }

    /// The session cookie as Starlette reads it: every `Cookie` header in order, the last
    /// chunk with this name winning (`None`: a form the engine leaves to Python).
    pub fn find(&self, headers: &HeaderMap) -> Option<Cookie> {
        let mut value: Option<&[u8]> = None;
        let read = if self.all_cookie_headers {
            usize::MAX
        } else {
            1
        };
        for raw in headers.get_all(http::header::COOKIE).iter().take(read) {
            let raw = raw.as_bytes();
            if !raw.is_ascii() {
                return None;
            }
            for chunk in raw.split(|&b| b == b';') {
                let (key, val) = match chunk.iter().position(|&b| b == b'=') {
                    Some(i) => (&chunk[..i], &chunk[i + 1..]),
                    None => (&b""[..], chunk),
                };
                if py_strip(key) == self.cookie.as_slice() {
                    value = Some(py_strip(val));
                }
            }
        }
        let Some(value) = value else {
            return Some(Cookie::Empty);
        };
        if value.len() >= 2 && value.starts_with(b"\"") && value.ends_with(b"\"") {
            return None; // `http.cookies._unquote`
        }
        self.unsign(value, now())
    }

    /// `TimestampSigner.unsign(value, max_age)`; `None` for encodings where Python's lenient
    /// base64 could read more than this does.
    fn unsign(&self, signed: &[u8], now: i64) -> Option<Cookie> {
        let Some(dot) = signed.iter().rposition(|&b| b == b'.') else {
            return Some(Cookie::Empty);
        };
        let (value, signature) = (&signed[..dot], &signed[dot + 1..]);
        let Some(signature) = decode(signature)? else {
            return Some(Cookie::Empty);
        };
        let mut mac = self.mac();
        mac.update(value);
        if mac.verify_slice(&signature).is_err() {
            return Some(Cookie::Empty);
        }
        let Some(dot) = value.iter().rposition(|&b| b == b'.') else {
            return Some(Cookie::Empty); // "timestamp missing"
        };
        let (payload, stamp) = (&value[..dot], &value[dot + 1..]);
        let Some(stamp) = decode(stamp)? else {
            return Some(Cookie::Empty); // "Malformed timestamp"
        };
        if stamp.len() > 7 {
            return None;
        }
        let signed_at = stamp.iter().fold(0i64, |n, &b| n << 8 | i64::from(b));
        if let Some(max_age) = self.max_age {
            let age = now - signed_at;
            if age > max_age || age < 0 {
                return Some(Cookie::Empty);
            }
        }
        Some(Cookie::Valid(Bytes::copy_from_slice(payload)))
    }

    fn mac(&self) -> Hmac<Sha1> {
        Hmac::<Sha1>::new_from_slice(&self.key).expect("HMAC takes any key length")
    }

    /// `TimestampSigner.sign(data)`.
    fn sign(&self, data: &[u8], now: i64) -> Vec<u8> {
        let bytes = now.to_be_bytes();
        let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
        let mut value = data.to_vec();
        value.push(b'.');
        value.extend_from_slice(URLSAFE.encode(&bytes[start..]).as_bytes());
        let mut mac = self.mac();
        mac.update(&value);
        let signature = mac.finalize().into_bytes();
        value.push(b'.');
        value.extend_from_slice(URLSAFE.encode(signature).as_bytes());
        value
    }

    /// The app's `Session` for a request with `cookie`. A payload signed with the app's key
    /// that is not base64 JSON of a mapping raises, as in Starlette (which answers 500).
    pub fn open(&self, py: Python<'_>, cookie: &Cookie) -> PyResult<Session> {
        Ok(match cookie {
            Cookie::Valid(data) => Session {
                object: self.factory.call1(py, (PyBytes::new(py, data),))?,
                initial_empty: false,
            },
            Cookie::Empty => Session {
                object: self.factory.call1(py, (py.None(),))?,
                initial_empty: true,
            },
        })
    }

    /// `SessionMiddleware`'s `send_wrapper` for `http.response.start`.
    pub(super) fn on_response(
        &self,
        py: Python<'_>,
        session: &Session,
        headers: &mut impl HeaderList,
    ) -> PyResult<()> {
        let object = session.object.bind(py);
        if self.tracks_access {
            if object.getattr(pyo3::intern!(py, "accessed"))?.is_truthy()? {
                add_vary(headers, "Cookie", self.vary_join_all);
            }
            if !object.getattr(pyo3::intern!(py, "modified"))?.is_truthy()? {
                return Ok(());
            }
        }
        let mut cookie = self.cookie.clone();
        cookie.push(b'=');
        if object.is_truthy()? {
            let data = self.dump.call1(py, (object,))?;
            let data = data.bind(py).cast::<PyBytes>()?.as_bytes().to_vec();
            cookie.extend_from_slice(&self.sign(&data, now()));
            cookie.extend_from_slice(b"; path=");
            cookie.extend_from_slice(&self.path);
            cookie.extend_from_slice(b"; ");
            if let Some(max_age) = self.max_age.filter(|&age| !self.max_age_truthy || age != 0) {
                cookie.extend_from_slice(format!("Max-Age={max_age}; ").as_bytes());
            }
        } else if !session.initial_empty {
            cookie.extend_from_slice(b"null; path=");
            cookie.extend_from_slice(&self.path);
            cookie.extend_from_slice(b"; expires=Thu, 01 Jan 1970 00:00:00 GMT; ");
        } else {
            return Ok(());
        }
        cookie.extend_from_slice(&self.security_flags);
        let value = HeaderValue::from_bytes(&cookie).map_err(|_| EngineError::SessionCookie)?;
        headers.append(SET_COOKIE, value);
        Ok(())
    }
}

/// itsdangerous' `base64_decode`: `Some(None)` when it fails, `None` when the text has
/// characters Python's decoder would skip (left to Python).
fn decode(text: &[u8]) -> Option<Option<Vec<u8>>> {
    if !text
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'='))
    {
        return None;
    }
    if text.contains(&b'=') {
        return None; // padding in the middle or at the end: Python's rules, not ours
    }
    Some(URLSAFE.decode(text).ok())
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions(max_age: Option<i64>) -> Sessions {
        Python::initialize();
        Python::attach(|py| Sessions {
            cookie: b"session".to_vec(),
            // TimestampSigner("secret").derive_key()
            key: b":\x1c(\xf7\xaa\xd5\xa0/\xe6r\xd2O\x10\x03\xfbR\xa71.\xd7".to_vec(),
            max_age,
            path: b"/".to_vec(),
            security_flags: b"httponly; samesite=lax".to_vec(),
            factory: py.None(),
            dump: py.None(),
            tracks_access: true,
            max_age_truthy: false,
            all_cookie_headers: true,
            vary_join_all: true,
        })
    }

    #[test]
    fn signs_as_itsdangerous() {
        let s = sessions(None);
        // TimestampSigner("secret") at 1700000000: sign(b"eyJhIjogMX0=")
        let signed = s.sign(b"eyJhIjogMX0=", 1_700_000_000);
        assert_eq!(signed, PYTHON_SIGNED);
        assert!(
            matches!(s.unsign(&signed, 1_700_000_000), Some(Cookie::Valid(d)) if d.as_ref() == b"eyJhIjogMX0=")
        );
    }

    #[test]
    fn rejects_tampered_expired_and_future() {
        let s = sessions(Some(10));
        let signed = s.sign(b"eyJhIjogMX0=", 1_700_000_000);
        assert!(matches!(
            s.unsign(&signed, 1_700_000_010),
            Some(Cookie::Valid(_))
        ));
        assert!(matches!(
            s.unsign(&signed, 1_700_000_011),
            Some(Cookie::Empty)
        ));
        assert!(matches!(
            s.unsign(&signed, 1_699_999_999),
            Some(Cookie::Empty)
        ));
        let mut tampered = signed.clone();
        tampered[0] ^= 1;
        assert!(matches!(
            s.unsign(&tampered, 1_700_000_000),
            Some(Cookie::Empty)
        ));
        assert!(matches!(
            s.unsign(b"nodot", 1_700_000_000),
            Some(Cookie::Empty)
        ));
        assert!(s.unsign(b"a.b c", 1_700_000_000).is_none());
    }

    const PYTHON_SIGNED: &[u8] = b"eyJhIjogMX0=.ZVPxAA.xG24nPALo8AhuefWvxeYlShMy1g";
}
