//! The Prometheus endpoint: `GET /metrics` (or `/`) on `supervisor.metrics_listen` (loopback by
//! convention; off when empty) serves the stats page's counters in the text exposition format.
//!
//! A bounded HTTP/1.1 server (hyper, as ingestd's HTTP door; docs/decisions.md, "The metrics
//! endpoint") on its own thread with a current-thread tokio runtime, so that nothing a client does
//! reaches the supervisor's event loop. Every connection is bounded (docs/security.md, "Hostile
//! clients: the metrics endpoint"):
//! - in bytes: a request head over [`MAX_HEAD_BYTES`] is answered 431 and closed; the body of a
//!   request is never read;
//! - in time: the head must arrive within `metrics_header_timeout_ms`, the answer be taken within
//!   `metrics_write_timeout_ms` after it; each connection serves one request;
//! - in number: `metrics_max_connections` at once, one more is answered 503 ([`refusal`]).
//!
//! It reads the page read-only, so it cannot disturb the pipeline. The text itself is
//! [`prometheus`]'s.

mod answer;
mod connection;
pub mod prometheus;
mod refusal;

use std::sync::Arc;
use std::time::Duration;

use records::names::segment;
use shm_ring::ring::RingObserver;
use shm_ring::stats::StatsReader;
use shm_ring::SegmentName;
use telemetry_config::Config;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use self::prometheus::render_prometheus;

/// The largest request head (request line and headers) read: hyper's smallest read buffer, and
/// what nginx allows a header line by default. A scrape's head is a few hundred bytes.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;

/// The bounds of one connection, from `[supervisor]`.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Open connections at most (`metrics_max_connections`).
    pub max_connections: usize,
    /// The whole request head must arrive within this long of the connection's start.
    pub header_timeout: Duration,
    /// The answer must be taken within this long after the head.
    pub write_timeout: Duration,
}

impl Limits {
    /// The limits `config` sets.
    pub fn from_config(config: &Config) -> Limits {
        let s = &config.supervisor;
        Limits {
            max_connections: s.metrics_max_connections,
            header_timeout: Duration::from_millis(s.metrics_header_timeout_ms),
            write_timeout: Duration::from_millis(s.metrics_write_timeout_ms),
        }
    }
}

/// Binds the listener (an error if the address is taken) and serves from a background thread.
pub fn serve(config: &Config) -> std::io::Result<()> {
    let listener = std::net::TcpListener::bind(&config.supervisor.metrics_listen)?;
    listener.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    let config = Arc::new(config.clone());
    let limits = Limits::from_config(&config);
    std::thread::Builder::new().name("metrics".into()).spawn(move || {
        runtime.block_on(async move {
            match TcpListener::from_std(listener) {
                Ok(listener) => accept_loop(listener, config, limits).await,
                Err(e) => warn!(error = %e, "cannot serve metrics"),
            }
        })
    })?;
    Ok(())
}

/// Accepts for ever: a connection within the cap is served, one beyond it refused.
async fn accept_loop(listener: TcpListener, config: Arc<Config>, limits: Limits) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let refusals = Arc::new(Semaphore::new(refusal::AT_ONCE));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, or a connection reset before it was accepted.
                warn!(error = %e, "accepting a metrics connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if let Ok(slot) = slots.clone().try_acquire_owned() {
            tokio::spawn(connection::serve(stream, config.clone(), limits, slot));
        } else if let Ok(permit) = refusals.clone().try_acquire_owned() {
            debug!(
                max_connections = limits.max_connections,
                "metrics connection refused: too many"
            );
            tokio::spawn(refusal::refuse(stream, permit));
        } else {
            debug!("metrics connection closed unanswered: too many refusals at once");
        }
    }
}

/// The exposition text for the pipeline now.
pub fn render(config: &Config) -> Result<String, shm_ring::Error> {
    let prefix = &config.pipeline.prefix;
    let snapshot = StatsReader::open(&SegmentName::new(prefix, segment::STATS)?)?.snapshot();
    let mut rings = Vec::new();
    for (name, _) in crate::segments::rings(config) {
        if let Ok(o) = RingObserver::attach(&SegmentName::new(prefix, name)?) {
            rings.push((name.to_owned(), o.depth().unwrap_or(0), o.capacity()));
        }
    }
    Ok(render_prometheus(&snapshot, &rings))
}
