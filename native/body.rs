//! The response body handed to hyper: one buffer, or a stream of chunks fed from Python.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

/// Something dropped together with the body (e.g. to notice a client that went away).
pub type DropGuard = Box<dyn Send + Sync>;

pub enum ResBody {
    /// The whole body at once. `exact` reports its length to hyper, which then frames with
    /// `content-length`; otherwise hyper uses chunked encoding, as uvicorn does when the app
    /// gives no `content-length`.
    Full { data: Option<Bytes>, exact: bool },
    /// Chunks sent by the app with `more_body=True`. An `Err` aborts the connection.
    Stream {
        rx: mpsc::Receiver<Result<Bytes, io::Error>>,
        _guard: Option<DropGuard>,
    },
}

impl ResBody {
    pub fn empty() -> Self {
        ResBody::Full {
            data: None,
            exact: true,
        }
    }

    pub fn full(data: Bytes, exact: bool) -> Self {
        ResBody::Full {
            data: Some(data),
            exact,
        }
    }
}

impl Body for ResBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            ResBody::Full { data, .. } => Poll::Ready(
                data.take()
                    .filter(|b| !b.is_empty())
                    .map(|b| Ok(Frame::data(b))),
            ),
            ResBody::Stream { rx, .. } => rx
                .poll_recv(cx)
                .map(|item| item.map(|chunk| chunk.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResBody::Full { data, exact } => *exact && data.as_ref().is_none_or(Bytes::is_empty),
            ResBody::Stream { .. } => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResBody::Full { data, exact: true } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |b| b.len() as u64))
            }
            _ => SizeHint::default(),
        }
    }
}
