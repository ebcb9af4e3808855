//! The stage's loop: take aggregates from the ring, publish them, release them from the ring
//! once NATS has them, and count what became of each.
//!
//! # Records in flight
//!
//! Records are read in place and released with a commit, in ring order. The loop keeps the
//! records it has read but not released in `pending`, one slot each, and releases the longest
//! prefix whose slots are done:
//!
//! - **core**: a record is done as soon as the client has queued its message (forwarded), or when
//!   it is dropped; so every batch is released right after it was handed over.
//! - **JetStream**: a record is done when its ack arrives. Up to `window` records are in flight
//!   (`min(max_backlog, ring capacity)`), their acks awaited concurrently; a failed or missing ack
//!   (timeout, broken connection, stream missing) marks the record for a retry with the same
//!   `Nats-Msg-Id`, after a backoff and once NATS is back. Acks may arrive in any order; the
//!   ring is released up to the first record still waiting.
//!
//! An emitd killed at any point re-reads, on restart, exactly the records it had not released:
//! none were lost, and the ones it had already published are published again (at-least-once).
//! In JetStream mode the server drops those as duplicates within its duplicate window.
//!
//! # NATS away
//!
//! - **core**: messages queue in the client (`publisher::Nats::backlog`) and are written after
//!   the reconnect. While the client is not connected and `max_backlog` messages are queued,
//!   each further aggregate is dropped and counted as `dropped.nats_backlog_full` (tail drop: the
//!   queued ones are older and go first), so the ring keeps draining and aggd never blocks. While
//!   the client is connected but its queue is full, the server is merely slower than the ring:
//!   the loop waits instead of dropping, and the ring absorbs the difference.
//! - **JetStream**: nothing new is published while the client is not connected or the stream is
//!   not ready; the records in flight are retried, the rest wait in the ring, where they survive
//!   an emitd restart. emitd drops nothing in this mode (a long outage fills the ring, and then
//!   aggd counts `dropped.aggregates_ring_full`).
//!
//! # Shutdown
//!
//! After SIGTERM or SIGINT the loop goes on until the ring is empty and nothing is in flight,
//! flushes the client and returns, so `main` exits 0. The drain is bounded by 80 % of
//! `[supervisor] shutdown_timeout_ms`, so that the supervisor's SIGKILL does not interrupt it. If
//! NATS is away, the drain stops taking records (core mode too, rather than dropping them): what
//! is not released stays in the ring for the next emitd. In core mode, messages already queued in
//! the client when the drain gives up are lost, as core NATS loses them anyway.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use async_nats::jetstream::context::{PublishAckFuture, PublishError, PublishErrorKind};
use async_nats::jetstream::publish::PublishAck;
use records::Aggregate;
use shm_ring::{Consumer, StageState, WaitStrategy};
use stage_runtime::{Shutdown, StageCounters};
use telemetry_config::Config;
use tokio::task::{JoinError, JoinSet};
use tracing::{info, warn};

use crate::message::{MessageBuilder, Outgoing};
use crate::publisher::Nats;
use crate::ring_wait::wait_for_records;
use crate::stats::{Outcome, Stats};
use crate::Error;

/// Most records read from the ring at a time.
const BATCH: usize = 512;
/// Longest ring wait while idle: how soon an idle emitd notices a shutdown request. Each wait is
/// a round trip through tokio's blocking pool (~4 context switches); at 100 ms those were most
/// of an idle emitd's CPU (docs/benchmarks.md), and aggd's idle wait is 250 ms too.
const IDLE_WAIT: Duration = Duration::from_millis(250);
/// Longest sleep while waiting for NATS (connection, stream, acks).
const TICK: Duration = Duration::from_millis(100);
/// First and longest delay before JetStream publishes are sent again.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Delay between attempts to find or create the stream.
const STREAM_RETRY: Duration = Duration::from_secs(1);
/// Bound on one attempt to find or create the stream (the loop does not beat meanwhile).
const STREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// What the loop needs from the configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    /// JetStream mode.
    pub jetstream: bool,
    /// Most records read but not released.
    pub window: usize,
    /// Most core messages waiting in the client while NATS is away.
    pub max_backlog: u64,
    /// How long a drain may take after a shutdown request.
    pub drain_timeout: Duration,
    /// The ring wait.
    pub strategy: WaitStrategy,
}

