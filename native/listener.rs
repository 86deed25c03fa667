//! What a listener accepts on: a TCP socket (bound by the engine, or inherited with `--fd`) or
//! a unix domain socket (`--uds`, or an inherited one), and the connections it yields (TLS over
//! either once its handshake is done).

use std::io;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

use crate::site::Local;

/// A listening socket.
pub enum Listener {
    Tcp(TcpListener),
    /// With the path it is bound to (the scope's `server`).
    Unix(UnixListener, Arc<str>),
}

/// One accepted connection.
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
    /// Either of them once its TLS handshake is done (`native/tls.rs`).
    Tls(Box<tokio_rustls::server::TlsStream<Stream>>),
}

impl Listener {
    /// Takes over the listening socket `fd` (inherited, or bound by Python for `--uds`), whatever
    /// its family, and (re)starts listening with `backlog`, as asyncio's `create_server` does.
    pub fn from_fd(fd: RawFd, backlog: i32) -> io::Result<Self> {
        // SAFETY: Python hands over a descriptor it owns no longer (a `dup` or a detached socket).
        let socket = unsafe { socket2::Socket::from_raw_fd(fd) };
        let address = socket.local_addr()?;
        socket.listen(backlog.max(1))?;
        socket.set_nonblocking(true)?;
        if address.as_socket().is_some() {
            return Ok(Self::Tcp(TcpListener::from_std(socket.into())?));
        }
        if address.is_unix() {
            let path = address
                .as_pathname()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            let listener =
                std::os::unix::net::UnixListener::from(std::os::fd::OwnedFd::from(socket));
            return Ok(Self::Unix(UnixListener::from_std(listener)?, path.into()));
        }
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the file descriptor is not a TCP or unix domain stream socket",
        ))
    }

    /// The bound address: `(host, port)` for TCP, `(path, 0)` for a unix socket.
    pub fn address(&self) -> io::Result<(String, u16)> {
        match self {
            Self::Tcp(listener) => {
                let addr = listener.local_addr()?;
                Ok((addr.ip().to_string(), addr.port()))
            }
            Self::Unix(_, path) => Ok((path.to_string(), 0)),
        }
    }

    /// The next connection, its peer (`None` over a unix socket: uvicorn's scope then has no
    /// `client`) and its local address (the scope's `server`).
    pub async fn accept(&self) -> io::Result<(Stream, Option<SocketAddr>, Local)> {
        match self {
            Self::Tcp(listener) => {
                let (stream, peer) = listener.accept().await?;
                let _ = stream.set_nodelay(true);
                let local = stream.local_addr()?;
                Ok((Stream::Tcp(stream), Some(peer), Local::Inet(local)))
            }
            Self::Unix(listener, path) => {
                let (stream, _) = listener.accept().await?;
                Ok((Stream::Unix(stream), None, Local::Unix(path.clone())))
            }
        }
    }
}

impl Stream {
    pub fn is_write_vectored(&self) -> bool {
        match self {
            Self::Tcp(s) => s.is_write_vectored(),
            Self::Unix(s) => s.is_write_vectored(),
            Self::Tls(s) => s.is_write_vectored(),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Self::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Self::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        Stream::is_write_vectored(self)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_flush(cx),
            Self::Unix(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Self::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
