//! The stage process: its segments, how it resumes after a restart, and one turn of its loop.
//! [`Stage`] is aggd's part of the frame every stage runs in (`stage_runtime::Stage`): `main.rs`
//! only names it.
//!
//! # Segments
//!
//! aggd consumes the readings ring and produces into the aggregates ring (both created by the
//! supervisor), writes its slot of the stats page, and owns the `windows` table and the `strings`
//! table of its key text, which it creates itself (adopting ones that are already there with the
//! same shape, so a restart keeps every key's window).
//!
//! # The loop
//!
//! One turn (`step`) reads a chunk of up to [`CHUNK`] readings in place, folds each
//! (no allocation), publishes the counters, records the counted position, and only then commits
//! the chunk to the ring. If the chunk drained the ring, every boundary due by the wall clock is
//! emitted; if the ring has stayed non-empty for a whole emit interval, they are emitted anyway
//! (readings still queued from before them then count as late). "Due by the wall clock" lags the
//! clock by [`emit_grace`]: a reading stamped just before a boundary may still be in ingestd's
//! batch or in decoded when the clock passes it, and emitting at once would clamp it into the
//! next pane (`late.clamped`). A reading stamped after the boundary that arrives within the grace
//! emits the boundary at once anyway (event time, see [`crate::fold`]). An empty ring is waited on
//! (`wait_for_records` with the `[wait]` strategy) until the next boundary, or at most 250 ms
//! (the heartbeat; also how soon an idle aggd sees SIGTERM), so emissions are on time with no
//! input.
//!
//! Emitting never waits for the aggregates ring: what does not fit is counted as
//! `dropped.aggregates_ring_full` and the loop goes back to the readings.
//!
//! # Positions after a restart
//!
//! Three readings-ring positions: the ring's read position `r` (committed last), `COUNTED` and
//! `FOLDED` in the table, with `r ≤ COUNTED ≤ FOLDED ≤ write position` at every instruction.
//! On start, readings in `[r, FOLDED)` are already in the windows and are not folded again;
//! those in `[COUNTED, FOLDED)` were not yet counted and are counted now (their verdicts are
//! recomputed from the readings). If the positions are impossible (a new table, or a readings
//! ring that was recreated), aggd starts at `r`.
//!
//! A kill between the counter flush and the store of `COUNTED` that follows it counts that
//! chunk's readings twice in the stats page; everything else about counters is exact, except
//! that the event counters (`aggregates.*`, `evicted.*`, `keys.*`, `*.clamped`) of the chunk in
//! progress are lost with the process.

use std::time::{Duration, Instant};

use records::names::segment;
use records::{Aggregate, Reading};
use shm_ring::ring::WaitStrategy;
use shm_ring::segment::{Created, IfExists, Pages};
use shm_ring::table::{create_table, create_table_with, Table};
use shm_ring::{Consumer, Producer, SegmentName};
use stage_runtime::{unix_ms, Context, Error};
use telemetry_config::Config;
use tracing::{info, warn};

use crate::counters::Counters;
use crate::store::{TableStore, Tables, Word};
use crate::window::{key_of, Opened, Reject, WindowConfig, Windows};

/// Readings taken from the ring per turn.
pub const CHUNK: usize = 1024;
/// How many readings ahead of the fold the index slot and the row are prefetched.
const PREFETCH_KEY: usize = 8;
const PREFETCH_ROW: usize = 4;
/// How many readings ahead the key's device text (named by the row, so after the row) is
/// prefetched.
const PREFETCH_TEXT: usize = 2;
const _: () = assert!(PREFETCH_TEXT < PREFETCH_ROW && PREFETCH_ROW < PREFETCH_KEY);

/// Longest idle wait: the heartbeat interval (at most a quarter of the hang timeout) and how
/// soon an idle aggd notices SIGTERM.
const MAX_IDLE_WAIT_MS: u64 = 250;