impl Settings {
    /// The settings of `config` for a ring of `capacity` slots.
    pub fn new(config: &Config, capacity: usize) -> Settings {
        let e = &config.emitd;
        Settings {
            jetstream: e.jetstream,
            window: if e.jetstream {
                e.max_backlog.min(capacity).max(1)
            } else {
                capacity.max(1)
            },
            max_backlog: e.max_backlog as u64,
            drain_timeout: Duration::from_millis(config.supervisor.shutdown_timeout_ms * 4 / 5),
            strategy: stage_runtime::wait_strategy(config),
        }
    }
}

/// One record read from the ring and not yet released.
struct Slot {
    /// The message, kept for a JetStream retry.
    msg: Option<Outgoing>,
    state: SlotState,
    /// JetStream publishes of this record so far; a failure reported for an earlier one is
    /// stale (the record was published again since) and is ignored.
    attempt: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SlotState {
    /// Published, ack awaited.
    InFlight,
    /// To be published again.
    Retry,
    /// Ready to be released.
    Done(Outcome),
}

impl Slot {
    fn done(outcome: Outcome) -> Slot {
        Slot {
            msg: None,
            state: SlotState::Done(outcome),
            attempt: 0,
        }
    }
}

/// Ring position, attempt and ack of one JetStream publish.
type AckResult = (u64, u32, Result<PublishAck, PublishError>);

/// The running stage.
pub struct Stage {
    consumer: Option<Consumer<Aggregate>>,
    /// Ring position of `pending[0]` (the consumer's committed position).
    base: u64,
    pending: VecDeque<Slot>,
    stats: Stats,
    nats: Nats,
    builder: MessageBuilder,
    shutdown: Shutdown,
    settings: Settings,
    acks: JoinSet<AckResult>,
    /// Positions of the slots in state `Retry`, oldest first.
    retry: VecDeque<u64>,
    retry_at: Instant,
    backoff: Duration,
    stream_ready: bool,
    stream_at: Instant,
    drain_deadline: Option<Instant>,
    idle_polls: u32,
    batch: Vec<Result<Outgoing, crate::subject::EmptyId>>,
    /// Whether the current NATS outage's drops were logged already.
    dropping: bool,
    /// Disconnects seen so far.
    disconnects: u64,
}

impl Stage {
    /// Connects to NATS (in the background: this does not wait for the server) and prepares the
    /// loop over `consumer`, counting into `counters`.
    pub async fn start(
        config: &Config,
        consumer: Consumer<Aggregate>,
        counters: StageCounters,
        shutdown: Shutdown,
    ) -> Result<Stage, Error> {
        let settings = Settings::new(config, consumer.capacity());
        let queue = settings.window.max(config.emitd.max_backlog) + BATCH + 64;
        let name = format!("emitd-{}", config.pipeline.instance);
        // Room for the acks of one window still awaited after a disconnect (see
        // `after_disconnect`) besides a window of new ones, so that publishing never waits for
        // an ack permit.
        let inflight = 2 * settings.window + 64;
        let nats = Nats::connect(&config.emitd, &name, queue, inflight)
            .await
            .map_err(Error::Nats)?;
        let stats = Stats::new(counters)?;
        info!(
            nats = %config.emitd.nats,
            subject_prefix = %config.emitd.subject_prefix,
            jetstream = settings.jetstream,
            stream = if settings.jetstream { nats.stream() } else { "" },
            window = settings.window,
            max_backlog = settings.max_backlog,
            "emitd started"
        );
        let now = Instant::now();
        Ok(Stage {
            base: consumer.position(),
            consumer: Some(consumer),
            pending: VecDeque::new(),
            stats,
            nats,
            builder: MessageBuilder::new(config),
            shutdown,
            settings,
            acks: JoinSet::new(),
            retry: VecDeque::new(),
            retry_at: now,
            backoff: MIN_BACKOFF,
            stream_ready: false,
            stream_at: now,
            drain_deadline: None,
            idle_polls: 0,
            batch: Vec::with_capacity(BATCH),
            dropping: false,
            disconnects: 0,
        })
    }

