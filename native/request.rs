//! The parts of a request every ASGI scope is built from, gathered on the tokio side.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderMap, Method, Version};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use crate::inbox::Event;
use crate::shared::EngineShared;
use crate::site::{ConnInfo, Local, Site};

pub struct RequestHead {
    pub method: Method,
    pub version: Version,
    pub raw_path: Bytes,
    pub query: Bytes,
    pub headers: HeaderMap,
    /// The peer (`None` over a unix socket).
    pub client: Option<SocketAddr>,
    /// The client a trusted proxy named (`X-Forwarded-For`), replacing `client` in the scope.
    pub forwarded_client: Option<(String, u16)>,
    /// `http`/`https` (`ws`/`wss` for websockets): the listener's, or a trusted proxy's.
    pub scheme: &'static str,
    pub server: Local,
    pub site: std::sync::Arc<Site>,
}

impl RequestHead {
    /// The head of a request whose `parts` hyper handed over (taken: the headers are moved,
    /// not copied).
    pub fn new(parts: http::request::Parts, conn: &ConnInfo, websocket: bool) -> Self {
        let uri = &parts.uri;
        let raw_path = Bytes::copy_from_slice(uri.path().as_bytes());
        let query = uri
            .query()
            .map(|q| Bytes::copy_from_slice(q.as_bytes()))
            .unwrap_or_default();
        let own = match (conn.site.scheme, websocket) {
            ("https", true) => "wss",
            (_, true) => "ws",
            (scheme, false) => scheme,
        };
        let forwarded = conn
            .site
            .proxy
            .as_ref()
            .map(|trusted| trusted.forwarded(conn.peer.map(|p| p.ip()), &parts.headers, websocket))
            .unwrap_or_default();
        Self {
            method: parts.method,
            version: parts.version,
            raw_path,
            query,
            headers: parts.headers,
            client: conn.peer,
            forwarded_client: forwarded.client,
            scheme: forwarded.scheme.unwrap_or(own),
            server: conn.local.clone(),
            site: conn.site.clone(),
        }
    }

    pub fn http_version(&self) -> &'static str {
        match self.version {
            Version::HTTP_10 => "1.0",
            Version::HTTP_2 => "2",
            _ => "1.1",
        }
    }

    /// Fills the scope keys shared by `http` and `websocket` scopes, as uvicorn fills them.
    pub fn fill_scope<'py>(
        &self,
        py: Python<'py>,
        scope: &Bound<'py, PyDict>,
        kind: &str,
        spec_version: &str,
    ) -> PyResult<()> {
        let root_path = self.site.root_path.as_str();
        let asgi = PyDict::new(py);
        asgi.set_item("version", "3.0")?;
        asgi.set_item("spec_version", spec_version)?;
        scope.set_item("type", kind)?;
        scope.set_item("asgi", asgi)?;
        scope.set_item("http_version", self.http_version())?;
        match &self.server {
            Local::Inet(addr) => scope.set_item("server", address(py, addr)?)?,
            Local::Unix(path) => scope.set_item("server", (&**path, py.None()))?,
        }
        match (&self.forwarded_client, &self.client) {
            (Some((host, port)), _) => scope.set_item("client", (host.as_str(), *port))?,
            (None, Some(client)) => scope.set_item("client", address(py, client)?)?,
            (None, None) => scope.set_item("client", py.None())?,
        }
        scope.set_item("scheme", self.scheme)?;
        scope.set_item("root_path", root_path)?;
        let decoded = percent_encoding::percent_decode(&self.raw_path).decode_utf8_lossy();
        let mut path = String::with_capacity(root_path.len() + decoded.len());
        path.push_str(root_path);
        path.push_str(&decoded);
        scope.set_item("path", PyString::new(py, &path))?;
        let mut raw = Vec::with_capacity(root_path.len() + self.raw_path.len());
        raw.extend_from_slice(root_path.as_bytes());
        raw.extend_from_slice(&self.raw_path);
        scope.set_item("raw_path", PyBytes::new(py, &raw))?;
        scope.set_item("query_string", PyBytes::new(py, &self.query))?;
        scope.set_item("headers", self.header_list(py)?)?;
        Ok(())
    }

    fn header_list<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for (name, value) in &self.headers {
            let pair = PyTuple::new(
                py,
                [
                    PyBytes::new(py, name.as_str().as_bytes()),
                    PyBytes::new(py, value.as_bytes()),
                ],
            )?;
            list.append(pair)?;
        }
        Ok(list)
    }
}

/// What uvicorn's access log says of a request, gathered from its head.
pub struct AccessLine {
    pub client: String,
    pub method: String,
    pub path: String,
    pub version: &'static str,
}

impl RequestHead {
    /// The fields of uvicorn's access log line: `client - "METHOD path?query HTTP/v"`.
    pub fn access_line(&self) -> AccessLine {
        let client = match (&self.forwarded_client, &self.client) {
            (Some((host, port)), _) => format!("{host}:{port}"),
            (None, None) => String::new(), // uvicorn's client over a unix socket
            (None, Some(peer)) => {
                let ip = match peer.ip() {
                    std::net::IpAddr::V6(v6) => v6
                        .to_ipv4_mapped()
                        .map_or_else(|| v6.to_string(), |v4| v4.to_string()),
                    ip => ip.to_string(),
                };
                format!("{ip}:{}", peer.port())
            }
        };
        // uvicorn 0.55: the scope's raw_path (root path included) as latin-1, `"` escaped
        let mut path = String::with_capacity(self.site.root_path.len() + self.raw_path.len());
        path.push_str(&self.site.root_path);
        path.extend(self.raw_path.iter().map(|&b| char::from(b)));
        let mut path = path.replace('"', "%22");
        if !self.query.is_empty() {
            path.push('?');
            path.push_str(&String::from_utf8_lossy(&self.query));
        }
        AccessLine {
            client,
            method: self.method.as_str().to_owned(),
            path,
            version: self.http_version(),
        }
    }
}

impl AccessLine {
    /// Hands the line, with the response's status, to the listener handler's `log_access` on
    /// the loop thread (batched with the loop's other events).
    pub fn log(self, engine: &EngineShared, site: std::sync::Arc<Site>, status: u16) {
        engine.inbox.push(Event::Run(Box::new(move |py| {
            site.handler.call_method1(
                py,
                pyo3::intern!(py, "log_access"),
                (self.client, self.method, self.path, self.version, status),
            )?;
            Ok(())
        })));
    }
}

fn address<'py>(py: Python<'py>, addr: &SocketAddr) -> PyResult<Bound<'py, PyTuple>> {
    let ip = match addr.ip() {
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6.to_string(),
        },
        ip @ std::net::IpAddr::V4(_) => ip.to_string(),
    };
    (ip, addr.port()).into_pyobject(py)
}
