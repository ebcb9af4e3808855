//! The stage's loop: take aggregates from the ring, offer each to every sink, release them from
//! the ring once every sink has settled them, and count what became of each. The loop knows the
//! sinks only through [`Sink`]. [`Stage`] is emitd's part of the frame every stage runs in
//! (`stage_runtime::Stage`): it builds the tokio runtime in `start` and blocks on it for each
//! turn of the loop ([`Work`]) and for the drain; `main.rs` only names it.
//!
//! # Records in flight
//!
//! Records are read in place, copied into `pending` (one entry each, at most the ring's
//! capacity) and released with a commit, in ring order, once every sink has settled them
//! (delivered, or dropped and counted). Each sink has its own cursor into `pending`: a slow or
//! absent sink falls behind while the others go on, and only the release waits for it. The
//! ring holds what is not released, so an emitd killed at any point re-reads, on restart,
//! exactly the records some sink had not settled: none were lost, and those a sink had already
//! taken are offered to it again (at-least-once; JetStream drops such copies by `Nats-Msg-Id`,
//! Kafka's carry the same `dedup_id` header).
//!
//! # Shutdown
//!
//! After SIGTERM or SIGINT the frame calls `drain`: the loop goes on until the ring is empty and
//! nothing is held, flushes the sinks' clients and returns, so the process exits 0. The drain is bounded by 80 % of
//! `[supervisor] shutdown_timeout_ms`, so that the supervisor's SIGKILL does not interrupt it.
//! While draining, a sink that is not connected is offered nothing (core NATS too, rather than
//! dropping): what is not released stays in the ring for the next emitd. In core mode, messages
//! already queued in the client when the drain gives up are lost, as core NATS loses them anyway.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use futures_util::future::select_all;
use records::names::segment;
use records::{Aggregate, FixedText};
use shm_ring::ring::WaitStrategy;
use shm_ring::Consumer;
use stage_runtime::{Context, StageCounters};
use telemetry_config::Config;
use tokio::runtime::Runtime;
use tracing::{info, warn};

use crate::ring_wait::wait_for_records;
use crate::sink::{Offered, Settled, Sink};
use crate::sinks::BATCH;
use crate::stats::{Outcome, Stats};
use crate::Error;

/// Longest ring wait while idle: how soon an idle emitd notices a shutdown request. Each wait is
/// a round trip through tokio's blocking pool (~4 context switches); at 100 ms those were most
/// of an idle emitd's CPU (docs/benchmarks.md), and aggd's idle wait is 250 ms too.
const IDLE_WAIT: Duration = Duration::from_millis(250);
/// Longest sleep while no sink can take anything (waiting for a connection, a stream, acks).
const TICK: Duration = Duration::from_millis(100);
/// How long the runtime's blocking pool (a ring wait) gets to finish when emitd exits.
const RUNTIME_SHUTDOWN: Duration = Duration::from_secs(1);

/// What the loop needs from the configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Most records read but not released.
    pub window: usize,
    /// How long a drain may take after a shutdown request.
    pub drain_timeout: Duration,
    /// The ring wait.
    pub strategy: WaitStrategy,
}

impl Settings {
    /// The settings of `config` for a ring of `capacity` slots.
    pub fn new(config: &Config, capacity: usize) -> Settings {
        Settings {
            window: capacity.max(1),
            drain_timeout: Duration::from_millis(config.supervisor.shutdown_timeout_ms * 4 / 5),
            strategy: stage_runtime::wait_strategy(config),
        }
    }
}

/// One record read from the ring and not yet released.
struct Entry {
    agg: Aggregate,
    /// Bit `i` set while sink `i` has not settled it.
    waiting: u32,
    /// Bit `i` set if sink `i` delivered it.
    delivered: u32,
    /// The first sink that dropped it.
    dropped_by: Option<usize>,
    /// An empty id: offered to no sink.
    unsafe_id: bool,
}

