//! A connection beyond `metrics_max_connections`: answered `503` with `Retry-After: 1` at once
//! (its request is not read), then closed with a short linger so that the client reads it.
//! Refusals are themselves bounded: [`AT_ONCE`] at a time, each for at most a second or two;
//! beyond that a connection is closed unanswered.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

use super::linger::{self, Linger};

/// Refusals in progress at most.
pub(super) const AT_ONCE: usize = 64;

/// The refusal's text.
const BODY: &str = "too many metrics connections at once; try again\n";

/// The refused client has this long to take the answer (it fits any socket buffer at once).
const WRITE_TIME: Duration = Duration::from_secs(1);

/// A refused client's request is a few hundred bytes: read it and go.
const LINGER: Linger = Linger {
    time: Duration::from_secs(1),
    bytes: 16 * 1024,
};

/// Answers 503 on `stream` and closes it; the permit counts it among the refusals until then.
pub(super) async fn refuse(mut stream: TcpStream, _permit: OwnedSemaphorePermit) {
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nRetry-After: 1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    if let Ok(Ok(())) = tokio::time::timeout(WRITE_TIME, stream.write_all(response.as_bytes())).await {
        linger::close(stream, LINGER).await;
    }
}