/// The running stage.
pub struct Stage {
    consumer: Consumer<Reading>,
    producer: Producer<Aggregate>,
    windows: Windows<TableStore>,
    counters: Counters,
    wait: WaitStrategy,
    heartbeat_ms: u64,
    lag_grace: Duration,
    emit_grace_ms: u64,
    undrained_since: Option<Instant>,
}

/// How long after a boundary, by the wall clock, aggd emits it when its input is drained: the
/// longest a reading can spend between ingestd's stamp and aggd with the configured latency
/// budgets (ingestd's longest pause, then a nap phase in decoded and one in aggd), plus 50 ms
/// for scheduling. Users see it only as that much later emissions (5 s apart by default).
pub fn emit_grace(config: &Config) -> Duration {
    let naps = Duration::from_micros(config.wait.nap_us.saturating_mul(u64::from(config.wait.naps)));
    config.ingestd.longest_pause() + 2 * naps + Duration::from_millis(50)
}

impl stage_runtime::Stage for Stage {
    /// Opens the windows table, attaches to the rings and the stats page, and resumes where a
    /// predecessor stopped.
    fn start(ctx: &mut Context) -> Result<Stage, Error> {
        let config = ctx.config();
        let cfg = WindowConfig::from_config(&config.aggd).ok_or_else(|| {
            Error::config(format!(
                "config: aggd.window_ms = {} is not 1 to 64 × aggd.emit_every_ms = {}",
                config.aggd.window_ms, config.aggd.emit_every_ms
            ))
        })?;
        let (windows, opened) = open_windows(&ctx.segment(segment::WINDOWS)?, &ctx.segment(segment::STRINGS)?, cfg)?;
        let consumer = ctx.consumer::<Reading>(segment::READINGS)?;
        let producer = ctx.producer::<Aggregate>(segment::AGGREGATES)?;
        let counters = Counters::new(ctx.counters()?)?;
        let config = ctx.config();
        let mut stage = Stage {
            consumer,
            producer,
            windows,
            counters,
            wait: ctx.wait_strategy(),
            heartbeat_ms: (config.supervisor.hang_timeout_ms / 4).clamp(10, MAX_IDLE_WAIT_MS),
            lag_grace: Duration::from_millis(cfg.panes.emit_every_ms),
            emit_grace_ms: emit_grace(config).as_millis() as u64,
            undrained_since: None,
        };
        if opened.replaced {
            stage.counters.windows_replaced();
        }
        let resumed = stage.resume()?;
        let w = &stage.windows;
        let max_keys = u64::from(cfg.max_keys);
        info!(
            window_ms = cfg.panes.window_ms(),
            emit_every_ms = cfg.panes.emit_every_ms,
            max_keys,
            idle_ttl_ms = cfg.idle_ttl_ms,
            statistics = %cfg.statistics,
            pane_columns = %cfg.row_shape().columns,
            fresh = opened.fresh,
            keys = opened.rows.live,
            invalid_rows = opened.rows.invalid + opened.rows.duplicate,
            fold_undone = opened.journal_undone,
            emission_resumed = resumed,
            position = w.folded(),
            table_bytes = w.store_bytes(),
            strings_bytes = w.strings_bytes(),
            texts = w.texts(),
            table_bytes_per_key = w.store_bytes() as u64 / max_keys,
            heap_bytes_per_key = w.heap_bytes() as u64 / max_keys,
            "aggd running"
        );
        if opened.rows.invalid + opened.rows.duplicate > 0 {
            warn!(
                invalid = opened.rows.invalid,
                duplicate = opened.rows.duplicate,
                "windows table rows failed validation and were freed"
            );
        }
        Ok(stage)
    }

