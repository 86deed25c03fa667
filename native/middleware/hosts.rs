//! `TrustedHostMiddleware` and `HTTPSRedirectMiddleware`: decisions from the `Host` header.
//!
//! The common answers are made here (a trusted host passes, an untrusted one gets Starlette's
//! 400, a plain `http` URL its 307); the `www` redirect and URLs whose text Python's
//! `urlsplit`/`quote` would reshape (IPv6 literals, control characters) punt to the ASGI tier.
//!
//! Before Starlette 1.7, `TrustedHostMiddleware` takes the `Host` header up to its first `:`
//! as it is (no validation, no lower-casing: `split_host`); 1.7 and 1.8 validate it but do not
//! lower-case it. `URL(scope=...)` before 1.9 puts the `Host` header and the path into the URL
//! text as they are: with `plain_url`, the redirect is built here only where every release
//! gives the same URL (a plain `host[:port]`, a path without `?` or `#`).

use std::sync::LazyLock;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, LOCATION};
use http::{HeaderValue, StatusCode};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use regex::bytes::Regex;

use super::{first, option, plain_text, Head, Pending, Step};

/// Starlette's `_HOST_RE` (`starlette._utils`), case-insensitive, ASCII only as the latin-1
/// text it is matched against has no other case pairs with ASCII.
static HOST_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?i-u)\A(?P<host>[a-z0-9._~%!$&'()*+,;=-]+|\[(?:(?P<ipv6>[a-f0-9]*:[a-f0-9.:]+)|",
        r"(?-i:v)[a-f0-9]+\.[a-z0-9._~!$&'()*+,;=:-]+)\])(?::(?P<port>[0-9]+))?\z",
    ))
    .expect("host regex")
});

/// A `Host` header's host and port, as written.
type HostPort<'a> = (&'a [u8], Option<&'a [u8]>);

/// `parse_host_header`: `(host, port)`, `None` for an invalid header. `Err(())` for a
/// bracketed literal (its validation is Python's `ipaddress`, so the caller punts).
fn parse_host(value: Option<&[u8]>) -> Result<Option<HostPort<'_>>, ()> {
    let Some(value) = value else {
        return Ok(None);
    };
    let Some(found) = HOST_RE.captures(value) else {
        return Ok(None);
    };
    let Some(host) = found.name("host") else {
        return Ok(None);
    };
    if host.as_bytes().starts_with(b"[") {
        return Err(());
    }
    Ok(Some((
        host.as_bytes(),
        found.name("port").map(|p| p.as_bytes()),
    )))
}

/// `ParsedHost.is_valid_port`, with the port's value.
fn valid_port(port: Option<&[u8]>) -> Option<Option<u32>> {
    let Some(port) = port else {
        return Some(None);
    };
    let digits: &[u8] = &port[port.iter().position(|&b| b != b'0').unwrap_or(port.len())..];
    if digits.len() > 5 {
        return None;
    }
    let value = std::str::from_utf8(digits)
        .ok()?
        .parse::<u32>()
        .unwrap_or(0);
    (value <= 65535).then_some(Some(value))
}

pub struct TrustedHost {
    /// The instance's patterns (lower-cased from Starlette 1.9), as latin-1 bytes.
    allowed: Vec<Vec<u8>>,
    allow_any: bool,
    www_redirect: bool,
    /// Starlette < 1.7: `headers.get("host", "").split(":")[0]`.
    split_host: bool,
    /// Starlette >= 1.9 lower-cases the host.
    lowercase: bool,
}

impl TrustedHost {
    pub fn from_options(options: &Bound<'_, PyDict>) -> PyResult<Self> {
        let allowed: Vec<String> = option(options, "allowed_hosts")?;
        Ok(Self {
            // A pattern that is not latin-1 text matches no header.
            allowed: allowed
                .iter()
                .filter_map(|p| super::latin1(p).ok())
                .collect(),
            allow_any: option(options, "allow_any")?,
            www_redirect: option(options, "www_redirect")?,
            split_host: option(options, "split_host")?,
            lowercase: option(options, "lowercase")?,
        })
    }

    pub(super) fn on_request(&self, head: &Head<'_>) -> Step {
        if self.allow_any {
            return Step::Next(Pending::Nothing);
        }
        let host = if self.split_host {
            let value = first(head.headers, http::header::HOST).unwrap_or_default();
            value
                .split(|&b| b == b':')
                .next()
                .unwrap_or_default()
                .to_vec()
        } else {
            let Ok(parsed) = parse_host(first(head.headers, http::header::HOST)) else {
                return Step::Punt;
            };
            let Some((host, _)) = parsed else {
                return invalid_host(head);
            };
            if self.lowercase {
                host.to_ascii_lowercase()
            } else {
                host.to_vec()
            }
        };
        let mut www = false;
        for pattern in &self.allowed {
            if *pattern == host || (pattern.starts_with(b"*") && host.ends_with(&pattern[1..])) {
                return Step::Next(Pending::Nothing);
            }
            if pattern.len() == host.len() + 4
                && pattern.starts_with(b"www.")
                && pattern[4..] == host[..]
            {
                www = true;
            }
        }
        if www && self.www_redirect {
            Step::Punt // the redirect URL is built by Starlette's `URL`
        } else {
            invalid_host(head)
        }
    }
}

