//! The ASGI tier: any ASGI 3 application served through Rust-built scopes and Rust
//! `receive`/`send` callables.

pub mod http;
pub mod ws;

use pyo3::prelude::*;

pyo3::create_exception!(
    _native,
    ClientDisconnected,
    pyo3::exceptions::PyOSError,
    "The client closed the connection; raised by `send` on a websocket, as uvicorn does."
);

pub fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<http::HTTPProtocol>()?;
    m.add_class::<ws::WebSocketProtocol>()?;
    m.add(
        "ClientDisconnected",
        m.py().get_type::<ClientDisconnected>(),
    )?;
    Ok(())
}
