//! `CORSMiddleware`: preflight answers and the headers of simple responses.
//!
//! Releases differ (the Python side sets the switches from the module's source digest):
//! before Starlette 1.7 a request without `Origin` passes untouched and `Vary: Origin` is
//! added only with an explicit `Access-Control-Allow-Origin` (through `add_vary_header`);
//! before 1.0 `"*"` origins are mirrored when the request has a cookie (not when credentials
//! are allowed); before 0.51 `Access-Control-Request-Private-Network` is not looked at.

use http::{HeaderName, HeaderValue, StatusCode};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use regex::bytes::Regex;

use super::{first, header_pair, latin1, option, plain_text, Head, HeaderList, Pending, Step};
use crate::errors::EngineError;

type Pairs = Vec<(HeaderName, HeaderValue)>;

/// Looked up by a name made once (a `&str` would be parsed on every lookup).
const REQUEST_PRIVATE_NETWORK: HeaderName =
    HeaderName::from_static("access-control-request-private-network");

pub struct Cors {
    allow_all_origins: bool,
    /// Each configured origin as latin-1 bytes (an origin that is not latin-1 never matches).
    allow_origins: Vec<Vec<u8>>,
    /// `allow_origin_regex`, anchored at both ends (Python's `fullmatch`).
    origin_regex: Option<Regex>,
    allow_methods: Vec<Vec<u8>>,
    allow_all_headers: bool,
    /// Lower-cased, as Starlette keeps them.
    allow_headers: Vec<Vec<u8>>,
    allow_credentials: bool,
    allow_private_network: bool,
    preflight_explicit_allow_origin: bool,
    simple_headers: Pairs,
    preflight_headers: Pairs,
    /// Starlette < 1.7: no `Origin`, nothing to do.
    origin_only: bool,
    /// Starlette < 1.0: with `"*"` origins, a request with a cookie gets its origin mirrored.
    mirror_on_cookie: bool,
    /// Starlette >= 0.51 answers `Access-Control-Request-Private-Network`.
    private_network: bool,
    /// Starlette >= 1.7 adds `Vary: Origin` to every simple response.
    vary_always: bool,
    /// How `Vary` is extended (`add_vary`'s `all`).
    vary_join_all: bool,
}

fn pairs(list: Vec<(String, String)>) -> Result<Pairs, EngineError> {
    list.iter().map(|(n, v)| header_pair(n, v)).collect()
}

fn byte_list(list: Vec<String>) -> Vec<Vec<u8>> {
    list.iter().filter_map(|s| latin1(s).ok()).collect()
}

impl Cors {
    pub fn from_options(options: &Bound<'_, PyDict>) -> PyResult<Self> {
        let regex: Option<String> = option(options, "allow_origin_regex")?;
        let origin_regex = regex
            .map(|pattern| Regex::new(&format!(r"\A(?:{pattern})\z")))
            .transpose()
            .map_err(EngineError::OriginRegex)?;
        Ok(Self {
            allow_all_origins: option(options, "allow_all_origins")?,
            allow_origins: byte_list(option(options, "allow_origins")?),
            origin_regex,
            allow_methods: byte_list(option(options, "allow_methods")?),
            allow_all_headers: option(options, "allow_all_headers")?,
            allow_headers: byte_list(option(options, "allow_headers")?),
            allow_credentials: option(options, "allow_credentials")?,
            allow_private_network: option(options, "allow_private_network")?,
            preflight_explicit_allow_origin: option(options, "preflight_explicit_allow_origin")?,
            simple_headers: pairs(option(options, "simple_headers")?)?,
            preflight_headers: pairs(option(options, "preflight_headers")?)?,
            origin_only: option(options, "origin_only")?,
            mirror_on_cookie: option(options, "mirror_on_cookie")?,
            private_network: option(options, "private_network")?,
            vary_always: option(options, "vary_always")?,
            vary_join_all: option(options, "vary_join_all")?,
        })
    }

