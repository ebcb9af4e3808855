//! The JetStream sink (`sinks = ["nats"]`, `jetstream = true`): at-least-once into the stream,
//! and no duplicate stored within the stream's duplicate window.
//!
//! A record is delivered when its ack arrives. Up to `window` records are in flight
//! (`min([emitd] max_backlog, ring capacity)`), their acks awaited concurrently; a failed or
//! missing ack (timeout, broken connection, stream missing) marks the record for a retry with the
//! same `Nats-Msg-Id`, after a backoff and once NATS is back. Nothing new is published while the
//! client is not connected or the stream is not ready: the rest waits in the ring, where it
//! survives an emitd restart. This sink drops nothing (a long outage fills the ring, and then
//! aggd counts `dropped.aggregates_ring_full`).
//!
//! An emitd killed at any point publishes the unreleased records again with the same
//! `Nats-Msg-Id` (`msg_id`), which the server deduplicates within its duplicate window: exactly
//! once in the stream.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use async_nats::jetstream::context::{PublishAckFuture, PublishError, PublishErrorKind};
use async_nats::jetstream::publish::PublishAck;
use records::Aggregate;
use tokio::task::{JoinError, JoinSet};
use tracing::{info, warn};

use crate::message::{MessageBuilder, Outgoing};
use crate::publisher::Nats;
use crate::sink::{Offered, Settled, Sink, SinkFuture, SinkStatus};
use crate::Error;

/// First and longest delay before publishes are sent again.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Delay between attempts to find or create the stream.
const STREAM_RETRY: Duration = Duration::from_secs(1);
/// Bound on one attempt to find or create the stream (the loop does not beat meanwhile).
const STREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// Ring position, attempt and ack of one publish.
type AckResult = (u64, u32, Result<PublishAck, PublishError>);

/// One record published and not yet acked.
struct Slot {
    /// The message, kept for a retry.
    msg: Outgoing,
    /// Ack awaited (else: to be published again).
    in_flight: bool,
    /// Publishes of this record so far; a failure reported for an earlier one is stale.
    attempt: u32,
}

/// JetStream.
pub struct JetStream {
    nats: Nats,
    builder: MessageBuilder,
    window: usize,
    slots: BTreeMap<u64, Slot>,
    acks: JoinSet<AckResult>,
    /// Positions of the slots to publish again, oldest first.
    retry: VecDeque<u64>,
    retry_at: Instant,
    backoff: Duration,
    stream_ready: bool,
    stream_at: Instant,
    /// Disconnects seen so far.
    disconnects: u64,
    settled: Vec<(u64, Settled)>,
    republished: u64,
    duplicates: u64,
    errors: u64,
    /// An ack task failed while `wait` awaited it (reported by the next `poll`).
    broken: bool,
}

impl JetStream {
    /// A sink publishing through `nats` (a JetStream client) with at most `window` in flight.
    pub fn new(nats: Nats, builder: MessageBuilder, window: usize) -> JetStream {
        let now = Instant::now();
        JetStream {
            nats,
            builder,
            window: window.max(1),
            slots: BTreeMap::new(),
            acks: JoinSet::new(),
            retry: VecDeque::new(),
            retry_at: now,
            backoff: MIN_BACKOFF,
            stream_ready: false,
            stream_at: now,
            disconnects: 0,
            settled: Vec::new(),
            republished: 0,
            duplicates: 0,
            errors: 0,
            broken: false,
        }
    }

    async fn offer_one(&mut self, pos: u64, agg: &Aggregate) -> Result<Offered, Error> {
        let msg = self
            .builder
            .build(agg)
            .map_err(|_| Error::Internal("an aggregate with an empty id was offered"))?;
        let published = self.nats.publish_acked(&msg).await;
        self.slots.insert(
            pos,
            Slot {
                msg,
                in_flight: true,
                attempt: 0,
            },
        );
        match published {
            Ok(ack) => self.spawn_ack(pos, 0, ack),
            Err(e) => self.schedule_retry(pos, &e),
        }
        Ok(Offered::Pending)
    }

    fn spawn_ack(&mut self, pos: u64, attempt: u32, ack: PublishAckFuture) {
        self.acks.spawn(async move { (pos, attempt, ack.await) });
    }

    /// After a disconnect, the acks of what was in flight will not come (the server answers a
    /// request on the connection it came in on): publish those records again as soon as NATS is
    /// back instead of waiting for each ack to time out. The stale acks are still awaited, and a
    /// late success still counts.
    fn after_disconnect(&mut self) {
        let seen = self.nats.events().disconnects.load(Relaxed);
        if seen == self.disconnects {
            return;
        }
        self.disconnects = seen;
        let mut requeued = 0;
        for (pos, slot) in self.slots.iter_mut() {
            if slot.in_flight {
                slot.in_flight = false;
                slot.attempt += 1;
                self.retry.push_back(*pos);
                requeued += 1;
            }
        }
        if requeued > 0 {
            warn!(
                requeued,
                "NATS connection lost; will publish what was in flight again once it is back"
            );
            self.retry_at = Instant::now();
        }
    }

    /// Marks the record at `pos` for a retry after the current backoff.
    fn schedule_retry(&mut self, pos: u64, error: &PublishError) {
        if let Some(slot) = self.slots.get_mut(&pos) {
            slot.in_flight = false;
        }
        self.retry.push_back(pos);
        self.back_off(error);
    }

