//! Prometheus metrics of one engine, served by Rust on a port of their own (`--metrics-port`).
//!
//! Counting costs the request path a few atomics: the gauges are atomics, and a labelled
//! counter or histogram is found in its family under a read lock (shared by all threads; the
//! write lock is taken only the first time a label set is seen). Label values are bounded: the
//! route is the mirror's path template (`/items/{item_id}`) or [`UNMATCHED`], the method one of
//! the standard ones or `OTHER`, the tier one of three words. The text is the `prometheus-client`
//! crate's (OpenMetrics text format), answered on `GET /metrics`.

use std::borrow::Cow;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// The route label of a request no route of the app's mirror matched (a 404, a redirect, a
/// request refused before routing): never the raw path, so the label set stays bounded.
pub const UNMATCHED: &str = "<unmatched>";

/// The `content-type` of the exposition.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Request durations' bucket bounds, in seconds (the Prometheus clients' defaults).
const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Who answered a request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Tier {
    /// The native tier (FastAPI's handler or a flat plan, without the ASGI stack).
    Native,
    /// The ASGI tier (the whole app).
    Asgi,
    /// Rust alone, before any Python ran: a refused head, a 503 over the concurrency limit, a
    /// 413, an answer of a middleware the engine runs (a CORS preflight).
    #[default]
    Rust,
}

impl Tier {
    fn label(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Asgi => "asgi",
            Self::Rust => "rust",
        }
    }
}

/// What the request's handler found out about it: its route template and tier.
#[derive(Debug, Default)]
pub struct Note {
    pub route: Option<Arc<str>>,
    pub tier: Tier,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: Arc<str>,
    method: &'static str,
    status: u16,
    tier: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DurationLabels {
    route: Arc<str>,
    method: &'static str,
    tier: &'static str,
}

fn new_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// One engine's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Family<DurationLabels, Histogram, fn() -> Histogram>,
    in_flight: Gauge,
    connections: Gauge,
    websockets: Gauge,
    unmatched: Arc<str>,
}

impl Metrics {
    /// The metrics of one process; `worker` (a worker's index) labels every sample.
    pub fn new(worker: Option<String>) -> Self {
        let labels = worker.map(|w| (Cow::Borrowed("worker"), Cow::Owned(w)));
        let mut registry = Registry::with_prefix_and_labels("fastrapi", labels.into_iter());
        let requests = Family::<RequestLabels, Counter>::default();
        let duration = Family::<DurationLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            new_histogram,
        );
        let (in_flight, connections, websockets) =
            (Gauge::default(), Gauge::default(), Gauge::default());
        registry.register(
            "requests",
            "HTTP requests and websocket handshakes answered, by route template, method, status and tier",
            requests.clone(),
        );
        registry.register_with_unit(
            "request_duration",
            "Time from a request's head to the end of its response, by route template, method and tier",
            Unit::Seconds,
            duration.clone(),
        );
        registry.register(
            "requests_in_flight",
            "Requests being answered",
            in_flight.clone(),
        );
        registry.register(
            "connections_open",
            "Client connections open",
            connections.clone(),
        );
        registry.register(
            "websockets_open",
            "Websocket connections open",
            websockets.clone(),
        );
        Self {
            registry,
            requests,
            duration,
            in_flight,
            connections,
            websockets,
            unmatched: Arc::from(UNMATCHED),
        }
    }

    /// Counts a response started, and returns what observes its duration when dropped (with
    /// the end of its body).
    pub fn answered(
        self: &Arc<Self>,
        started: Instant,
        method: &Method,
        status: StatusCode,
        note: Note,
    ) -> Timing {
        let route = note.route.unwrap_or_else(|| self.unmatched.clone());
        let (method, tier) = (method_label(method), note.tier.label());
        self.requests
            .get_or_create(&RequestLabels {
                route: route.clone(),
                method,
                status: status.as_u16(),
                tier,
            })
            .inc();
        Timing {
            metrics: self.clone(),
            started,
            labels: DurationLabels {
                route,
                method,
                tier,
            },
        }
    }

    /// The exposition text.
    fn render(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::with_capacity(4096);
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// A request's duration, observed when dropped (its response body is done).
pub struct Timing {
    metrics: Arc<Metrics>,
    started: Instant,
    labels: DurationLabels,
}

impl Drop for Timing {
    fn drop(&mut self) {
        let seconds = self.started.elapsed().as_secs_f64();
        self.metrics
            .duration
            .get_or_create(&self.labels)
            .observe(seconds);
    }
}

/// Which gauge a [`Held`] holds up.
#[derive(Clone, Copy)]
pub enum Gauged {
    InFlight,
    Connection,
    Websocket,
}

/// One unit of a gauge (a request in flight, an open connection or websocket) while alive.
pub struct Held(Option<(Arc<Metrics>, Gauged)>);

impl Held {
    pub fn new(metrics: Option<&Arc<Metrics>>, which: Gauged) -> Self {
        Self(metrics.map(|m| {
            m.gauge(which).inc();
            (m.clone(), which)
        }))
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some((metrics, which)) = self.0.take() {
            metrics.gauge(which).dec();
        }
    }
}

impl Metrics {
    fn gauge(&self, which: Gauged) -> &Gauge {
        match which {
            Gauged::InFlight => &self.in_flight,
            Gauged::Connection => &self.connections,
            Gauged::Websocket => &self.websockets,
        }
    }
}

/// A bounded method label: the standard methods, else `OTHER`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "OTHER",
    }
}

