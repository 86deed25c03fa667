//! `CORSMiddleware`: preflight answers and the headers of simple responses.

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use regex::bytes::Regex;

use super::{first, header_pair, latin1, option, plain_text, Pending, Step};
use crate::errors::EngineError;
use crate::request::RequestHead;

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

    pub(super) fn on_request(&self, head: &RequestHead) -> Step {
        let headers = &head.headers;
        let origin = headers.get(http::header::ORIGIN);
        if let Some(origin) = origin {
            if head.method == http::Method::OPTIONS
                && headers.contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
            {
                return self.preflight(origin.as_bytes(), headers);
            }
        }
        // The simple response's decision needs nothing from the response: made once, here.
        let allowed = match origin.map(|o| self.is_allowed_origin(o.as_bytes())) {
            Some(None) => return Step::Punt,
            Some(Some(allowed)) => allowed,
            None => false,
        };
        Step::Next(Pending::Cors {
            origin: origin.cloned(),
            allowed,
        })
    }

    fn preflight(&self, origin: &[u8], request: &HeaderMap) -> Step {
        // room for what is added below (the map would grow and rehash otherwise)
        let mut headers = HeaderMap::with_capacity(self.preflight_headers.len() + 5);
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
        if request.contains_key(REQUEST_PRIVATE_NETWORK) {
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
            plain_text(StatusCode::OK, headers, "OK".to_owned())
        } else {
            let text = format!("Disallowed CORS {}", failures.join(", "));
            plain_text(StatusCode::BAD_REQUEST, headers, text)
        }
    }

    /// `CORSMiddleware.send` for `http.response.start`; `allowed` is `is_allowed_origin(origin)`.
    pub(super) fn on_response(
        &self,
        origin: Option<&HeaderValue>,
        allowed: bool,
        headers: &mut HeaderMap,
    ) {
        if origin.is_some() {
            for (name, value) in &self.simple_headers {
                headers.insert(name.clone(), value.clone());
            }
        }
        let explicit = match origin {
            Some(origin) if self.allow_all_origins && self.allow_credentials => Some(origin),
            Some(origin) if !self.allow_all_origins && allowed => Some(origin),
            _ => None,
        };
        if let Some(origin) = explicit {
            headers.insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        }
        super::add_vary(headers, "Origin");
    }
}