    /// `is_allowed_origin`; `None` when the answer depends on Python's `re` beyond ASCII.
    fn is_allowed_origin(&self, origin: &[u8]) -> Option<bool> {
        if self.allow_all_origins {
            return Some(true);
        }
        if let Some(regex) = &self.origin_regex {
            if !origin.is_ascii() {
                return None;
            }
            if regex.is_match(origin) {
                return Some(true);
            }
        }
        Some(self.allow_origins.iter().any(|o| o == origin))
    }

    pub(super) fn on_request(&self, head: &Head<'_>) -> Step {
        let headers = &head.headers;
        let origin = headers.get(http::header::ORIGIN);
        if let Some(origin) = origin {
            if *head.method == http::Method::OPTIONS
                && headers.contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
            {
                return self.preflight(origin.as_bytes(), head);
            }
        }
        if origin.is_none() && self.origin_only {
            return Step::Next(Pending::Nothing);
        }
        // The simple response's decision needs nothing from the response: made once, here.
        let mirror = match origin {
            None => false,
            Some(_) if self.allow_all_origins && self.mirror_on_cookie => {
                headers.contains_key(http::header::COOKIE)
            }
            Some(_) if self.allow_all_origins => self.allow_credentials,
            Some(origin) => match self.is_allowed_origin(origin.as_bytes()) {
                None => return Step::Punt,
                Some(allowed) => allowed,
            },
        };
        Step::Next(Pending::Cors {
            origin: origin.cloned(),
            mirror,
        })
    }

    fn preflight(&self, origin: &[u8], head: &Head<'_>) -> Step {
        let request = head.headers;
        // room for what is added below (the map would grow and rehash otherwise)
        let mut headers = head.answer_map(self.preflight_headers.len() + 5);
        for (name, value) in &self.preflight_headers {
            headers.insert(name.clone(), value.clone());
        }
        let mut failures: Vec<&str> = Vec::new();
        match self.is_allowed_origin(origin) {
            None => return Step::Punt,
            Some(true) => {
                if self.preflight_explicit_allow_origin {
                    let Ok(value) = HeaderValue::from_bytes(origin) else {
                        return Step::Punt;
                    };
                    headers.insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
                }
            }
            Some(false) => failures.push("origin"),
        }
        let method =
            first(request, http::header::ACCESS_CONTROL_REQUEST_METHOD).unwrap_or_default();
        if !self.allow_methods.iter().any(|m| m == method) {
            failures.push("method");
        }
        if let Some(requested) = request.get(http::header::ACCESS_CONTROL_REQUEST_HEADERS) {
            if self.allow_all_headers {
                headers.insert(
                    http::header::ACCESS_CONTROL_ALLOW_HEADERS,
                    requested.clone(),
                );
            } else {
                let requested = requested.as_bytes();
                if !requested.is_ascii() {
                    return Step::Punt; // Python's lower() and strip() beyond ASCII
                }
                let disallowed = requested.split(|&b| b == b',').any(|header| {
                    let header = super::py_strip(header).to_ascii_lowercase();
                    !self.allow_headers.contains(&header)
                });
                if disallowed {
                    failures.push("headers");
                }
            }
        }
        if self.private_network && crate::names::has_name(request, &[&REQUEST_PRIVATE_NETWORK]) {
            if self.allow_private_network {
                headers.insert(
                    "access-control-allow-private-network",
                    HeaderValue::from_static("true"),
                );
            } else {
                failures.push("private-network");
            }
        }
        if failures.is_empty() {
            plain_text(StatusCode::OK, headers, "OK")
        } else {
            let text = format!("Disallowed CORS {}", failures.join(", "));
            plain_text(StatusCode::BAD_REQUEST, headers, text)
        }
    }

    /// `CORSMiddleware.send` for `http.response.start`; `mirror`: the origin is named in
    /// `Access-Control-Allow-Origin` (`allow_explicit_origin`).
    pub(super) fn on_response(
        &self,
        origin: Option<&HeaderValue>,
        mirror: bool,
        headers: &mut impl HeaderList,
    ) {
        if origin.is_some() {
            for (name, value) in &self.simple_headers {
                headers.set(name.clone(), value.clone());
            }
        }
        match origin {
            Some(origin) if mirror => {
                headers.set(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            }
            _ if self.vary_always => {}
            _ => return,
        }
        super::add_vary(headers, "Origin", self.vary_join_all);
    }
}