/// The running stage: the loop, and the runtime it runs on.
pub struct Stage {
    /// `None` only while the stage is dropped (see `Drop`), as is `runtime`.
    work: Option<Work>,
    runtime: Option<Runtime>,
}

impl stage_runtime::Stage for Stage {
    /// Attaches to the stats page and the aggregates ring, builds the runtime and starts the
    /// configured sinks (in the background: this does not wait for any server).
    fn start(ctx: &mut Context) -> Result<Stage, stage_runtime::Error> {
        let counters = ctx.counters()?;
        let consumer = ctx.consumer::<Aggregate>(segment::AGGREGATES)?;
        // One thread runs the NATS client and the loop (librdkafka has its own threads); ring
        // waits go to the blocking pool.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Setup(format!("tokio runtime: {e}")))?;
        match runtime.block_on(Work::start(ctx.config(), consumer, counters)) {
            Ok(work) => Ok(Stage {
                work: Some(work),
                runtime: Some(runtime),
            }),
            Err(e) => {
                runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
                Err(for_the_frame(e))
            }
        }
    }

    /// One turn of the loop. Then the runtime runs the sinks' clients' tasks before the frame
    /// looks at the shutdown flag, as it did when the loop was one long future (a turn that
    /// never waited would otherwise leave them for the next one).
    fn step(&mut self) -> Result<(), stage_runtime::Error> {
        let (work, runtime) = self.parts()?;
        runtime
            .block_on(async {
                work.turn().await?;
                tokio::task::yield_now().await;
                Ok(())
            })
            .map_err(for_the_frame)
    }

    fn drain(mut self) -> Result<(), stage_runtime::Error> {
        let (work, runtime) = self.parts()?;
        runtime.block_on(work.drain()).map_err(for_the_frame)
    }
}

/// emitd's error as the frame classifies it: [`Error::Config`] exits 2, anything else 1.
fn for_the_frame(e: Error) -> stage_runtime::Error {
    match e {
        Error::Config(_) => stage_runtime::Error::config(e),
        e => e.into(),
    }
}

impl Stage {
    fn parts(&mut self) -> Result<(&mut Work, &Runtime), Error> {
        match (self.work.as_mut(), self.runtime.as_ref()) {
            (Some(work), Some(runtime)) => Ok((work, runtime)),
            _ => Err(Error::Internal("the stage is being dropped")),
        }
    }
}

impl Drop for Stage {
    /// Drops the loop (its sinks' clients) inside the runtime, then gives the runtime's blocking
    /// pool [`RUNTIME_SHUTDOWN`] to finish: after a drain, or after an error ended a turn.
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            {
                let _inside = runtime.enter();
                self.work = None;
            }
            runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
        }
    }
}

/// The loop's state: what is in flight, the sinks, the counters.
pub struct Work {
    consumer: Option<Consumer<Aggregate>>,
    /// Ring position of `pending[0]` (the consumer's committed position).
    base: u64,
    pending: VecDeque<Entry>,
    sinks: Vec<Box<dyn Sink>>,
    /// Per sink, the next ring position to offer it.
    next: Vec<u64>,
    stats: Stats,
    settings: Settings,
    drain_deadline: Option<Instant>,
    idle_polls: u32,
    settled: Vec<(u64, Settled)>,
    events: Vec<(&'static str, u64)>,
}

impl Work {
    /// Starts the configured sinks (in the background: this does not wait for any server) and
    /// prepares the loop over `consumer`, counting into `counters`.
    pub async fn start(config: &Config, consumer: Consumer<Aggregate>, counters: StageCounters) -> Result<Work, Error> {
        let settings = Settings::new(config, consumer.capacity());
        let sinks = crate::sinks::start(config, consumer.capacity()).await?;
        if sinks.len() > 32 {
            return Err(Error::Config("emitd.sinks: at most 32 sinks".into()));
        }
        let names: Vec<&str> = sinks.iter().map(|s| s.name()).collect();
        let stats = Stats::new(counters, &names)?;
        info!(sinks = ?names, window = settings.window, "emitd started");
        let base = consumer.position();
        Ok(Work {
            base,
            consumer: Some(consumer),
            pending: VecDeque::new(),
            next: vec![base; sinks.len()],
            sinks,
            stats,
            settings,
            drain_deadline: None,
            idle_polls: 0,
            settled: Vec::new(),
            events: Vec::new(),
        })
    }

