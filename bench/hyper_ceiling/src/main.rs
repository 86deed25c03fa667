//! A bare hyper server, the bench's ceiling: every request gets the bytes the engine answers
//! `GET /plain` with (`date`, `server: uvicorn`, `content-length`, `content-type`, the JSON),
//! from one thread (a current-thread tokio runtime), with nothing else on the path.
//!
//! `hyper-ceiling --host 127.0.0.1 --port 8000`

use std::cell::RefCell;
use std::convert::Infallible;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, DATE, SERVER};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const BODY: &[u8] = br#"{"message":"Hello, World","ok":true}"#;

thread_local! {
    /// The `date` header, formatted once per second (as the engine and uvicorn do).
    static DATE_VALUE: RefCell<(u64, HeaderValue)> =
        const { RefCell::new((u64::MAX, HeaderValue::from_static(""))) };
}

fn date() -> HeaderValue {
    let now = SystemTime::now();
    let second = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    DATE_VALUE.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != second {
            let text = httpdate::fmt_http_date(now);
            *cached = (
                second,
                HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("")),
            );
        }
        cached.1.clone()
    })
}

async fn answer(
    _request: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(Bytes::from_static(BODY)));
    let headers = response.headers_mut();
    headers.insert(DATE, date());
    headers.insert(SERVER, HeaderValue::from_static("uvicorn"));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(BODY.len()));
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

fn parse_args() -> Result<String, String> {
    let (mut host, mut port) = ("127.0.0.1".to_string(), "8000".to_string());
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--host" => host = value,
            "--port" => port = value,
            _ => return Err(format!("unknown option {flag} (known: --host, --port)")),
        }
    }
    Ok(format!("{host}:{port}"))
}

fn main() {
    let address = match parse_args() {
        Ok(address) => address,
        Err(problem) => {
            eprintln!("Error: {problem}");
            std::process::exit(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
    {
        Ok(runtime) => runtime,
        Err(problem) => {
            eprintln!("Error: cannot start tokio: {problem}");
            std::process::exit(1);
        }
    };
    runtime.block_on(async move {
        let listener = match TcpListener::bind(&address).await {
            Ok(listener) => listener,
            Err(problem) => {
                eprintln!("Error: cannot listen on {address}: {problem}");
                std::process::exit(1);
            }
        };
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(answer))
                    .await;
            });
        }
    });
}