    /// One turn of the loop: fold a chunk, emit what is due, or wait for input.
    fn step(&mut self) -> Result<(), Error> {
        let n = self.fold_chunk(unix_ms())?;
        let grace = self.emit_grace_ms;
        let due = || unix_ms().saturating_sub(grace);
        if n < CHUNK {
            self.undrained_since = None;
            self.windows.emit_due(due(), &mut self.producer);
        } else {
            let since = *self.undrained_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= self.lag_grace {
                self.undrained_since = None;
                self.windows.emit_due(due(), &mut self.producer);
            }
        }
        self.publish()?;
        if n == 0 {
            let timeout = self.windows.ms_until_next_boundary(due()).clamp(1, self.heartbeat_ms);
            self.consumer
                .wait_for_records(&self.wait, Duration::from_millis(timeout))?;
        }
        Ok(())
    }

    /// Folds what is in the readings ring now, emits the open pane's boundary early so that every
    /// reading is in an emitted aggregate (see `Windows::flush`), then publishes the counters
    /// (SIGTERM). The windows stay in the table for the next start.
    fn drain(mut self) -> Result<(), Error> {
        let mut left = self.consumer.available()?;
        while left > 0 {
            let n = self.fold_chunk(unix_ms())?;
            if n == 0 {
                break;
            }
            left = left.saturating_sub(n);
        }
        self.windows.flush(unix_ms(), &mut self.producer);
        self.publish()?;
        info!(
            keys = self.windows.keys(),
            position = self.windows.folded(),
            "drained the readings ring"
        );
        Ok(())
    }
}

impl Stage {
    /// Reconciles the ring and table positions, counts readings folded but not yet counted, and
    /// finishes an interrupted emission. Returns whether there was one.
    fn resume(&mut self) -> Result<bool, shm_ring::Error> {
        let r = self.consumer.position();
        let available = self.consumer.available()? as u64;
        let (folded, counted) = (self.windows.folded(), self.windows.counted());
        let (f, c) = (folded.wrapping_sub(r), counted.wrapping_sub(r));
        if c > f || f > available {
            if folded != 0 || counted != 0 {
                warn!(
                    ring_position = r,
                    folded, counted, "the windows table's positions do not fit the readings ring (was it recreated?); resuming at the ring's position"
                );
            }
            self.windows.reset_positions(r);
        } else if f > 0 {
            let chunk = self.consumer.read_chunk(f as usize)?;
            for reading in chunk.iter().skip(c as usize) {
                self.counters.reading(Reject::check(reading));
            }
            self.counters.flush();
            self.windows.set_counted(folded);
            chunk.commit_all();
            info!(
                skipped = f,
                counted = f - c,
                "readings already folded before the restart"
            );
        }
        let resumed = self.windows.finish_interrupted_emission(&mut self.producer);
        self.publish()?;
        Ok(resumed)
    }

    /// Reads one chunk, folds it, counts it, and commits it. Returns its length.
    fn fold_chunk(&mut self, now: u64) -> Result<usize, shm_ring::Error> {
        let Stage {
            consumer,
            producer,
            windows,
            counters,
            ..
        } = self;
        let mut pos = consumer.position();
        let chunk = consumer.read_chunk(CHUNK)?;
        let n = chunk.len();
        if n == 0 {
            return Ok(0);
        }
        let mut now = now;
        let mut clock = unix_ms;
        // Rows are spread over the table, so folding is bound by cache misses: start loading
        // the index slot 8 readings ahead, the row 4 ahead and the device text the row names 2
        // ahead, so that the misses overlap. Each
        // reading's key hash is computed once, 8 ahead, and kept until its fold.
        let (a, b) = chunk.as_slices();
        let ahead = |i: usize| if i < a.len() { a.get(i) } else { b.get(i - a.len()) };
        let mut tags = [0u64; PREFETCH_KEY];
        for (j, tag) in tags.iter_mut().enumerate() {
            if let Some(x) = ahead(j) {
                *tag = key_of(x);
                windows.prefetch_key(*tag);
            }
        }
        for (i, r) in chunk.iter().enumerate() {
            let tag = tags[i % PREFETCH_KEY];
            if let Some(x) = ahead(i + PREFETCH_KEY) {
                let t = key_of(x);
                windows.prefetch_key(t);
                tags[i % PREFETCH_KEY] = t;
            }
            if let Some(x) = ahead(i + PREFETCH_ROW) {
                windows.prefetch_row(x, tags[(i + PREFETCH_ROW) % PREFETCH_KEY]);
            }
            if ahead(i + PREFETCH_TEXT).is_some() {
                windows.prefetch_text(tags[(i + PREFETCH_TEXT) % PREFETCH_KEY]);
            }
            if let Some(due) = windows.due_before(r, &mut now, &mut clock) {
                windows.emit_through(due, producer);
            }
            let verdict = windows.fold_keyed(pos, r, tag);
            counters.reading(verdict);
            pos = pos.wrapping_add(1);
        }
        counters.tally(windows.take_tally());
        counters.flush();
        windows.set_counted(pos);
        chunk.commit(n);
        Ok(n)
    }

