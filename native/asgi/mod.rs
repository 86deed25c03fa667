//! The ASGI tier: any ASGI 3 application served through Rust-built scopes and Rust
//! `receive`/`send` callables.

pub mod canned;
pub mod deflate;
mod finished;
pub mod framing;
mod handshake;
pub mod http;
pub mod messages;
pub mod ws;
pub mod ws_inflate;

use pyo3::prelude::*;

use crate::errors::ClientDisconnected;

pub fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<http::HTTPProtocol>()?;
    m.add_class::<ws::WebSocketProtocol>()?;
    m.add(
        "ClientDisconnected",
        m.py().get_type::<ClientDisconnected>(),
    )?;
    Ok(())
}