    /// One turn: settle what the sinks report, release and count, report; then read and offer
    /// new records, or wait for something to do. While draining, returns `true` instead once
    /// nothing is left (or the drain's time is up).
    pub async fn turn(&mut self) -> Result<bool, Error> {
        self.poll_sinks().await?;
        self.commit()?;
        let depth = self.report()?;
        if let Some(deadline) = self.drain_deadline {
            if self.pending.is_empty() && depth == 0 {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                warn!(
                    in_flight = self.pending.len(),
                    in_ring = depth,
                    "drain timed out (a sink away?); what was not delivered stays in the ring"
                );
                return Ok(true);
            }
        }
        let read = self.read_new()?;
        if read + self.offer_all().await? > 0 {
            self.idle_polls = 0;
            return Ok(false);
        }
        self.wait().await?;
        Ok(false)
    }

    /// After a shutdown request: turns until the ring is empty and nothing is held (for at most
    /// the drain timeout), then flushes the sinks' clients.
    pub async fn drain(&mut self) -> Result<(), Error> {
        self.drain_deadline = Some(Instant::now() + self.settings.drain_timeout);
        info!("shutdown requested: draining the aggregates ring");
        while !self.turn().await? {}
        self.poll_sinks().await?;
        self.commit()?;
        let left = self
            .drain_deadline
            .map_or(Duration::ZERO, |d| d.saturating_duration_since(Instant::now()))
            .max(Duration::from_millis(200));
        for sink in &mut self.sinks {
            if !sink.flush(left).await {
                warn!(
                    sink = sink.name(),
                    held = sink.status().backlog,
                    "could not flush before exiting: what the client still holds is lost or sent again by the next emitd"
                );
            }
        }
        let depth = self.report()?;
        info!(in_ring = depth, "emitd drained");
        Ok(())
    }

    fn consumer(&mut self) -> Result<&mut Consumer<Aggregate>, Error> {
        self.consumer
            .as_mut()
            .ok_or(Error::Internal("the consumer is lent out"))
    }

    /// Reports the ring depth and the sinks' state and events and publishes the counters (which
    /// also beats the heartbeat). Returns the depth.
    fn report(&mut self) -> Result<u64, Error> {
        let depth = self.consumer()?.available()? as u64;
        self.stats.ring_depth(depth);
        for (i, sink) in self.sinks.iter().enumerate() {
            self.stats.sink_status(i, sink.status());
            self.events.clear();
            sink.events(&mut self.events);
            self.stats.events(&self.events)?;
        }
        self.stats.flush();
        Ok(depth)
    }

    /// Marks the record at `pos` settled by sink `i`.
    fn settle(&mut self, i: usize, pos: u64, settled: Settled) -> Result<(), Error> {
        let idx = usize::try_from(pos.wrapping_sub(self.base)).unwrap_or(usize::MAX);
        let entry = self
            .pending
            .get_mut(idx)
            .ok_or(Error::Internal("a sink settled a record that is not pending"))?;
        entry.waiting &= !(1 << i);
        match settled {
            Settled::Delivered => entry.delivered |= 1 << i,
            Settled::Dropped => {
                entry.dropped_by.get_or_insert(i);
            }
        }
        Ok(())
    }

    async fn poll_sinks(&mut self) -> Result<(), Error> {
        for i in 0..self.sinks.len() {
            let mut settled = std::mem::take(&mut self.settled);
            self.sinks[i].poll(&mut settled).await?;
            for (pos, s) in settled.drain(..) {
                self.settle(i, pos, s)?;
            }
            self.settled = settled;
        }
        Ok(())
    }

