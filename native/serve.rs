//! Accepting connections and serving HTTP/1.1 on them with hyper, until told to stop.

use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::asgi;
use crate::body::ResBody;
use crate::router::MirrorSlot;
use crate::shared::EngineShared;
use crate::site::{ConnInfo, Site};

/// One accepted connection as its requests see it: its addresses and site, and its listener's
/// route mirror.
struct Connection {
    info: ConnInfo,
    mirror: Arc<MirrorSlot>,
}

pub async fn accept_loop(
    listener: TcpListener,
    shared: Arc<EngineShared>,
    site: Arc<Site>,
    mirror: Arc<MirrorSlot>,
    mut stop: watch::Receiver<Option<Duration>>,
) {
    // Every connection task holds a clone of `alive`; when all are gone, `recv()` ends.
    let (alive, mut all_closed) = mpsc::channel::<()>(1);
    let (closing_tx, closing) = watch::channel(false);
    let grace = loop {
        tokio::select! {
            biased;
            changed = stop.changed() => {
                break if changed.is_ok() { stop.borrow().unwrap_or_default() } else { Duration::ZERO };
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let local = match stream.local_addr() {
                        Ok(local) => local,
                        Err(_) => continue,
                    };
                    let conn = Arc::new(Connection {
                        info: ConnInfo { peer, local, site: site.clone() },
                        mirror: mirror.clone(),
                    });
                    let shared = shared.clone();
                    let service = service_fn(move |req| dispatch(req, shared.clone(), conn.clone()));
                    let connection = http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(Duration::from_secs(30))
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades();
                    let alive = alive.clone();
                    let mut closing = closing.clone();
                    tokio::spawn(async move {
                        let _alive = alive;
                        tokio::pin!(connection);
                        tokio::select! {
                            _ = connection.as_mut() => {}
                            _ = async { let _ = closing.wait_for(|c| *c).await; } => {
                                connection.as_mut().graceful_shutdown();
                                let _ = connection.await;
                            }
                        }
                    });
                }
                // Out of file descriptors or similar: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    };
    drop(listener);
    drop(alive);
    closing_tx.send_replace(true);
    let _ = tokio::time::timeout(grace, all_closed.recv()).await;
}

/// One request. An `Err` makes hyper close the connection without answering (the app sent an
/// invalid response start, which uvicorn answers the same way).
async fn dispatch(
    req: Request<Incoming>,
    shared: Arc<EngineShared>,
    conn: Arc<Connection>,
) -> Result<Response<ResBody>, asgi::http::Aborted> {
    if asgi::framing::ambiguous_framing(req.headers()) {
        return Ok(asgi::http::invalid_request());
    }
    if asgi::ws::is_upgrade(&req) {
        return Ok(asgi::ws::handle(req, shared, &conn.info).await);
    }
    asgi::http::handle(req, shared, &conn.info, &conn.mirror).await
}
