//! Closing a door's socket so that the client can read what it was sent. A socket closed with
//! unread input sends a reset, not a FIN, and the client's kernel then discards whatever it has
//! not yet read: a client still sending a request it was refused (an oversized head, a
//! connection beyond the cap) would never see the refusal. So our side is shut first (FIN after
//! the answer), then what the client still sends is read and thrown away until it closes,
//! bounded in time and bytes, as nginx's lingering close is. Used by ingestd's HTTP door and the
//! supervisor's metrics endpoint.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long and how much to read and discard before closing regardless.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Linger {
    /// At most this long.
    pub time: Duration,
    /// At most this many bytes.
    pub bytes: usize,
}

/// Shuts our side of `stream`, discards what the client still sends within `linger`, and
/// closes it.
pub async fn close(mut stream: TcpStream, linger: Linger) {
    let _ = tokio::time::timeout(linger.time, shut_and_drain(&mut stream, linger.bytes)).await;
}

/// Writes `answer` (a whole HTTP response), then closes as [`close`] does; all of it within
/// `linger.time`. For a client refused before its request was read.
pub async fn answer_and_close(mut stream: TcpStream, answer: &[u8], linger: Linger) {
    let _ = tokio::time::timeout(linger.time, async {
        stream.write_all(answer).await?;
        shut_and_drain(&mut stream, linger.bytes).await;
        Ok::<(), std::io::Error>(())
    })
    .await;
}

async fn shut_and_drain(stream: &mut TcpStream, bytes: usize) {
    let _ = stream.shutdown().await;
    let mut scratch = [0u8; 4096];
    let mut left = bytes;
    while left > 0 {
        match stream.read(&mut scratch).await {
            Ok(0) | Err(_) => break,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
}
