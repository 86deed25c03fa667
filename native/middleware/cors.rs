//! `CORSMiddleware`: preflight answers and the headers of simple responses.
//!
//! Releases differ (the Python side sets the switches from the module's source digest):
//! before Starlette 1.7 a request without `Origin` passes untouched and `Vary: Origin` is
//! added only with an explicit `Access-Control-Allow-Origin` (through `add_vary_header`);
//! before 1.0 `"*"` origins are mirrored when the request has a cookie (not when credentials
//! are allowed); before 0.51 `Access-Control-Request-Private-Network` is not looked at.

use std::sync::OnceLock;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use regex::bytes::Regex;

use super::{header_pair, latin1, option, plain_text, Head, HeaderList, Pending, Step};
use crate::defaults::DefaultHeaders;
use crate::errors::EngineError;

type Pairs = Vec<(HeaderName, HeaderValue)>;

/// Looked up by a name made once (a `&str` would be parsed on every lookup).
const REQUEST_PRIVATE_NETWORK: HeaderName =
    HeaderName::from_static("access-control-request-private-network");
const ALLOW_PRIVATE_NETWORK: HeaderName =
    HeaderName::from_static("access-control-allow-private-network");

/// What an allowed preflight's answer holds beside the configured headers.
struct Allowed {
    /// `Access-Control-Allow-Origin`: the request's origin (when named explicitly).
    origin: Option<HeaderValue>,
    /// `Access-Control-Allow-Headers`: the requested ones (every header allowed).
    headers: Option<HeaderValue>,
    /// `Access-Control-Allow-Private-Network: true`.
    private_network: bool,
}