    /// Delays the next retry after `error`: one backoff step (and one warning) per round of
    /// failures, and a new look for the stream if it has gone.
    fn back_off(&mut self, error: &PublishError) {
        self.errors += 1;
        if error.kind() == PublishErrorKind::StreamNotFound {
            self.stream_ready = false;
        }
        let now = Instant::now();
        if self.retry_at <= now {
            warn!(error = %error, retry_in_ms = self.backoff.as_millis() as u64, "JetStream publish not acked; will publish again");
            self.retry_at = now + self.backoff;
            self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        }
    }

    fn on_ack(&mut self, joined: Result<AckResult, JoinError>) -> Result<(), Error> {
        let (pos, attempt, result) = joined.map_err(|_| Error::Internal("an ack task failed"))?;
        // A late answer about a record that is settled already tells nothing new.
        let Some(slot) = self.slots.get(&pos) else {
            return Ok(());
        };
        match result {
            Ok(ack) => {
                self.slots.remove(&pos);
                self.settled.push((pos, Settled::Delivered));
                if ack.duplicate {
                    self.duplicates += 1;
                }
                self.backoff = MIN_BACKOFF;
            }
            Err(e) if slot.in_flight && slot.attempt == attempt => self.schedule_retry(pos, &e),
            // Stale: the record was queued for another publish since.
            Err(_) => {}
        }
        Ok(())
    }

    /// Publishes again the records whose ack failed, once their backoff is over and NATS is back.
    async fn republish_due(&mut self) {
        if self.retry.is_empty() || Instant::now() < self.retry_at || !self.stream_ready || !self.nats.connected() {
            return;
        }
        while let Some(pos) = self.retry.pop_front() {
            // A late ack may have settled it meanwhile.
            let Some((msg, attempt)) = self
                .slots
                .get(&pos)
                .filter(|s| !s.in_flight)
                .map(|s| (s.msg.clone(), s.attempt))
            else {
                continue;
            };
            match self.nats.publish_acked(&msg).await {
                Ok(ack) => {
                    if let Some(slot) = self.slots.get_mut(&pos) {
                        slot.in_flight = true;
                    }
                    self.spawn_ack(pos, attempt, ack);
                    self.republished += 1;
                }
                Err(e) => {
                    // Still first in line, after the next backoff.
                    self.retry.push_front(pos);
                    self.back_off(&e);
                    break;
                }
            }
        }
    }

    /// Finds or creates the stream when it is not known to be there.
    async fn ensure_stream(&mut self) {
        if self.stream_ready || Instant::now() < self.stream_at || !self.nats.connected() {
            return;
        }
        match tokio::time::timeout(STREAM_TIMEOUT, self.nats.ensure_stream()).await {
            Ok(Ok(status)) => {
                self.stream_ready = true;
                info!(stream = self.nats.stream(), ?status, "publishing to JetStream");
            }
            Ok(Err(e)) => {
                warn!(error = %e, "JetStream stream not ready; will try again");
                self.stream_at = Instant::now() + STREAM_RETRY;
            }
            Err(_) => {
                warn!(
                    timeout_ms = STREAM_TIMEOUT.as_millis() as u64,
                    "JetStream stream lookup timed out; will try again"
                );
                self.stream_at = Instant::now() + STREAM_RETRY;
            }
        }
    }

    async fn poll_all(&mut self, settled: &mut Vec<(u64, Settled)>) -> Result<(), Error> {
        if self.broken {
            return Err(Error::Internal("an ack task failed"));
        }
        while let Some(joined) = self.acks.try_join_next() {
            self.on_ack(joined)?;
        }
        self.after_disconnect();
        self.ensure_stream().await;
        self.republish_due().await;
        settled.append(&mut self.settled);
        Ok(())
    }

    async fn wait_any(&mut self) -> Result<(), Error> {
        // Retries and the stream lookup wait for a connection; while there is none, the loop ticks.
        let due = if !self.nats.connected() {
            None
        } else if !self.stream_ready {
            Some(self.stream_at)
        } else if !self.retry.is_empty() {
            Some(self.retry_at)
        } else {
            None
        };
        let soon = Instant::now() + Duration::from_millis(1);
        tokio::select! {
            Some(joined) = self.acks.join_next(), if !self.acks.is_empty() => self.on_ack(joined)?,
            _ = tokio::time::sleep_until(due.unwrap_or(soon).max(soon).into()), if due.is_some() => {}
            else => std::future::pending::<()>().await,
        }
        Ok(())
    }
}

impl Sink for JetStream {
    fn name(&self) -> &'static str {
        "nats"
    }

    fn ready(&self) -> bool {
        self.slots.len() < self.window && self.stream_ready && self.retry.is_empty() && self.nats.connected()
    }

    fn offer<'a>(&'a mut self, pos: u64, agg: &'a Aggregate) -> SinkFuture<'a, Result<Offered, Error>> {
        Box::pin(self.offer_one(pos, agg))
    }

    fn poll<'a>(&'a mut self, settled: &'a mut Vec<(u64, Settled)>) -> SinkFuture<'a, Result<(), Error>> {
        Box::pin(self.poll_all(settled))
    }

    fn wait(&mut self) -> SinkFuture<'_, ()> {
        Box::pin(async {
            if self.wait_any().await.is_err() {
                self.broken = true;
            }
        })
    }

    fn status(&self) -> SinkStatus {
        SinkStatus {
            connected: self.nats.connected(),
            backlog: self.slots.len() as u64,
            failure: self.nats.last_failure(),
        }
    }

    fn events(&self, out: &mut Vec<(&'static str, u64)>) {
        self.nats.event_totals(out);
        out.push(("nats.errors", self.errors));
        out.push(("js.republished", self.republished));
        out.push(("js.duplicates", self.duplicates));
    }

    fn flush(&mut self, timeout: Duration) -> SinkFuture<'_, bool> {
        Box::pin(self.nats.flush(timeout))
    }
}
