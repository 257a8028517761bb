//! [`Activity`]: a connection's I/O that records when bytes last moved, and [`idle`], which
//! resolves once a connection has been quiet for the idle timeout.
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// I/O that stamps every read or write that moves bytes.
pub struct Activity<T> {
    inner: T,
    started: Instant,
    last_ms: Arc<AtomicU64>,
}

impl<T> Activity<T> {
    /// Wraps `inner`; times are milliseconds since `started`.
    pub fn new(inner: T, started: Instant) -> Self {
        Self {
            inner,
            started,
            last_ms: Arc::default(),
        }
    }

    /// The stamp, shared with the idle watchdog.
    pub fn last_activity(&self) -> Arc<AtomicU64> {
        self.last_ms.clone()
    }

    fn touch(&self) {
        self.last_ms
            .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Activity<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        poll
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Activity<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Resolves once no bytes moved for `idle`.
pub async fn idle(last_ms: Arc<AtomicU64>, started: Instant, idle: Duration) {
    let idle_ms = idle.as_millis() as u64;
    let check = (idle / 4).max(Duration::from_millis(100));
    loop {
        tokio::time::sleep(check).await;
        let now = started.elapsed().as_millis() as u64;
        if now.saturating_sub(last_ms.load(Ordering::Relaxed)) >= idle_ms {
            return;
        }
    }
}
