//! Starlette's standard middleware, run in Rust around native routes.
//!
//! The compiler hands over the app's `user_middleware` (outermost first) when every entry is
//! one of Starlette's own classes with a source the engine was verified against; each becomes
//! a [`Layer`] configured from the *instantiated* Starlette middleware's attributes, so option
//! handling (defaults, `"*"`, sorting, header text) is Starlette's own.
//!
//! A request passes the layers outermost first ([`Stack::on_request`]). Each layer either lets
//! it through (leaving a [`Pending`] note for its response phase), answers it itself (a CORS
//! preflight, an invalid host: the answer then passes the response phases of the layers outside
//! it), or *punts*: the case is one the engine does not reproduce byte for byte (a redirect to
//! build from an unusual URL, a cookie in an unusual form...), and the ASGI tier serves the
//! request with the app's real middleware stack. Responses from the native route pass the
//! response phases innermost first ([`Armed::on_response`]), as ASGI `send` wrappers would.
//! `ServerErrorMiddleware` sits outside every user middleware: its 500 skips them all.

mod asgi;
mod cors;
mod gzip;
mod headers;
mod hosts;
mod sessions;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::defaults::DefaultHeaders;
use crate::errors::EngineError;
use crate::names::has_name;
use crate::request::RequestHead;

pub use headers::{HeaderList, RawHeaders};
pub use sessions::{Cookie, Session};

/// What the layers' request phases read of a request: the engine's own parse of it (the
/// native tier) or an ASGI scope (the layers inside the app's Python middleware).
pub struct Head<'a> {
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
    pub scheme: &'a str,
    /// `root_path`, and the path as the scope has it (decoded) or as the request line had it.
    pub root_path: &'a str,
    pub path: PathText<'a>,
    pub query: &'a [u8],
    /// The server's address (`None`: not an IP address, or a unix socket).
    pub server: Option<std::net::SocketAddr>,
    /// The listener's default headers, when an answer goes straight to the connection (not
    /// to an ASGI `send`): an answer's map then starts with them ([`Head::answer_map`]).
    pub defaults: Option<&'a DefaultHeaders>,
}

/// The request path, as written (percent-encoded) or decoded.
pub enum PathText<'a> {
    Raw(&'a [u8]),
    Decoded(&'a str),
}

impl Head<'_> {
    /// Whether the maps of [`Head::answer_map`] hold the default headers already.
    fn seeds(&self) -> bool {
        self.defaults.is_some_and(DefaultHeaders::seeds)
    }

    /// The header map of a layer's answer, with room for `room` headers: seeded with the
    /// default headers when [`Head::seeds`], else empty.
    fn answer_map(&self, room: usize) -> HeaderMap {
        match self.defaults {
            Some(defaults) if defaults.seeds() => defaults.seeded(room),
            _ => HeaderMap::with_capacity(room),
        }
    }

    /// `scope["root_path"] + scope["path"]`, as Starlette's `URL(scope=...)` joins them.
    fn full_path(&self) -> String {
        let decoded = match &self.path {
            PathText::Raw(raw) => percent_encoding::percent_decode(raw).decode_utf8_lossy(),
            PathText::Decoded(path) => std::borrow::Cow::Borrowed(*path),
        };
        let mut path = String::with_capacity(self.root_path.len() + decoded.len());
        path.push_str(self.root_path);
        path.push_str(&decoded);
        path
    }
}

impl RequestHead {
    /// The view of this request the layers read.
    pub fn layer_head(&self) -> Head<'_> {
        Head {
            method: &self.method,
            headers: &self.headers,
            scheme: self.scheme,
            root_path: &self.site.root_path,
            path: PathText::Raw(&self.raw_path),
            query: &self.query,
            server: match &self.server {
                crate::site::Local::Inet(addr) => Some(*addr),
                _ => None,
            },
            defaults: Some(&self.site.defaults),
        }
    }
}

/// One of Starlette's middleware, configured.
enum Layer {
    Cors(cors::Cors),
    GZip(gzip::GZip),
    TrustedHost(hosts::TrustedHost),
    /// Whether the release's `URL` takes the request's text as it is (`hosts::https_redirect`).
    HttpsRedirect(bool),
    Session(sessions::Sessions),
}