    /// Runs until a shutdown request has been handled (then `Ok`) or a fatal error.
    pub async fn run(mut self) -> Result<(), Error> {
        self.stats.ready();
        loop {
            self.check_shutdown();
            self.reap_acks()?;
            self.commit()?;
            self.after_disconnect();
            let depth = self.report()?;
            if let Some(deadline) = self.drain_deadline {
                if self.pending.is_empty() && depth == 0 {
                    break;
                }
                if Instant::now() >= deadline {
                    warn!(
                        in_flight = self.pending.len(),
                        in_ring = depth,
                        "drain timed out (NATS away?); what was not published stays in the ring"
                    );
                    break;
                }
            }
            if self.settings.jetstream {
                self.ensure_stream().await;
                self.republish_due().await?;
            }
            if self.take_new().await? > 0 {
                self.idle_polls = 0;
                continue;
            }
            self.wait().await?;
        }
        self.reap_acks()?;
        self.commit()?;
        let left = self
            .drain_deadline
            .map_or(Duration::ZERO, |d| d.saturating_duration_since(Instant::now()));
        if !self.nats.flush(left.max(Duration::from_millis(200))).await {
            warn!(
                queued = self.nats.backlog(),
                "could not flush NATS before exiting: what the client still holds is lost"
            );
        }
        let depth = self.report()?;
        info!(in_ring = depth, "emitd stopped");
        Ok(())
    }

    fn check_shutdown(&mut self) {
        if self.drain_deadline.is_none() && self.shutdown.requested() {
            self.drain_deadline = Some(Instant::now() + self.settings.drain_timeout);
            self.stats.set_state(StageState::Stopping);
            info!("shutdown requested: draining the aggregates ring");
        }
    }

    fn consumer(&mut self) -> Result<&mut Consumer<Aggregate>, Error> {
        self.consumer
            .as_mut()
            .ok_or(Error::Internal("the consumer is lent out"))
    }

    /// Reports the ring depth and the connection events and publishes the counters (which also
    /// beats the heartbeat). Returns the depth.
    fn report(&mut self) -> Result<u64, Error> {
        let depth = self.consumer()?.available()? as u64;
        self.stats.ring_depth(depth);
        self.stats.connection(self.nats.events());
        self.stats.flush();
        Ok(depth)
    }

    /// Releases the longest prefix of done records from the ring and counts them.
    fn commit(&mut self) -> Result<(), Error> {
        let n = self
            .pending
            .iter()
            .take_while(|s| matches!(s.state, SlotState::Done(_)))
            .count();
        if n == 0 {
            return Ok(());
        }
        for slot in self.pending.drain(..n) {
            if let SlotState::Done(outcome) = slot.state {
                self.stats.released(outcome);
            }
        }
        let consumer = self
            .consumer
            .as_mut()
            .ok_or(Error::Internal("the consumer is lent out"))?;
        let chunk = consumer.read_chunk(n)?;
        if chunk.len() != n {
            return Err(Error::Internal("fewer records in the ring than in flight"));
        }
        chunk.commit(n);
        self.base = consumer.position();
        Ok(())
    }

    /// True if new records may be read and published now.
    fn can_take(&self) -> bool {
        if self.pending.len() >= self.settings.window {
            return false;
        }
        if self.settings.jetstream {
            self.stream_ready && self.retry.is_empty() && self.nats.connected()
        } else {
            self.drain_deadline.is_none() || self.nats.connected()
        }
    }