/// Answers scrapes on `listener` (already bound and non-blocking) until the runtime stops:
/// `GET /metrics` (or `HEAD`) gets the exposition, any other path 404.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // out of descriptors or similar: try again a moment later
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let metrics = metrics.clone();
        let service = service_fn(move |req: Request<Incoming>| {
            let response = scrape(&req, &metrics);
            async move { Ok::<_, std::convert::Infallible>(response) }
        });
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn scrape(req: &Request<Incoming>, metrics: &Metrics) -> Response<Full<Bytes>> {
    let plain = |status: StatusCode, text: &'static str| {
        let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
        *response.status_mut() = status;
        response
    };
    if req.uri().path() != "/metrics" {
        return plain(StatusCode::NOT_FOUND, "Not Found\n");
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n");
    }
    match metrics.render() {
        Ok(text) => {
            let mut response = Response::new(Full::new(Bytes::from(text)));
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static(CONTENT_TYPE),
            );
            response
        }
        Err(_) => plain(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_render_with_bounded_labels() {
        let metrics = Arc::new(Metrics::new(Some("3".to_owned())));
        let note = |route: Option<&str>, tier| Note {
            route: route.map(Arc::from),
            tier,
        };
        let started = Instant::now();
        for _ in 0..2 {
            drop(metrics.answered(
                started,
                &Method::GET,
                StatusCode::OK,
                note(Some("/items/{id}"), Tier::Native),
            ));
        }
        let odd = Method::from_bytes(b"BREW").expect("a token");
        drop(metrics.answered(started, &odd, StatusCode::NOT_FOUND, note(None, Tier::Asgi)));
        let held = Held::new(Some(&metrics), Gauged::Connection);
        let text = metrics.render().expect("renders");
        assert!(text.contains(
            "fastrapi_requests_total{worker=\"3\",route=\"/items/{id}\",method=\"GET\",status=\"200\",tier=\"native\"} 2"
        ), "{text}");
        assert!(
            text.contains("route=\"<unmatched>\",method=\"OTHER\",status=\"404\",tier=\"asgi\"} 1")
        );
        assert!(text.contains("fastrapi_connections_open{worker=\"3\"} 1"));
        drop(held);
        assert!(metrics
            .render()
            .expect("renders")
            .contains("fastrapi_connections_open{worker=\"3\"} 0"));
    }
}