/// What a layer left for the response phase of one request.
pub enum Pending {
    Nothing,
    /// The request's `Origin`, and whether the response names it in
    /// `Access-Control-Allow-Origin`.
    Cors {
        origin: Option<HeaderValue>,
        mirror: bool,
    },
    /// Whether the client takes gzip; the request's time (a `GzipFile` header's mtime).
    GZip {
        gzip: bool,
        mtime: u32,
    },
    Session(Cookie),
}

/// The outcome of the request phase.
pub enum Flow {
    /// The request reaches the router; one note per layer.
    Next(Vec<Pending>),
    /// A layer answered; the notes of the layers outside it.
    Answer(Answer),
    /// The ASGI tier serves this request.
    Punt,
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub pending: Vec<Pending>,
    /// `headers` start with the default headers ([`Head::answer_map`]).
    pub seeded: bool,
}

/// The app's middleware stack, outermost first.
pub struct Stack {
    layers: Vec<Layer>,
    /// The index of the session layer, if any.
    session: Option<usize>,
}

impl Stack {
    pub fn on_request(&self, head: &RequestHead) -> Flow {
        self.on_head(&head.layer_head())
    }

    /// The request phases, outermost first, for any [`Head`].
    pub fn on_head(&self, head: &Head<'_>) -> Flow {
        // A test client's request that had no `Host` of its own travels with one added; the app
        // will not see it, so nothing here may decide from it.
        if has_name(head.headers, &[&SYNTHETIC_HOST_NAME]) {
            return Flow::Punt;
        }
        // made on the first note (an answer from the outermost layer needs none)
        let mut pending = Vec::new();
        for layer in &self.layers {
            let step = match layer {
                Layer::Cors(cors) => cors.on_request(head),
                Layer::GZip(gzip) => gzip.on_request(head),
                Layer::TrustedHost(hosts) => hosts.on_request(head),
                Layer::HttpsRedirect(plain_url) => hosts::https_redirect(head, *plain_url),
                Layer::Session(sessions) => sessions.on_request(head),
            };
            match step {
                Step::Next(note) => {
                    if pending.is_empty() {
                        pending.reserve_exact(self.layers.len());
                    }
                    pending.push(note);
                }
                Step::Answer(status, headers, body) => {
                    return Flow::Answer(Answer {
                        status,
                        headers,
                        body,
                        pending,
                        seeded: head.seeds(),
                    })
                }
                Step::Punt => return Flow::Punt,
            }
        }
        Flow::Next(pending)
    }

