//! The errors the engine raises to Python: their types, their messages, and the one conversion.
//!
//! Code inside the crate returns an [`EngineError`] and lets `?` turn it into a `PyErr` where a
//! `PyResult` is returned. Each variant's Python exception type and message text are fixed here:
//! the ASGI ones are uvicorn's words, byte for byte (tests compare them with uvicorn's).

use std::fmt;
use std::io;

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::PyErr;

pyo3::create_exception!(
    _native,
    ClientDisconnected,
    pyo3::exceptions::PyOSError,
    "The client closed the connection; raised by `send` on a websocket, as uvicorn does."
);

/// An error raised to Python. The comment on each group names the exception type it becomes.
#[derive(Debug)]
pub enum EngineError {
    // `RuntimeError`: the app broke the ASGI protocol (uvicorn's messages).
    /// A message dict without `type`.
    MessageWithoutType,
    /// A status code that is not a valid HTTP status (or, for a websocket denial, not 100-599).
    InvalidStatus(u16),
    /// A response header name the app sent that is not a valid header name.
    InvalidHeaderName,
    /// A response header value the app sent that is not a valid header value.
    InvalidHeaderValue,
    /// `websocket.accept` with a subprotocol that is not a valid header value.
    InvalidSubprotocol,
    /// `http.response.start` without `status`.
    StartWithoutStatus,
    /// `websocket.http.response.start` without `status`.
    DenialWithoutStatus,
    /// An `http` message (its type) after the response was complete.
    AfterResponse(String),
    /// An `http` message (its type) where `http.response.start` was expected.
    ExpectedResponseStart(String),
    /// An `http` message (its type) where `http.response.body` was expected.
    ExpectedResponseBody(String),
    /// A `websocket` message (its type) before the handshake was answered.
    ExpectedHandshake(String),
    /// A `websocket` message (its type) in the middle of a denial response.
    ExpectedDenialBody(String),
    /// A `websocket` message (its type) on an open websocket that is neither send nor close.
    ExpectedSendOrClose(String),
    /// A `websocket` message (its type) after the app closed the websocket.
    AfterClose(String),

    // `ClientDisconnected` (an `OSError`), without arguments.
    /// `send` on a websocket whose client went away.
    ClientDisconnected,

    // `RuntimeError`, `ValueError` and `OSError`: the `Engine` class.
    /// The tokio runtime could not be built (`RuntimeError`).
    Runtime(io::Error),
    /// `set_mirror` with an id no listener has (`ValueError`).
    NoListener(u64),
    /// `serve_metrics` called a second time (`RuntimeError`).
    MetricsServed,
    /// `shutdown` with a negative, infinite or NaN timeout (`ValueError`).
    InvalidTimeout,
    /// The host to listen on did not resolve to an address (`OSError`).
    Unresolved {
        host: String,
        cause: Option<io::Error>,
    },
    /// A socket call failed: raised as PyO3 raises an `io::Error` (the `OSError` subclass of
    /// its kind).
    Io(io::Error),

    // `ValueError`: the route mirror and middleware configuration handed over by Python.
    /// A route pattern Rust's `regex` cannot compile.
    RoutePattern {
        index: usize,
        pattern: String,
        error: regex::Error,
    },
    /// A middleware option missing from its options dict.
    MissingOption(String),
    /// A middleware option's value is none of the ones the layer knows: (option, value).
    OptionValue(String, String),
    /// A middleware kind the engine does not run.
    UnknownMiddleware(String),
    /// More than one session middleware.
    TwoSessions,
    /// A header name given by Python that is not a valid header name.
    HeaderName(String),
    /// A header value given by Python that is not a valid header value.
    HeaderValue(String),
    /// Text that `str.encode("latin-1")` would refuse.
    NotLatin1(String),
    /// `CORSMiddleware`'s `allow_origin_regex` that Rust's `regex` cannot compile.
    OriginRegex(regex::Error),
    /// A signed session cookie that is not a valid header value.
    SessionCookie,
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MessageWithoutType => f.write_str("ASGI message without 'type'"),
            Self::InvalidStatus(status) => {
                write!(f, "Invalid HTTP status code '{status}' in response.")
            }
            Self::InvalidHeaderName => f.write_str("Invalid HTTP header name."),
            Self::InvalidHeaderValue => f.write_str("Invalid HTTP header value."),
            Self::InvalidSubprotocol => f.write_str("Invalid subprotocol."),
            Self::StartWithoutStatus => f.write_str("http.response.start without 'status'"),
            Self::DenialWithoutStatus => f.write_str("missing 'status'"),
            Self::AfterResponse(kind) => write!(
                f,
                "Unexpected ASGI message '{kind}' sent, after response already completed."
            ),
            Self::ExpectedResponseStart(kind) => write!(
                f,
                "Expected ASGI message 'http.response.start', but got '{kind}'."
            ),
            Self::ExpectedResponseBody(kind) => write!(
                f,
                "Expected ASGI message 'http.response.body', but got '{kind}'."
            ),
            Self::ExpectedHandshake(kind) => write!(
                f,
                "Expected ASGI message 'websocket.accept', 'websocket.close' or 'websocket.http.response.start' but got '{kind}'."
            ),
            Self::ExpectedDenialBody(kind) => write!(
                f,
                "Expected ASGI message 'websocket.http.response.body' but got '{kind}'."
            ),
            Self::ExpectedSendOrClose(kind) => write!(
                f,
                "Expected ASGI message 'websocket.send' or 'websocket.close', but got '{kind}'."
            ),
            Self::AfterClose(kind) => write!(
                f,
                "Unexpected ASGI message '{kind}', after sending 'websocket.close'."
            ),
            // Raised without a message; this text is for Rust-side display only.
            Self::ClientDisconnected => f.write_str("the client closed the connection"),
            Self::Runtime(error) => write!(f, "cannot start the tokio runtime: {error}"),
            Self::NoListener(id) => write!(f, "no listener with id {id}"),
            Self::MetricsServed => write!(f, "the engine already serves its metrics"),
            Self::InvalidTimeout => f.write_str("timeout must be a non-negative number"),
            Self::Unresolved {
                host,
                cause: Some(cause),
            } => write!(f, "cannot resolve host {host:?}: {cause}"),
            Self::Unresolved { host, cause: None } => write!(f, "cannot resolve host {host:?}"),
            Self::Io(error) => error.fmt(f),
            Self::RoutePattern {
                index,
                pattern,
                error,
            } => write!(f, "route {index} pattern {pattern:?}: {error}"),
            Self::MissingOption(key) => write!(f, "middleware option {key:?} missing"),
            Self::OptionValue(key, value) => {
                write!(f, "middleware option {key:?}: unknown value {value:?}")
            }
            Self::UnknownMiddleware(kind) => write!(f, "unknown middleware kind {kind:?}"),
            Self::TwoSessions => f.write_str("two session middleware"),
            Self::HeaderName(name) => write!(f, "invalid header name {name:?}"),
            Self::HeaderValue(value) => write!(f, "invalid header value {value:?}"),
            Self::NotLatin1(text) => write!(f, "{text:?} is not latin-1 text"),
            Self::OriginRegex(error) => error.fmt(f),
            Self::SessionCookie => f.write_str("invalid session cookie"),
        }
    }
}

