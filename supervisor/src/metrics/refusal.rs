//! A connection beyond `metrics_max_connections`: answered `503` with `Retry-After: 1` at once
//! (its request is not read), then closed with a short linger so that the client reads it.
//! Refusals are themselves bounded: [`AT_ONCE`] at a time, each for at most a second or two;
//! beyond that a connection is closed unanswered.

use std::time::Duration;

use stage_runtime::linger::{self, Linger};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

/// Refusals in progress at most.
pub(super) const AT_ONCE: usize = 64;

/// The refusal's text.
const BODY: &str = "too many metrics connections at once; try again\n";

/// The whole refusal: the answer (it fits any socket buffer at once), then the client's request
/// (a few hundred bytes) read and dropped.
const LINGER: Linger = Linger {
    time: Duration::from_secs(2),
    bytes: 16 * 1024,
};

/// Answers 503 on `stream` and closes it; the permit counts it among the refusals until then.
pub(super) async fn refuse(stream: TcpStream, _permit: OwnedSemaphorePermit) {
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nRetry-After: 1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    linger::answer_and_close(stream, response.as_bytes(), LINGER).await;
}
