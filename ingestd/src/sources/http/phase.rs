//! What one HTTP connection shares between its socket, its requests and its task: the
//! connection's [`Phase`] (and since when), which bounds its life (docs/security.md, "Hostile
//! clients: the HTTP door"), and [`ConnIo`], the socket under hyper (and under TLS) that sees
//! a request's first bytes and closes with a lingering close when a refusal asks for one.
//!
//! | phase | from | until | bounded by |
//! |---|---|---|---|
//! | `Fresh` | accept (or the end of the TLS handshake) | the first byte | `header_timeout_s` for the whole first head |
//! | `Idle` | a response | the next request's first byte | `idle_timeout_s` |
//! | `Head` | a request's first byte | its head is parsed | `header_timeout_s` |
//! | `Handler` | the head is parsed | the response | `body_timeout_s` (the handler's), then the commit |
//! | `Closing` | a lingering close began | the client's FIN | `linger_timeout_s`, `linger_max_bytes` |
//!
//! The phase and its start are one atomic word, written by the connection's own socket and
//! requests (a few atomic stores per request, no lock) and read by its task's timer and by the
//! slots when a new client needs room (`slots`).

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Where a connection is in its life (see the module's table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Accepted; nothing of a request yet.
    Fresh = 0,
    /// Between two requests of a keep-alive connection.
    Idle = 1,
    /// A request's head is arriving.
    Head = 2,
    /// A request is inside the handler (its body being read, or its commit awaited).
    Handler = 3,
    /// A lingering close: the answer is sent, the client's remaining bytes are read and dropped.
    Closing = 4,
}

impl Phase {
    fn from_bits(bits: u64) -> Phase {
        match bits & PHASE_MASK {
            0 => Phase::Fresh,
            1 => Phase::Idle,
            2 => Phase::Head,
            3 => Phase::Handler,
            _ => Phase::Closing,
        }
    }
}

const PHASE_BITS: u32 = 3;
const PHASE_MASK: u64 = (1 << PHASE_BITS) - 1;

/// One connection's shared state.
#[derive(Debug)]
pub struct Conn {
    /// The connection's place in the slots' table.
    pub slot: usize,
    /// The instant phase starts are counted from (the same for every connection, so that they
    /// compare).
    base: Instant,
    /// The phase (low bits) and its start in ms since `base` (high bits).
    phase: AtomicU64,
    /// A refusal left the request's body unread: close with a lingering close.
    linger: AtomicBool,
    /// Chosen to make room for a new client (set once, by the slots).
    evicting: AtomicBool,
    /// Wakes the connection's task when it is evicted.
    evicted: Notify,
}

impl Conn {
    /// A connection accepted now, in slot `slot`.
    pub fn new(slot: usize, base: Instant) -> Conn {
        let conn = Conn {
            slot,
            base,
            phase: AtomicU64::new(0),
            linger: AtomicBool::new(false),
            evicting: AtomicBool::new(false),
            evicted: Notify::new(),
        };
        conn.enter(Phase::Fresh);
        conn
    }

    /// The phase, and when it began.
    pub fn phase(&self) -> (Phase, Instant) {
        let bits = self.phase.load(Ordering::Acquire);
        (
            Phase::from_bits(bits),
            self.base + Duration::from_millis(bits >> PHASE_BITS),
        )
    }

    /// Enters `phase` now.
    pub fn enter(&self, phase: Phase) {
        let ms = Instant::now().saturating_duration_since(self.base).as_millis() as u64;
        self.phase.store(ms << PHASE_BITS | phase as u64, Ordering::Release);
    }

    /// The socket read bytes: a request begins if none was under way. The first request's head
    /// keeps the connection's start as its own (the header timeout counts from the accept).
    fn saw_bytes(&self) {
        let bits = self.phase.load(Ordering::Acquire);
        match Phase::from_bits(bits) {
            Phase::Fresh => {
                let head = bits & !PHASE_MASK | Phase::Head as u64;
                let _ = self
                    .phase
                    .compare_exchange(bits, head, Ordering::AcqRel, Ordering::Acquire);
            }
            Phase::Idle => self.enter(Phase::Head),
            Phase::Head | Phase::Handler | Phase::Closing => {}
        }
    }