    /// Reads up to a batch of new records and publishes them. Returns how many were taken.
    async fn take_new(&mut self) -> Result<usize, Error> {
        if !self.can_take() {
            return Ok(0);
        }
        let skip = self.pending.len();
        let want = (self.settings.window - skip).min(BATCH);
        let mut batch = std::mem::take(&mut self.batch);
        {
            let consumer = self
                .consumer
                .as_mut()
                .ok_or(Error::Internal("the consumer is lent out"))?;
            let chunk = consumer.read_chunk(skip + want)?;
            batch.extend(chunk.iter().skip(skip).map(|agg| self.builder.build(agg)));
        }
        let mut taken = 0;
        for built in batch.drain(..) {
            let slot = match built {
                Err(e) => {
                    warn!(error = %e, "dropping an aggregate: {}", records::names::drop_reason::UNSAFE_SUBJECT);
                    Slot::done(Outcome::UnsafeSubject)
                }
                Ok(msg) if self.settings.jetstream => {
                    let pos = self.base.wrapping_add(self.pending.len() as u64);
                    match self.nats.publish_acked(&msg).await {
                        Ok(ack) => {
                            self.spawn_ack(pos, 0, ack);
                            Slot {
                                msg: Some(msg),
                                state: SlotState::InFlight,
                                attempt: 0,
                            }
                        }
                        Err(e) => {
                            self.schedule_retry(pos, &e);
                            Slot {
                                msg: Some(msg),
                                state: SlotState::Retry,
                                attempt: 0,
                            }
                        }
                    }
                }
                Ok(msg) => match self.publish_core(msg).await? {
                    Some(outcome) => Slot::done(outcome),
                    // The drain's deadline passed: the rest stays in the ring.
                    None => break,
                },
            };
            self.pending.push_back(slot);
            taken += 1;
        }
        batch.clear();
        self.batch = batch;
        Ok(taken)
    }

    /// Hands one message to the client, or drops it if NATS is away and the backlog is full.
    /// `None` if the drain's deadline passed while waiting.
    async fn publish_core(&mut self, msg: Outgoing) -> Result<Option<Outcome>, Error> {
        loop {
            if self.nats.backlog() < self.settings.max_backlog {
                self.nats
                    .publish(msg)
                    .await
                    .map_err(|e| Error::Nats(format!("publish: {e}")))?;
                if self.dropping && self.nats.connected() {
                    self.dropping = false;
                }
                return Ok(Some(Outcome::Forwarded));
            }
            if !self.nats.connected() {
                if !self.dropping {
                    self.dropping = true;
                    warn!(
                        max_backlog = self.settings.max_backlog,
                        "NATS is away and the backlog is full: dropping new aggregates ({})",
                        records::names::drop_reason::NATS_BACKLOG_FULL
                    );
                }
                return Ok(Some(Outcome::BacklogFull));
            }
            // Connected, but the queue is full: the server is slower than the ring. Wait for it
            // rather than drop; the ring holds the rest.
            self.check_shutdown();
            if self.drain_deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
            self.stats.flush();
        }
    }

    fn spawn_ack(&mut self, pos: u64, attempt: u32, ack: PublishAckFuture) {
        self.acks.spawn(async move { (pos, attempt, ack.await) });
    }

