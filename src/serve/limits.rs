//! Connection limits shared by both servers: a cap on open connections and an idle timeout
//! on every connection's bytes.
//!
//! `LimitAcceptor` runs first on each accepted TCP stream, before the TLS handshake. It
//! takes a slot from the server's semaphore without waiting; with none left the stream is
//! dropped at once (the peer sees the connection closed), so a flood of connections costs
//! an accept and a close each, not a TLS session and buffers. The slot is held by the
//! `Guarded` stream and returns when the connection ends, whichever way.
//!
//! `Guarded` also closes a connection on which no byte has moved in either direction for
//! the idle timeout. hyper's own header-read timeout covers a slow HTTP/1.1 header; this
//! covers what it does not: a connection that never sends a request (hyper-util's
//! version sniffing has no timeout), an idle HTTP/2 connection, and a peer that stops
//! reading our response. The idle clock is "last byte read or written", checked only when
//! a read or write would wait, so the hot path costs one clock read per I/O call.

use std::future::{Ready, ready};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum_server::accept::Accept;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// Takes a connection slot (or refuses) and wraps the stream in a `Guarded`.
#[derive(Clone, Debug)]
pub struct LimitAcceptor {
    slots: Arc<Semaphore>,
    idle: Duration,
}

impl LimitAcceptor {
    /// At most `max_connections` open at once (at least 1), each closed after `idle`
    /// without traffic (at least 1 s).
    pub fn new(max_connections: usize, idle: Duration) -> Self {
        let max = max_connections.clamp(1, Semaphore::MAX_PERMITS);
        Self { slots: Arc::new(Semaphore::new(max)), idle: idle.max(Duration::from_secs(1)) }
    }
}

impl<S> Accept<TcpStream, S> for LimitAcceptor {
    type Stream = Guarded<TcpStream>;
    type Service = S;
    type Future = Ready<io::Result<(Self::Stream, S)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let Ok(permit) = self.slots.clone().try_acquire_owned() else {
            // Debug, not warn: a flood would otherwise fill the log one line per connection.
            tracing::debug!("connection refused: the server's connection cap is reached");
            return ready(Err(io::Error::other("connection cap reached")));
        };
        // TCP_NODELAY: small JSON-RPC responses must not wait for Nagle + delayed ACK (~40 ms).
        if let Err(e) = stream.set_nodelay(true) {
            return ready(Err(e));
        }
        ready(Ok((Guarded::new(stream, permit, self.idle), service)))
    }
}

/// A stream that holds its connection slot and times out when idle.
pub struct Guarded<T> {
    inner: T,
    _slot: OwnedSemaphorePermit,
    idle: Duration,
    last_activity: Instant,
    /// Armed lazily, the first time an I/O call would wait.
    timer: Option<Pin<Box<Sleep>>>,
}

impl<T> Guarded<T> {
    fn new(inner: T, slot: OwnedSemaphorePermit, idle: Duration) -> Self {
        Self { inner, _slot: slot, idle, last_activity: Instant::now(), timer: None }
    }

    fn touch(&mut self) {
        self.last_activity = Instant::now();
    }

    /// Called when an I/O call would wait: true once the idle deadline has passed; else
    /// the timer is (re)armed for the deadline so this task is woken then.
    fn idle_expired(&mut self, cx: &mut Context<'_>) -> bool {
        let deadline = self.last_activity + self.idle;
        if Instant::now() >= deadline {
            return true;
        }
        let timer = self.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        timer.as_mut().poll(cx).is_ready()
    }

    fn idle_error(&self) -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, format!("no traffic for {} s: connection closed", self.idle.as_secs()))
    }

    /// After a write attempt: bytes written count as traffic; a write that would wait past
    /// the idle deadline ends the connection.
    fn wrote(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        match r {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.touch();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Pending if self.idle_expired(cx) => Poll::Ready(Err(self.idle_error())),
            other => other,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Guarded<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.touch();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending if self.idle_expired(cx) => Poll::Ready(Err(self.idle_error())),
            other => other,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Guarded<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    fn guarded(idle: Duration) -> (Guarded<tokio::io::DuplexStream>, tokio::io::DuplexStream, Arc<Semaphore>) {
        let slots = Arc::new(Semaphore::new(1));
        let (a, b) = duplex(64);
        let permit = slots.clone().try_acquire_owned().unwrap();
        (Guarded::new(a, permit, idle), b, slots)
    }

    /// Paused time: the idle deadline counts from the last byte either way, and the slot is
    /// returned when the stream is dropped.
    #[tokio::test(start_paused = true)]
    async fn a_stream_times_out_only_after_idle_and_frees_its_slot() {
        let (mut g, mut peer, slots) = guarded(Duration::from_secs(60));
        assert_eq!(slots.available_permits(), 0);
        tokio::time::advance(Duration::from_secs(50)).await;
        peer.write_all(b"x").await.unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(g.read(&mut buf).await.unwrap(), 1, "a byte within the timeout is read");
        let start = Instant::now();
        let err = g.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(start.elapsed(), Duration::from_secs(60), "60 s after the last byte, not after the start");
        drop(g);
        assert_eq!(slots.available_permits(), 1, "the slot returns with the connection");
    }

    #[tokio::test(start_paused = true)]
    async fn writing_counts_as_activity() {
        let (mut g, mut peer, _slots) = guarded(Duration::from_secs(10));
        for _ in 0..5 {
            tokio::time::advance(Duration::from_secs(8)).await;
            g.write_all(b"y").await.unwrap();
            let mut b = [0u8; 1];
            peer.read_exact(&mut b).await.unwrap();
        }
        let start = Instant::now();
        let mut buf = [0u8; 1];
        assert_eq!(g.read(&mut buf).await.unwrap_err().kind(), io::ErrorKind::TimedOut);
        assert_eq!(start.elapsed(), Duration::from_secs(10));
    }
}
