//! Closing a metrics connection so that the client can read what it was sent. A socket closed
//! with unread input sends a reset, not a FIN, and the client's kernel then discards whatever it
//! has not yet read: a client still sending an oversized head would never see its 431, one
//! refused at the cap never its 503. So our side is shut first (FIN after the answer), then what
//! the client still sends is read and thrown away until it closes, bounded in time and bytes as
//! nginx's lingering close is.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long and how much to read and discard before closing regardless.
#[derive(Clone, Copy, Debug)]
pub(super) struct Linger {
    /// At most this long.
    pub time: Duration,
    /// At most this many bytes.
    pub bytes: usize,
}

/// After an answer (or a timeout): a client that read its answer closes at once.
pub(super) const AFTER_ANSWER: Linger = Linger {
    time: Duration::from_secs(2),
    bytes: 64 * 1024,
};

/// Shuts our side of `stream`, discards what the client still sends within `linger`, and closes.
pub(super) async fn close(mut stream: TcpStream, linger: Linger) {
    let _ = stream.shutdown().await;
    let mut buf = [0u8; 4096];
    let mut left = linger.bytes;
    let _ = tokio::time::timeout(linger.time, async {
        while left > 0 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}