    /// Publishes the counters, the heartbeat and the readings ring's depth.
    fn publish(&mut self) -> Result<(), shm_ring::Error> {
        self.counters.tally(self.windows.take_tally());
        self.counters.keys_tracked(u64::from(self.windows.keys()));
        self.counters.flush();
        let depth = self.consumer.available()? as u64;
        self.counters.slot().set_ring_depth(segment::READINGS, depth);
        Ok(())
    }

    /// The windows (for inspection).
    pub fn windows(&self) -> &Windows<TableStore> {
        &self.windows
    }
}

/// Creates (or adopts) and opens the windows table. A table of another shape (the window or key
/// settings changed, or `[aggd] statistics` needs other pane columns) is replaced by a new one:
/// its windows cannot be carried over. That is logged, and `Opened::replaced` says so (the stage
/// counts it as `windows.replaced`).
pub fn open_windows(
    name: &SegmentName,
    strings: &SegmentName,
    cfg: WindowConfig,
) -> Result<(Windows<TableStore>, Opened), shm_ring::Error> {
    let mut replaced = false;
    for _ in 0..2 {
        match retry(|| create_table::<Word>(name, cfg.words(), IfExists::Adopt))? {
            Created::Replaced { reason } => {
                warn!(segment = %name, reason, statistics = %cfg.statistics, "replaced the windows table; window state starts afresh");
                replaced = true;
            }
            Created::New => info!(segment = %name, "created the windows table"),
            Created::Adopted { .. } => {}
        }
        // The text no valid row names is free, whatever the table held: a new strings table
        // under adopted rows only invalidates those rows (counted on start). Its pages are left
        // to first touch: it is sized for three distinct texts per key, and real keys share
        // most of theirs (a device's sensors), so reserving it would cost ~168 B per key of
        // max_keys that is never written (docs/decisions.md D1).
        if let Created::Replaced { reason } =
            retry(|| create_table_with::<Word>(strings, cfg.string_words(), IfExists::Adopt, Pages::OnFirstTouch))?
        {
            warn!(segment = %strings, reason, "replaced the key text table");
        }
        let tables = Tables {
            rows: TableStore(retry(|| Table::<Word>::attach(name))?),
            strings: TableStore(retry(|| Table::<Word>::attach(strings))?),
        };
        match Windows::open(tables, cfg, unix_ms()) {
            Ok((windows, mut opened)) => {
                opened.replaced = replaced;
                return Ok((windows, opened));
            }
            Err(mismatch) => {
                warn!(segment = %name, reason = mismatch.reason, "the windows table has another shape; window state starts afresh");
                replaced = true;
                drop(mismatch.store);
                shm_ring::segment::remove(name)?;
                shm_ring::segment::remove(strings)?;
            }
        }
    }
    Err(shm_ring::Error::InvalidParameter {
        reason: format!("the windows table {name} keeps another shape after being recreated"),
    })
}

/// Retries `f` while another process still holds the role (a predecessor that is exiting), with
/// the patience every stage attaches with.
fn retry<T>(f: impl FnMut() -> Result<T, shm_ring::Error>) -> Result<T, shm_ring::Error> {
    stage_runtime::patiently(stage_runtime::PATIENCE, f)
}