    /// Asks for a lingering close (a refusal left the body unread).
    pub fn linger(&self) {
        self.linger.store(true, Ordering::Release);
    }

    fn lingers(&self) -> bool {
        self.linger.load(Ordering::Acquire)
    }

    /// Marks the connection as chosen to make room; false if it already was.
    pub fn mark_evicting(&self) -> bool {
        !self.evicting.swap(true, Ordering::AcqRel)
    }

    /// Whether the connection was chosen to make room.
    pub fn is_evicting(&self) -> bool {
        self.evicting.load(Ordering::Acquire)
    }

    /// Wakes the connection's task to close (after [`Conn::mark_evicting`]).
    pub fn evict(&self) {
        self.evicted.notify_one();
    }

    /// Completes once the connection is evicted.
    pub async fn evicted(&self) {
        self.evicted.notified().await;
    }
}

/// The accepted socket, as hyper (or TLS) sees it: reads mark the start of a request, and
/// shutting down after a refusal that left the body unread reads and discards what the client
/// still sends (up to `linger_max_bytes`; the task bounds the time) before the socket is closed,
/// so that a client that writes its whole body before reading gets the answer, not a reset.
pub struct ConnIo<S> {
    inner: S,
    conn: std::sync::Arc<Conn>,
    linger_max_bytes: usize,
    lingered: usize,
    write_shut: bool,
}

impl<S> ConnIo<S> {
    /// `inner`, for the connection `conn`.
    pub fn new(inner: S, conn: std::sync::Arc<Conn>, linger_max_bytes: usize) -> ConnIo<S> {
        ConnIo {
            inner,
            conn,
            linger_max_bytes,
            lingered: 0,
            write_shut: false,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ConnIo<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            self.conn.saw_bytes();
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for ConnIo<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.write_shut {
            ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
            this.write_shut = true;
            if !this.conn.lingers() {
                return Poll::Ready(Ok(()));
            }
            this.conn.enter(Phase::Closing);
        }
        if !this.conn.lingers() {
            return Poll::Ready(Ok(()));
        }
        // Our FIN is out after the answer; read and drop until the client's FIN, or the bound.
        let mut scratch = [MaybeUninit::<u8>::uninit(); 8192];
        while this.lingered < this.linger_max_bytes {
            let mut buf = ReadBuf::uninit(&mut scratch);
            match Pin::new(&mut this.inner).poll_read(cx, &mut buf) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(_)) => break,
                Poll::Ready(Ok(())) if buf.filled().is_empty() => break,
                Poll::Ready(Ok(())) => this.lingered += buf.filled().len(),
            }
        }
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_head_keeps_the_accept_as_its_start_and_later_heads_start_at_their_first_byte() {
        let base = Instant::now();
        let conn = Conn::new(0, base);
        let (phase, accepted) = conn.phase();
        assert_eq!(phase, Phase::Fresh);
        std::thread::sleep(Duration::from_millis(20));
        conn.saw_bytes();
        assert_eq!(conn.phase(), (Phase::Head, accepted));
        conn.enter(Phase::Handler);
        conn.saw_bytes();
        assert_eq!(conn.phase().0, Phase::Handler, "body bytes do not start a request");
        conn.enter(Phase::Idle);
        std::thread::sleep(Duration::from_millis(20));
        conn.saw_bytes();
        let (phase, head) = conn.phase();
        assert_eq!(phase, Phase::Head);
        assert!(head >= accepted + Duration::from_millis(40), "{head:?} {accepted:?}");
    }

    #[test]
    fn a_connection_is_evicted_once() {
        let conn = Conn::new(3, Instant::now());
        assert!(!conn.is_evicting());
        assert!(conn.mark_evicting());
        assert!(!conn.mark_evicting());
        assert!(conn.is_evicting());
    }
}