/// The header maps of allowed preflights' answers, made once (cloned per request, which costs
/// less than hashing every header into a new map): one per shape, indexed by
/// `2 * has Access-Control-Allow-Headers + has Access-Control-Allow-Private-Network`.
struct Templates {
    /// The listener defaults they start with (`None`: none).
    defaults: Option<DefaultHeaders>,
    maps: [HeaderMap; 4],
}

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
    /// Allowed preflights' answers, made on the first: without the listener's defaults, and
    /// starting with them (the first listener's that seeds them).
    templates: OnceLock<Box<Templates>>,
    seeded_templates: OnceLock<Box<Templates>>,
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
            templates: OnceLock::new(),
            seeded_templates: OnceLock::new(),
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
        if let Some(origin) = origin.filter(|_| *head.method == http::Method::OPTIONS) {
            if let Some(method) = headers.get(http::header::ACCESS_CONTROL_REQUEST_METHOD) {
                return self.preflight(origin.as_bytes(), method.as_bytes(), head);
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

    /// `method`: the (first) `Access-Control-Request-Method`.
    fn preflight(&self, origin: &[u8], method: &[u8], head: &Head<'_>) -> Step {
        let request = head.headers;
        let mut failures: Vec<&str> = Vec::new();
        let mut allow_origin = None;
        match self.is_allowed_origin(origin) {
            None => return Step::Punt,
            Some(true) => {
                if self.preflight_explicit_allow_origin {
                    let Ok(value) = HeaderValue::from_bytes(origin) else {
                        return Step::Punt;
                    };
                    allow_origin = Some(value);
                }
            }
            Some(false) => failures.push("origin"),
        }
        if !self.allow_methods.iter().any(|m| m == method) {
            failures.push("method");
        }
        let mut allow_headers = None;
        if let Some(requested) = request.get(http::header::ACCESS_CONTROL_REQUEST_HEADERS) {
            if self.allow_all_headers {
                allow_headers = Some(requested.clone());
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
        let mut private_network = false;
        if self.private_network && crate::names::has_name(request, &[&REQUEST_PRIVATE_NETWORK]) {
            if self.allow_private_network {
                private_network = true;
            } else {
                failures.push("private-network");
            }
        }
        let answer = Allowed {
            origin: allow_origin,
            headers: allow_headers,
            private_network,
        };
        if failures.is_empty() {
            if let Some(headers) = self.templated(head, &answer) {
                return Step::Answer(StatusCode::OK, headers, Bytes::from_static(b"OK"));
            }
        }
        self.preflight_answer(
            head.answer_map(self.preflight_headers.len() + 5),
            answer,
            &failures,
        )
    }

    /// A preflight's answer, its headers added to `headers` (from [`Head::answer_map`]).
    fn preflight_answer(&self, mut headers: HeaderMap, answer: Allowed, failures: &[&str]) -> Step {
        for (name, value) in &self.preflight_headers {
            headers.insert(name.clone(), value.clone());
        }
        if let Some(origin) = answer.origin {
            headers.insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        }
        if let Some(requested) = answer.headers {
            headers.insert(http::header::ACCESS_CONTROL_ALLOW_HEADERS, requested);
        }
        if answer.private_network {
            headers.insert(ALLOW_PRIVATE_NETWORK, HeaderValue::from_static("true"));
        }
        if failures.is_empty() {
            plain_text(StatusCode::OK, headers, "OK")
        } else {
            let text = format!("Disallowed CORS {}", failures.join(", "));
            plain_text(StatusCode::BAD_REQUEST, headers, text)
        }
    }

    /// The headers of an allowed preflight's answer: a copy of the template of its shape,
    /// with the request's own values (and the current `date`) put in. `None` when the
    /// listener's defaults are not the ones the templates were made with.
    fn templated(&self, head: &Head<'_>, answer: &Allowed) -> Option<HeaderMap> {
        let defaults = head.defaults.filter(|d| d.seeds());
        let slot = if defaults.is_some() {
            &self.seeded_templates
        } else {
            &self.templates
        };
        let templates = slot.get_or_init(|| Box::new(self.templates(head, defaults)));
        if templates.defaults.as_ref() != defaults {
            return None; // another listener's defaults: built header by header
        }
        let shape = usize::from(answer.headers.is_some()) * 2 + usize::from(answer.private_network);
        let mut headers = templates.maps[shape].clone();
        if let Some(defaults) = defaults {
            defaults.restamp(&mut headers);
        }
        if let Some(origin) = &answer.origin {
            *headers.get_mut(http::header::ACCESS_CONTROL_ALLOW_ORIGIN)? = origin.clone();
        }
        if let Some(requested) = &answer.headers {
            *headers.get_mut(http::header::ACCESS_CONTROL_ALLOW_HEADERS)? = requested.clone();
        }
        Some(headers)
    }

    /// The allowed preflight's answers of every shape, built as [`Self::preflight_answer`]
    /// builds them (so their headers come in the same order), with stand-in values where a
    /// request's own go.
    fn templates(&self, head: &Head<'_>, defaults: Option<&DefaultHeaders>) -> Templates {
        let maps = [0, 1, 2, 3].map(|shape| {
            let answer = Allowed {
                origin: self
                    .preflight_explicit_allow_origin
                    .then(|| HeaderValue::from_static("*")),
                headers: (shape & 2 != 0).then(|| HeaderValue::from_static("*")),
                private_network: shape & 1 != 0,
            };
            let map = head.answer_map(self.preflight_headers.len() + 5);
            match self.preflight_answer(map, answer, &[]) {
                Step::Answer(_, headers, _) => headers,
                _ => HeaderMap::new(),
            }
        });
        Templates {
            defaults: defaults.cloned(),
            maps,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::middleware::PathText;

    fn cors(explicit: bool, all_headers: bool, preflight: &[(&str, &str)]) -> Cors {
        let pairs = preflight
            .iter()
            .map(|(n, v)| header_pair(n, v).unwrap())
            .collect();
        Cors {
            allow_all_origins: false,
            allow_origins: vec![b"https://a.example".to_vec()],
            origin_regex: None,
            allow_methods: vec![b"GET".to_vec(), b"POST".to_vec()],
            allow_all_headers: all_headers,
            allow_headers: vec![b"x-token".to_vec()],
            allow_credentials: true,
            allow_private_network: true,
            preflight_explicit_allow_origin: explicit,
            simple_headers: Vec::new(),
            preflight_headers: pairs,
            origin_only: false,
            mirror_on_cookie: false,
            private_network: true,
            vary_always: true,
            vary_join_all: true,
            templates: OnceLock::new(),
            seeded_templates: OnceLock::new(),
        }
    }

    fn answer(cors: &Cors, request: &HeaderMap, defaults: Option<&DefaultHeaders>) -> Step {
        let head = Head {
            method: &http::Method::OPTIONS,
            headers: request,
            scheme: "http",
            root_path: "",
            path: PathText::Raw(b"/"),
            query: b"",
            server: None,
            defaults,
        };
        cors.on_request(&head)
    }

    /// Name, value pairs in order; the `date` value left out (it may straddle a second).
    /// Status, header pairs, body.
    type Listed = (u16, Vec<(String, Vec<u8>)>, Vec<u8>);

    fn listed(step: &Step) -> Listed {
        let Step::Answer(status, headers, body) = step else {
            panic!("not an answer");
        };
        let pairs = headers
            .iter()
            .map(|(n, v)| {
                let value = if n == http::header::DATE {
                    Vec::new()
                } else {
                    v.as_bytes().to_vec()
                };
                (n.to_string(), value)
            })
            .collect();
        (status.as_u16(), pairs, body.to_vec())
    }

    #[test]
    fn a_templated_answer_is_the_one_built_header_by_header() {
        let seeded = DefaultHeaders::new(true, vec![(b"server".to_vec(), b"uvicorn".to_vec())]);
        let other = DefaultHeaders::new(false, vec![(b"server".to_vec(), b"x".to_vec())]);
        let unseeded = DefaultHeaders::new(true, vec![(b"x-a".to_vec(), b"1".to_vec())]);
        let (seeded, other, unseeded) = (seeded.unwrap(), other.unwrap(), unseeded.unwrap());
        let star = [
            ("Access-Control-Allow-Origin", "*"),
            ("Access-Control-Allow-Methods", "GET, POST"),
        ];
        let plain = [
            ("Access-Control-Allow-Methods", "GET, POST"),
            ("Access-Control-Max-Age", "600"),
            ("Vary", "Origin"),
            ("Access-Control-Allow-Credentials", "true"),
        ];
        let requests: [&[(&str, &str)]; 6] = [
            &[("access-control-request-method", "GET")],
            &[
                ("access-control-request-method", "GET"),
                ("access-control-request-headers", "X-Token, y"),
            ],
            &[
                ("access-control-request-method", "POST"),
                ("access-control-request-private-network", "true"),
            ],
            &[
                ("access-control-request-headers", "x-token"),
                ("access-control-request-private-network", "true"),
                ("access-control-request-method", "GET"),
            ],
            &[("access-control-request-method", "PUT")],
            &[
                ("access-control-request-method", "GET"),
                ("access-control-request-headers", "x-other"),
            ],
        ];
        for (explicit, all_headers, preflight) in [
            (true, true, &plain[..]),
            (false, true, &plain[..]),
            (true, false, &star[..]),
            (false, false, &star[..]),
        ] {
            for origin in ["https://a.example", "https://b.example"] {
                for extra in requests {
                    let mut request = HeaderMap::new();
                    request.insert(http::header::ORIGIN, HeaderValue::from_static(origin));
                    for (name, value) in extra {
                        request.append(*name, HeaderValue::from_static(value));
                    }
                    // the same layer answers through its templates (made on its first answer,
                    // for the first listener's defaults) and header by header (other defaults)
                    let layer = cors(explicit, all_headers, preflight);
                    for defaults in [Some(&seeded), None, Some(&unseeded), Some(&other)] {
                        // templates for other defaults only: answered header by header
                        let fresh = cors(explicit, all_headers, preflight);
                        for slot in [&fresh.templates, &fresh.seeded_templates] {
                            let decoy = DefaultHeaders::new(true, Vec::new()).unwrap();
                            let maps = std::array::from_fn(|_| HeaderMap::new());
                            let _ = slot.set(Box::new(Templates {
                                defaults: Some(decoy),
                                maps,
                            }));
                        }
                        let built = answer(&fresh, &request, defaults);
                        let templated = answer(&layer, &request, defaults);
                        assert_eq!(
                            listed(&templated),
                            listed(&built),
                            "{origin} {extra:?} {defaults:?}"
                        );
                    }
                }
            }
        }
    }
}
