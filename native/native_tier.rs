//! The native tier's driver: the route mirror and the app's middleware around one request.
//!
//! Which native route a request reaches (through its listener's mirror, after the middleware
//! the engine runs), and those middleware's response phases around what the route answers.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::middleware::{Encoders, Flow, Pending, Session, Stack};
use crate::request::RequestHead;
use crate::router::{MirrorSlot, RouteMirror};

/// The native route a request reaches: its plan id and raw path parameters.
pub type NativeMatch = (u32, Vec<(String, String)>);

/// Where the mirror sends a request.
pub enum Routed {
    /// A native route, with the app's middleware it passed (if it has any).
    Native(NativeMatch, Option<Layers>),
    Asgi,
    /// A middleware answered (a CORS preflight, an untrusted host, an HTTPS redirect); whether
    /// its headers start with the listener's default headers already.
    Answered(StatusCode, HeaderMap, Bytes, bool),
}

/// Asks the listener's route mirror (if any) which native route the request reaches, after the
/// app's middleware (when the engine runs them), and the path template of the route it reaches
/// (for the metrics; `None`: no route of the mirror, or `templates` is false and finding it
/// would take a lookup of its own). The route path is the percent-decoded
/// path, as Starlette's `get_route_path` gives it for the scopes this engine builds (`path` =
/// root path + request path).
pub fn native_match(
    head: &RequestHead,
    mirror: &MirrorSlot,
    templates: bool,
) -> (Routed, Template) {
    match mirror.load().as_ref() {
        Some(mirror) => route(head, mirror, templates),
        None => (Routed::Asgi, None),
    }
}

/// A route's path template (`/items/{item_id}`).
pub type Template = Option<Arc<str>>;

/// [`native_match`] through a given mirror.
pub fn route(head: &RequestHead, mirror: &RouteMirror, templates: bool) -> (Routed, Template) {
    // a lookup made for the template only (the request does not go to a native route)
    let template_only = || templates.then(|| match_with(head, mirror).1).flatten();
    let Some(stack) = mirror.stack() else {
        return match match_with(head, mirror) {
            (Some(found), template) => (Routed::Native(found, None), template),
            (None, template) => (Routed::Asgi, template),
        };
    };
    match stack.on_request(head) {
        // the ASGI tier's cost dwarfs a second lookup, made for the template only
        Flow::Punt => (Routed::Asgi, template_only()),
        Flow::Answer(mut answer) => {
            let body = stack
                .complete(
                    None,
                    &answer.pending,
                    None,
                    answer.status,
                    &mut answer.headers,
                    answer.body,
                )
                .unwrap_or_default();
            let template = template_only();
            (
                Routed::Answered(answer.status, answer.headers, body, answer.seeded),
                template,
            )
        }
        Flow::Next(pending) => match match_with(head, mirror) {
            (Some(found), template) => (
                Routed::Native(found, Some(Layers::new(stack, pending))),
                template,
            ),
            (None, template) => (Routed::Asgi, template),
        },
    }
}

fn match_with(head: &RequestHead, mirror: &RouteMirror) -> (Option<NativeMatch>, Template) {
    if !head.raw_path.starts_with(b"/") {
        return (None, None);
    }
    let path = percent_encoding::percent_decode(&head.raw_path).decode_utf8_lossy();
    let (found, template) = mirror.lookup_templated(head.method.as_str(), &path);
    (crate::router::encode(found), template)
}

/// A mirror match as Python sees it: `(plan id, {name: raw value})`.
pub fn match_to_py(
    py: Python<'_>,
    found: Option<NativeMatch>,
) -> PyResult<Option<(u32, Bound<'_, PyDict>)>> {
    let Some((plan, params)) = found else {
        return Ok(None);
    };
    let dict = PyDict::new(py);
    for (name, value) in params {
        dict.set_item(name, value)?;
    }
    Ok(Some((plan, dict)))
}

/// The middleware a native request passed, with what each left for the response.
pub struct Layers {
    stack: Arc<Stack>,
    pending: Vec<Pending>,
    /// Set when Python serves the request natively; until then (and for the ASGI tier, which
    /// runs the app's own middleware) the response phases do not apply.
    armed: bool,
    session: Option<Session>,
    /// What opening the session raised (Starlette's `SessionMiddleware` would have raised it).
    session_error: Option<PyErr>,
}

impl Layers {
    fn new(stack: &Arc<Stack>, pending: Vec<Pending>) -> Self {
        Self {
            stack: stack.clone(),
            pending,
            armed: false,
            session: None,
            session_error: None,
        }
    }

    /// Python serves the request natively: from now on the response phases apply.
    pub fn arm(&mut self) {
        self.armed = true;
    }

    pub fn is_armed(&self) -> bool {
        self.armed
    }

    /// The request's session object (the scope's `session`), opened the first time it is asked
    /// for; what opening raised is kept for [`Layers::take_session_error`].
    pub fn session(&mut self, py: Python<'_>) -> Option<&Py<PyAny>> {
        if self.session.is_none() && self.session_error.is_none() {
            match self.stack.open_session(py, &self.pending) {
                Ok(session) => self.session = session,
                Err(error) => self.session_error = Some(error),
            }
        }
        self.session.as_ref().map(|session| &session.object)
    }

    /// What opening the session raised, if anything (taken once).
    pub fn take_session_error(&mut self) -> Option<PyErr> {
        self.session_error.take()
    }

    /// Keeps the session `old` opened (or failed to open), for layers that replace it.
    pub fn keep_session(&mut self, old: Layers) {
        self.session = old.session;
        self.session_error = old.session_error;
    }

    /// The response phases (innermost first) for a whole response.
    pub fn complete(
        &self,
        py: Python<'_>,
        status: StatusCode,
        headers: &mut HeaderMap,
        body: Bytes,
    ) -> PyResult<Bytes> {
        self.stack.complete(
            Some(py),
            &self.pending,
            self.session.as_ref(),
            status,
            headers,
            body,
        )
    }

    /// The response phases for the start of a response and its first body message; returns the
    /// body to send and, for a streamed body, the encoders its later chunks go through.
    pub fn start(
        &self,
        py: Python<'_>,
        status: StatusCode,
        headers: &mut HeaderMap,
        body: Bytes,
        more: bool,
    ) -> PyResult<(Bytes, Encoders)> {
        self.stack.start(
            Some(py),
            &self.pending,
            self.session.as_ref(),
            status,
            headers,
            body,
            more,
        )
    }
}
