//! One metrics connection within the cap: hyper with the endpoint's bounds, then a lingering
//! close. The connection's slot is held until the socket is closed.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use stage_runtime::linger::{self, Linger};
use telemetry_config::Config;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tracing::debug;

use super::{answer, Limits, MAX_HEAD_BYTES};

/// After an answer (or a timeout): a client that read its answer closes at once.
const AFTER_ANSWER: Linger = Linger {
    time: Duration::from_secs(2),
    bytes: 64 * 1024,
};

/// Serves one request on `stream`, then closes it.
pub(super) async fn serve(mut stream: TcpStream, config: Arc<Config>, limits: Limits, _slot: OwnedSemaphorePermit) {
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |request| {
        let response = answer::answer(&request, &config);
        async move { Ok::<_, Infallible>(response) }
    });
    // Hyper reads the head into a buffer of at most MAX_HEAD_BYTES and answers 431 beyond it
    // (400 for a malformed head); its header timer closes a client that has not sent the whole
    // head in time. One request per connection (no keep-alive): a scrape every few seconds needs
    // no more, and an idle connection would hold a slot.
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_HEAD_BYTES)
        .keep_alive(false);
    // Hyper has no write timeout: the connection's whole life is bounded instead, by the head's
    // time and the answer's time after it.
    let life = limits.header_timeout + limits.write_timeout;
    {
        let connection = http.serve_connection(TokioIo::new(&mut stream), service);
        match tokio::time::timeout(life, connection).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => debug!(error = %e, "metrics connection ended early"),
            Err(_) => debug!(
                life_ms = life.as_millis() as u64,
                "metrics connection closed at its deadline"
            ),
        }
    }
    linger::close(stream, AFTER_ANSWER).await;
}