impl std::error::Error for EngineError {}

impl From<io::Error> for EngineError {
    fn from(error: io::Error) -> Self {
        Self::Io(error)
    }
}

/// The conversion at the FFI edge: each error becomes its Python exception, with its message.
impl From<EngineError> for PyErr {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::ClientDisconnected => ClientDisconnected::new_err(()),
            EngineError::Io(error) => error.into(),
            EngineError::Unresolved { .. } => PyOSError::new_err(error.to_string()),
            EngineError::NoListener(_)
            | EngineError::InvalidTimeout
            | EngineError::RoutePattern { .. }
            | EngineError::MissingOption(_)
            | EngineError::OptionValue(..)
            | EngineError::UnknownMiddleware(_)
            | EngineError::TwoSessions
            | EngineError::HeaderName(_)
            | EngineError::HeaderValue(_)
            | EngineError::NotLatin1(_)
            | EngineError::OriginRegex(_)
            | EngineError::SessionCookie => PyValueError::new_err(error.to_string()),
            EngineError::MessageWithoutType
            | EngineError::InvalidStatus(_)
            | EngineError::InvalidHeaderName
            | EngineError::InvalidHeaderValue
            | EngineError::InvalidSubprotocol
            | EngineError::StartWithoutStatus
            | EngineError::DenialWithoutStatus
            | EngineError::AfterResponse(_)
            | EngineError::ExpectedResponseStart(_)
            | EngineError::ExpectedResponseBody(_)
            | EngineError::ExpectedHandshake(_)
            | EngineError::ExpectedDenialBody(_)
            | EngineError::ExpectedSendOrClose(_)
            | EngineError::AfterClose(_)
            | EngineError::MetricsServed
            | EngineError::Runtime(_) => PyRuntimeError::new_err(error.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_uvicorns() {
        let cases = [
            (EngineError::MessageWithoutType, "ASGI message without 'type'"),
            (
                EngineError::InvalidStatus(99),
                "Invalid HTTP status code '99' in response.",
            ),
            (EngineError::InvalidHeaderName, "Invalid HTTP header name."),
            (EngineError::InvalidHeaderValue, "Invalid HTTP header value."),
            (
                EngineError::AfterResponse("http.response.start".into()),
                "Unexpected ASGI message 'http.response.start' sent, after response already completed.",
            ),
            (
                EngineError::ExpectedResponseBody("http.response.start".into()),
                "Expected ASGI message 'http.response.body', but got 'http.response.start'.",
            ),
            (
                EngineError::ExpectedDenialBody("websocket.send".into()),
                "Expected ASGI message 'websocket.http.response.body' but got 'websocket.send'.",
            ),
            (
                EngineError::AfterClose("websocket.send".into()),
                "Unexpected ASGI message 'websocket.send', after sending 'websocket.close'.",
            ),
        ];
        for (error, message) in cases {
            assert_eq!(error.to_string(), message);
        }
    }

    #[test]
    fn python_texts_keep_rusts_debug_quoting() {
        assert_eq!(
            EngineError::MissingOption("path".into()).to_string(),
            "middleware option \"path\" missing"
        );
        assert_eq!(
            EngineError::Unresolved {
                host: "nowhere".into(),
                cause: None
            }
            .to_string(),
            "cannot resolve host \"nowhere\""
        );
    }
}
