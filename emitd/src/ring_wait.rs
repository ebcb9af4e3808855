//! Waiting for the aggregates ring without blocking the async runtime.
//!
//! emitd runs on a tokio current-thread runtime: one thread drives the NATS connection, the
//! publishes and the acks (librdkafka runs its own threads). The ring's wait is blocking by
//! design (spin, naps, then a futex sleep; see `shm_ring::ring::WaitStrategy`), and blocking that
//! thread would stop the connection task from writing what was just published, answering pings
//! or reconnecting. So an idle emitd hands the consumer to tokio's blocking pool for one wait of
//! at most a short timeout and takes it back afterwards; the runtime thread stays free meanwhile.
//!
//! Why not a dedicated reader thread feeding a channel: commits must follow the sinks (a record
//! is released only once every sink settled it), so the thread would need a
//! second channel back and would keep records in two places. Here the consumer has one owner,
//! the stage's loop, and is lent out only while nothing is in flight. The blocking pool reuses
//! its thread, and emitd waits only when the ring is empty: under load it reads chunks without
//! waiting at all.

use std::time::Duration;

use shm_ring::ring::WaitStrategy;
use shm_ring::{Consumer, Record};

/// Waits on the blocking pool until `consumer`'s ring holds at least one record beyond the
/// committed position, or `timeout` passes. Returns the number ready (0 on timeout).
///
/// The consumer is moved to the waiting thread and back; it is `None` only while this future
/// runs, and the future must be run to completion (the stage never cancels it).
pub async fn wait_for_records<T: Record + Send + 'static>(
    consumer: &mut Option<Consumer<T>>,
    strategy: WaitStrategy,
    timeout: Duration,
) -> Result<usize, crate::Error> {
    let mut c = consumer
        .take()
        .ok_or(crate::Error::Internal("the consumer is lent out"))?;
    let (c, ready) = tokio::task::spawn_blocking(move || {
        let ready = c.wait_for_records(&strategy, timeout);
        (c, ready)
    })
    .await
    .map_err(|e| {
        crate::Error::Internal(if e.is_panic() {
            "the ring wait panicked"
        } else {
            "the ring wait was cancelled"
        })
    })?;
    *consumer = Some(c);
    Ok(ready?)
}