    /// The app's `Session` object for a request that passed the layers with `pending`.
    pub fn open_session(&self, py: Python<'_>, pending: &[Pending]) -> PyResult<Option<Session>> {
        let Some(index) = self.session else {
            return Ok(None);
        };
        match (&self.layers[index], pending.get(index)) {
            (Layer::Session(sessions), Some(Pending::Session(cookie))) => {
                sessions.open(py, cookie).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// The response phases of `pending`'s layers (innermost first) for a whole response.
    pub fn complete(
        &self,
        py: Option<Python<'_>>,
        pending: &[Pending],
        session: Option<&Session>,
        status: StatusCode,
        headers: &mut impl HeaderList,
        body: Bytes,
    ) -> PyResult<Bytes> {
        let (body, encoders) = self.start(py, pending, session, status, headers, body, false)?;
        debug_assert!(encoders.is_empty());
        Ok(body)
    }

    /// The response phases for the start of a response and its first body message; returns the
    /// body to send and, for a streamed body, the encoders its later chunks go through.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        &self,
        py: Option<Python<'_>>,
        pending: &[Pending],
        session: Option<&Session>,
        status: StatusCode,
        headers: &mut impl HeaderList,
        mut body: Bytes,
        more: bool,
    ) -> PyResult<(Bytes, Encoders)> {
        let mut encoders = Vec::new();
        for (layer, note) in self.layers.iter().zip(pending).rev() {
            match (layer, note) {
                (Layer::Cors(cors), Pending::Cors { origin, mirror }) => {
                    cors.on_response(origin.as_ref(), *mirror, headers)
                }
                (
                    Layer::GZip(gzip),
                    Pending::GZip {
                        gzip: accepts,
                        mtime,
                    },
                ) => {
                    let (out, encoder) =
                        gzip.on_start(*accepts, *mtime, status, headers, body, more);
                    body = out;
                    if let Some(encoder) = encoder {
                        encoders.push(encoder);
                    }
                }
                (Layer::Session(sessions), Pending::Session(_)) => {
                    if let (Some(py), Some(session)) = (py, session) {
                        sessions.on_response(py, session, headers)?;
                    }
                }
                _ => {}
            }
        }
        Ok((body, Encoders(encoders)))
    }
}

/// The body encoders of one streamed response, innermost first.
#[derive(Default)]
pub struct Encoders(Vec<gzip::Encoder>);

impl Encoders {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A later body message, through every encoder in turn.
    pub fn chunk(&mut self, mut body: Bytes, more: bool) -> Bytes {
        for encoder in &mut self.0 {
            body = encoder.chunk(&body, more);
        }
        body
    }
}

/// A layer's verdict on a request; an answer's map comes from [`Head::answer_map`].
enum Step {
    Next(Pending),
    Answer(StatusCode, HeaderMap, Bytes),
    Punt,
}

/// The header a test client adds when the request it forwards had no `Host`.
pub const SYNTHETIC_HOST: &str = "x-fastrapi-synthetic-host";
/// The header naming a test client's request (`fastrapi_compat.loopback`): the scheme and
/// server the app sees are the ones the client promised, not the loopback connection's.
pub const TEST_CLIENT: &str = "x-fastrapi-testclient";
/// The two as header names, made once (a `&str` is parsed again on every lookup).
const SYNTHETIC_HOST_NAME: HeaderName = HeaderName::from_static(SYNTHETIC_HOST);
const TEST_CLIENT_NAME: HeaderName = HeaderName::from_static(TEST_CLIENT);

/// What `PlainTextResponse(text, status_code, headers=...)` sends: the given headers, then
/// `content-length` and `content-type`.
/// (`text`: a `&'static str` is sent without a copy.)
fn plain_text(status: StatusCode, mut headers: HeaderMap, text: impl Into<Bytes>) -> Step {
    let text = text.into();
    headers.insert(CONTENT_LENGTH, HeaderValue::from(text.len()));
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Step::Answer(status, headers, text)
}

/// The first value of a request header, as bytes.
fn first<K: http::header::AsHeaderName>(headers: &HeaderMap, name: K) -> Option<&[u8]> {
    headers.get(name).map(HeaderValue::as_bytes)
}

/// Python's `str.strip()` for a latin-1 decoded value (its whitespace in that range).
fn py_strip(value: &[u8]) -> &[u8] {
    let ws = |b: &u8| matches!(b, b'\t'..=b'\r' | 0x1c..=0x20 | 0x85 | 0xa0);
    let start = value.iter().position(|b| !ws(b)).unwrap_or(value.len());
    let end = value.iter().rposition(|b| !ws(b)).map_or(start, |i| i + 1);
    &value[start..end]
}

/// `MutableHeaders.add_vary_header`: every `vary` value (Starlette 1.9+; only the first
/// before, `all == false`) and the new one, joined, set as the only one.
fn add_vary(headers: &mut impl HeaderList, vary: &str, all: bool) {
    let mut joined: Vec<u8> = Vec::new();
    for value in headers
        .all(http::header::VARY.as_str())
        .into_iter()
        .take(if all { usize::MAX } else { 1 })
    {
        joined.extend_from_slice(value);
        joined.extend_from_slice(b", ");
    }
    joined.extend_from_slice(vary.as_bytes());
    if let Ok(value) = HeaderValue::from_bytes(&joined) {
        headers.set(http::header::VARY, value);
    }
}

/// A header name/value pair from the Python side (latin-1 text, as Starlette encodes it).
fn header_pair(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), EngineError> {
    let name = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
        .map_err(|_| EngineError::HeaderName(name.to_owned()))?;
    let value = HeaderValue::from_bytes(&latin1(value)?)
        .map_err(|_| EngineError::HeaderValue(value.to_owned()))?;
    Ok((name, value))
}

/// `str.encode("latin-1")`.
fn latin1(text: &str) -> Result<Vec<u8>, EngineError> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(|| EngineError::NotLatin1(text.to_owned()))
}

fn option<'py, T: pyo3::conversion::FromPyObjectOwned<'py>>(
    options: &Bound<'py, PyDict>,
    key: &str,
) -> PyResult<T> {
    options
        .get_item(key)?
        .ok_or_else(|| EngineError::MissingOption(key.to_owned()))?
        .extract()
        .map_err(Into::into)
}

/// The middleware stack as a Python object, handed to `RouteMirror(..., middleware=...)`:
/// `MiddlewareStack([(kind, {option: value})])`, outermost first. Kinds: `cors`, `gzip`,
/// `trustedhost`, `httpsredirect`, `session`.
#[pyclass(frozen, module = "fastrapi_compat._native", name = "MiddlewareStack")]
pub struct PyMiddlewareStack {
    pub(crate) inner: std::sync::Arc<Stack>,
}

#[pymethods]
impl PyMiddlewareStack {
    #[new]
    fn new(layers: Vec<Bound<'_, PyTuple>>) -> PyResult<Self> {
        let mut built = Vec::with_capacity(layers.len());
        let mut session = None;
        for (index, spec) in layers.iter().enumerate() {
            let kind: String = spec.get_item(0)?.extract()?;
            let item = spec.get_item(1)?;
            let options = item.cast::<PyDict>()?;
            built.push(match kind.as_str() {
                "cors" => Layer::Cors(cors::Cors::from_options(options)?),
                "gzip" => Layer::GZip(gzip::GZip::from_options(options)?),
                "trustedhost" => Layer::TrustedHost(hosts::TrustedHost::from_options(options)?),
                "httpsredirect" => Layer::HttpsRedirect(option(options, "plain_url")?),
                "session" => {
                    if session.is_some() {
                        return Err(EngineError::TwoSessions.into());
                    }
                    session = Some(index);
                    Layer::Session(sessions::Sessions::from_options(options)?)
                }
                other => return Err(EngineError::UnknownMiddleware(other.to_owned()).into()),
            });
        }
        Ok(Self {
            inner: std::sync::Arc::new(Stack {
                layers: built,
                session,
            }),
        })
    }