    /// Releases the longest prefix of settled records from the ring and counts them.
    fn commit(&mut self) -> Result<(), Error> {
        let n = self.pending.iter().take_while(|e| e.waiting == 0).count();
        if n == 0 {
            return Ok(());
        }
        for entry in self.pending.drain(..n) {
            let outcome = match (entry.unsafe_id, entry.dropped_by) {
                (true, _) => Outcome::UnsafeSubject,
                (false, Some(i)) => Outcome::BacklogFull(i),
                (false, None) => Outcome::Forwarded,
            };
            self.stats.released(outcome, entry.delivered);
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
        for next in &mut self.next {
            *next = (*next).max(self.base);
        }
        Ok(())
    }

    /// Copies up to a batch of new records from the ring into `pending`. Returns how many.
    fn read_new(&mut self) -> Result<usize, Error> {
        let skip = self.pending.len();
        let want = self.settings.window.saturating_sub(skip).min(BATCH);
        if want == 0 {
            return Ok(0);
        }
        let all = if self.sinks.len() >= 32 {
            u32::MAX
        } else {
            (1u32 << self.sinks.len()) - 1
        };
        let consumer = self
            .consumer
            .as_mut()
            .ok_or(Error::Internal("the consumer is lent out"))?;
        let chunk = consumer.read_chunk(skip + want)?;
        let before = self.pending.len();
        for agg in chunk.iter().skip(skip) {
            let unsafe_id = agg.device().bytes().is_empty() || agg.sensor().bytes().is_empty();
            if unsafe_id {
                warn!("dropping an aggregate: {}", records::names::drop_reason::UNSAFE_SUBJECT);
            }
            self.pending.push_back(Entry {
                agg: *agg,
                waiting: if unsafe_id { 0 } else { all },
                delivered: 0,
                dropped_by: None,
                unsafe_id,
            });
        }
        Ok(self.pending.len() - before)
    }

    /// Whether sink `i` may be offered records now.
    fn may_offer(&self, i: usize) -> bool {
        let sink = &self.sinks[i];
        sink.ready() && (self.drain_deadline.is_none() || sink.status().connected)
    }

    /// Offers each sink up to a batch of the records it has not seen. Returns how many it took.
    async fn offer_all(&mut self) -> Result<usize, Error> {
        let mut offered = 0;
        for i in 0..self.sinks.len() {
            let end = self.base.wrapping_add(self.pending.len() as u64);
            let mut n = 0;
            while self.next[i] < end && n < BATCH && self.may_offer(i) {
                let pos = self.next[i];
                let entry = &self.pending[(pos - self.base) as usize];
                if entry.waiting & (1 << i) == 0 {
                    self.next[i] += 1;
                    continue;
                }
                let agg = entry.agg;
                match self.sinks[i].offer(pos, &agg).await? {
                    Offered::Pending => {}
                    Offered::Now(settled) => self.settle(i, pos, settled)?,
                    Offered::Busy => break,
                }
                self.next[i] += 1;
                n += 1;
            }
            offered += n;
        }
        Ok(offered)
    }

    /// Waits for something to do: new records, a sink's news, or a tick.
    async fn wait(&mut self) -> Result<(), Error> {
        let any_ready = (0..self.sinks.len()).any(|i| self.may_offer(i));
        if self.pending.is_empty() && any_ready {
            // Nothing held: sleep on the ring itself (futex), off the runtime thread.
            wait_for_records(&mut self.consumer, self.settings.strategy, IDLE_WAIT).await?;
            return Ok(());
        }
        // Records held, so the ring's own wait would return at once (it waits for records
        // beyond the committed position): poll it instead, more slowly the longer it stays quiet.
        let pause = if any_ready {
            self.idle_polls = (self.idle_polls + 1).min(6);
            Duration::from_millis(1 << self.idle_polls)
        } else {
            TICK
        };
        let mut waits: Vec<_> = self.sinks.iter_mut().map(|s| s.wait()).collect();
        waits.push(Box::pin(tokio::time::sleep(pause)));
        select_all(waits).await;
        Ok(())
    }
}
