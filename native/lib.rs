//! `fastrapi_compat._native`: the Rust engine behind fastrapi-compat.
//!
//! This file only declares modules and registers their Python classes.

#[macro_use]
mod io_forward;

mod asgi;
mod awaitable;
mod backoff;
mod body;
mod conn_io;
mod defaults;
mod engine;
mod errors;
mod head;
mod inbox;
mod json;
mod listener;
mod metrics;
mod middleware;
mod names;
mod native_tier;
mod proxy;
mod request;
mod router;
mod serve;
mod shared;
mod site;
mod tls;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add(
        "build_profile",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
    )?;
    awaitable::init_pymodule(m)?;
    engine::init_pymodule(m)?;
    asgi::init_pymodule(m)?;
    router::init_pymodule(m)?;
    json::init_pymodule(m)?;
    middleware::init_pymodule(m)?;
    Ok(())
}