fn invalid_host(head: &Head<'_>) -> Step {
    plain_text(
        StatusCode::BAD_REQUEST,
        head.answer_map(2),
        "Invalid host header",
    )
}

/// `HTTPSRedirectMiddleware`: `https` requests pass; `http` ones get the 307 (`plain_url`: a
/// release whose `URL` takes the text as it is, see the module's note).
pub(super) fn https_redirect(head: &Head<'_>, plain_url: bool) -> Step {
    if crate::names::has_name(head.headers, &[&super::TEST_CLIENT_NAME]) {
        return Step::Punt; // a test client's request: its scheme is the one the client promised
    }
    if head.scheme != "http" {
        return Step::Next(Pending::Nothing);
    }
    if plain_url && !plain_request(head) {
        return Step::Punt;
    }
    match redirect_location(head) {
        Some(location) => {
            let mut headers = head.answer_map(2);
            headers.insert(CONTENT_LENGTH, HeaderValue::from(0));
            headers.insert(LOCATION, location);
            Step::Answer(StatusCode::TEMPORARY_REDIRECT, headers, Bytes::new())
        }
        None => Step::Punt,
    }
}

/// Whether every release's `URL(scope=...)` reads this request the same: no `Host` header, or
/// a plain `name[:digits]` one; a path without `?` or `#` (the newer `URL` escapes those).
fn plain_request(head: &Head<'_>) -> bool {
    if let Some(host) = first(head.headers, http::header::HOST) {
        let (name, port) = match host.iter().position(|&b| b == b':') {
            Some(i) => (&host[..i], Some(&host[i + 1..])),
            None => (host, None),
        };
        let name_ok = !name.is_empty()
            && name
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'));
        let port_ok = port.is_none_or(|p| {
            !p.is_empty() && p.iter().all(u8::is_ascii_digit) && valid_port(Some(p)).is_some()
        });
        if !name_ok || !port_ok {
            return false;
        }
    }
    !head.full_path().contains(['?', '#'])
}

/// `URL(scope=scope)` with the scheme `https` and the default port dropped, through
/// `RedirectResponse`'s `quote`; `None` when Python's URL handling could reshape the text.
fn redirect_location(head: &Head<'_>) -> Option<HeaderValue> {
    let parsed = parse_host(first(head.headers, http::header::HOST)).ok()?;
    let (netloc, hostname, port) = match parsed.and_then(|(h, p)| Some((h, p, valid_port(p)?))) {
        Some((host, written, port)) => {
            let mut netloc = host.to_vec();
            if let Some(written) = written {
                netloc.push(b':');
                netloc.extend_from_slice(written);
            }
            (netloc, host.to_ascii_lowercase(), port)
        }
        None => {
            let server = head.server?;
            let std::net::IpAddr::V4(ip) = server.ip() else {
                return None;
            };
            let host = ip.to_string().into_bytes();
            let port = server.port();
            let mut netloc = host.clone();
            if port != 80 {
                netloc.extend_from_slice(format!(":{port}").as_bytes());
                (netloc, host, Some(u32::from(port)))
            } else {
                (netloc, host, None)
            }
        }
    };
    // `urlsplit` drops tabs and newlines and trims control characters: leave those to Python.
    let plain = |b: &u8| *b >= 0x20 && *b != 0x7f;
    let path = head.full_path();
    if !path.bytes().all(|b| plain(&b)) || !head.query.iter().all(plain) || !head.query.is_ascii() {
        return None;
    }
    let path = path
        .replace('?', "%3F")
        .replace('#', "%23")
        .replace('\\', "%5C");
    let mut url = b"https://".to_vec();
    if matches!(port, Some(80 | 443)) {
        url.extend_from_slice(&hostname);
    } else {
        url.extend_from_slice(&netloc);
    }
    url.extend_from_slice(path.as_bytes());
    if !head.query.is_empty() {
        url.push(b'?');
        url.extend_from_slice(head.query);
    }
    HeaderValue::from_bytes(&quote(&url)).ok()
}

/// `urllib.parse.quote(text, safe=":/%#?=@[]!$&'()*+,;")` on UTF-8 bytes.
fn quote(text: &[u8]) -> Vec<u8> {
    const SAFE: &[u8] = b":/%#?=@[]!$&'()*+,;_.-~";
    let mut out = Vec::with_capacity(text.len());
    for &b in text {
        if b.is_ascii_alphanumeric() || SAFE.contains(&b) {
            out.push(b);
        } else {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_header_parsing() {
        assert_eq!(
            parse_host(Some(b"Example.com:8080")),
            Ok(Some((&b"Example.com"[..], Some(&b"8080"[..]))))
        );
        assert_eq!(parse_host(Some(b"example.com:")), Ok(None));
        assert_eq!(parse_host(Some(b"exa mple.com")), Ok(None));
        assert_eq!(parse_host(None), Ok(None));
        assert_eq!(parse_host(Some(b"[::1]:80")), Err(()));
        assert_eq!(valid_port(Some(b"000080")), Some(Some(80)));
        assert_eq!(valid_port(Some(b"65536")), None);
        assert_eq!(valid_port(Some(b"0")), Some(Some(0)));
    }

    #[test]
    fn quote_is_pythons() {
        assert_eq!(quote("/a b/é\"{".as_bytes()), b"/a%20b/%C3%A9%22%7B");
        assert_eq!(quote(b"/x?y=1&z=%41"), b"/x?y=1&z=%41");
    }
}