    /// After a disconnect, the acks of what was in flight will not come (the server answers a
    /// request on the connection it came in on): publish those records again as soon as NATS is
    /// back instead of waiting for each ack to time out. The stale acks are still awaited, and a
    /// late success still counts.
    fn after_disconnect(&mut self) {
        let seen = self
            .nats
            .events()
            .disconnects
            .load(std::sync::atomic::Ordering::Relaxed);
        if seen == self.disconnects {
            return;
        }
        self.disconnects = seen;
        let mut requeued = 0;
        for (i, slot) in self.pending.iter_mut().enumerate() {
            if slot.state == SlotState::InFlight {
                slot.state = SlotState::Retry;
                slot.attempt += 1;
                self.retry.push_back(self.base.wrapping_add(i as u64));
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
        if let Some(slot) = self.slot(pos) {
            slot.state = SlotState::Retry;
        }
        self.retry.push_back(pos);
        self.back_off(error);
    }

    /// Delays the next retry after `error`: one backoff step (and one warning) per round of
    /// failures, and a new look for the stream if it has gone.
    fn back_off(&mut self, error: &PublishError) {
        if error.kind() == PublishErrorKind::StreamNotFound {
            self.stream_ready = false;
        }
        let now = Instant::now();
        if self.retry_at <= now {
            // A new round of failures: one warning and one backoff step per round.
            warn!(error = %error, retry_in_ms = self.backoff.as_millis() as u64, "JetStream publish not acked; will publish again");
            self.retry_at = now + self.backoff;
            self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        }
    }

    fn slot(&mut self, pos: u64) -> Option<&mut Slot> {
        let idx = pos.wrapping_sub(self.base);
        self.pending.get_mut(usize::try_from(idx).ok()?)
    }

    fn reap_acks(&mut self) -> Result<(), Error> {
        while let Some(joined) = self.acks.try_join_next() {
            self.on_ack(joined)?;
        }
        Ok(())
    }

    fn on_ack(&mut self, joined: Result<AckResult, JoinError>) -> Result<(), Error> {
        let (pos, attempt, result) = joined.map_err(|_| Error::Internal("an ack task failed"))?;
        // A late answer about a record that is done (or released) already tells nothing new.
        let Some(slot) = self.slot(pos).filter(|s| !matches!(s.state, SlotState::Done(_))) else {
            return Ok(());
        };
        match result {
            Ok(ack) => {
                slot.state = SlotState::Done(Outcome::Forwarded);
                slot.msg = None;
                if ack.duplicate {
                    self.stats.duplicate();
                }
                self.backoff = MIN_BACKOFF;
            }
            Err(e) if slot.state == SlotState::InFlight && slot.attempt == attempt => self.schedule_retry(pos, &e),
            // Stale: the record was queued for another publish since.
            Err(_) => {}
        }
        Ok(())
    }

    /// Publishes again the records whose ack failed, once their backoff is over and NATS is back.
    async fn republish_due(&mut self) -> Result<(), Error> {
        if self.retry.is_empty() || Instant::now() < self.retry_at || !self.stream_ready || !self.nats.connected() {
            return Ok(());
        }
        while let Some(pos) = self.retry.pop_front() {
            // A late ack may have completed it meanwhile.
            let Some((msg, attempt)) = self
                .slot(pos)
                .filter(|s| s.state == SlotState::Retry)
                .and_then(|s| Some((s.msg.clone()?, s.attempt)))
            else {
                continue;
            };
            match self.nats.publish_acked(&msg).await {
                Ok(ack) => {
                    if let Some(slot) = self.slot(pos) {
                        slot.state = SlotState::InFlight;
                    }
                    self.spawn_ack(pos, attempt, ack);
                    self.stats.republished();
                }
                Err(e) => {
                    // Still first in line, after the next backoff.
                    self.retry.push_front(pos);
                    self.back_off(&e);
                    break;
                }
            }
        }
        Ok(())
    }

    /// Finds or creates the JetStream stream when it is not known to be there.
    async fn ensure_stream(&mut self) {
        if self.stream_ready || Instant::now() < self.stream_at || !self.nats.connected() {
            return;
        }
        let result = tokio::time::timeout(STREAM_TIMEOUT, self.nats.ensure_stream()).await;
        match result {
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

    /// Waits for something to do: new records, an ack, a retry or the stream's turn, or a tick.
    async fn wait(&mut self) -> Result<(), Error> {
        let can_take = self.can_take();
        if self.pending.is_empty() && can_take {
            // Nothing in flight: sleep on the ring itself (futex), off the runtime thread.
            wait_for_records(&mut self.consumer, self.settings.strategy, IDLE_WAIT).await?;
            return Ok(());
        }
        // Records in flight, so the ring's own wait would return at once (it waits for records
        // beyond the committed position): poll it instead, more slowly the longer it stays quiet.
        let now = Instant::now();
        let mut until = now
            + if can_take {
                self.idle_polls = (self.idle_polls + 1).min(6);
                Duration::from_millis(1 << self.idle_polls)
            } else {
                TICK
            };
        // Retries and the stream lookup wait for a connection; while there is none, tick.
        if self.nats.connected() {
            let soon = now + Duration::from_millis(1);
            if !self.stream_ready && self.settings.jetstream {
                until = until.min(self.stream_at.max(soon));
            } else if !self.retry.is_empty() {
                until = until.min(self.retry_at.max(soon));
            }
        }
        let sleep = tokio::time::sleep_until(until.into());
        tokio::select! {
            joined = self.acks.join_next(), if !self.acks.is_empty() => {
                if let Some(joined) = joined {
                    self.on_ack(joined)?;
                }
            }
            _ = sleep => {}
        }
        Ok(())
    }
}