    /// The request phases for an `http` scope, inside the app's Python middleware: `None`
    /// (Starlette's classes serve it), the answer's ASGI messages, or a `LayerCall` (see
    /// [`asgi`]).
    fn enter<'py>(
        &self,
        py: Python<'py>,
        scope: &Bound<'py, PyDict>,
    ) -> PyResult<Bound<'py, PyAny>> {
        asgi::enter(&self.inner, py, scope)
    }

    fn __len__(&self) -> usize {
        self.inner.layers.len()
    }
}

pub fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyMiddlewareStack>()?;
    m.add_class::<asgi::PyLayerCall>()?;
    m.add("SYNTHETIC_HOST_HEADER", SYNTHETIC_HOST)?;
    m.add("TEST_CLIENT_HEADER", TEST_CLIENT)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_is_pythons() {
        assert_eq!(py_strip(b" \t a b \xa0\x85"), b"a b");
        assert_eq!(py_strip(b"   "), b"");
        assert_eq!(py_strip(b""), b"");
    }

    #[test]
    fn vary_extends_the_first_value() {
        let mut headers = HeaderMap::new();
        add_vary(&mut headers, "Accept-Encoding", true);
        assert_eq!(headers["vary"], "Accept-Encoding");
        headers.append(http::header::VARY, HeaderValue::from_static("Cookie"));
        let mut first_only = headers.clone();
        add_vary(&mut headers, "Origin", true);
        assert_eq!(
            headers.get_all("vary").iter().collect::<Vec<_>>(),
            ["Accept-Encoding, Cookie, Origin"]
        );
        add_vary(&mut first_only, "Origin", false);
        assert_eq!(
            first_only.get_all("vary").iter().collect::<Vec<_>>(),
            ["Accept-Encoding, Origin"]
        );
    }
}
