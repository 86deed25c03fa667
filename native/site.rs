//! One listener's settings (`Site`) and the addresses of a connection accepted on it.

use std::net::SocketAddr;

use pyo3::prelude::*;

/// One listener's settings: who handles its requests and how scopes are filled.
pub struct Site {
    /// The Python object whose `spawn(protocol)` runs the app (see `serve/dispatch.py`'s `Dispatcher`).
    pub handler: Py<PyAny>,
    pub root_path: String,
    pub scheme: &'static str,
}

/// Addresses of one accepted connection, and the site it was accepted for.
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub site: std::sync::Arc<Site>,
}
