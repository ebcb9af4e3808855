//! The sliding windows: folding readings into panes, emitting one aggregate per key at each
//! boundary, evicting keys, and recovering after a kill.
//!
//! # Which pane a reading goes to
//!
//! A reading's time is its `received_ms` (stamped by ingestd). The *open pane* `s` is the pane
//! after the last emitted boundary (`SEALED`): panes before it are sealed, their aggregates are
//! out. A reading whose time falls in pane `p`:
//!
//! - `p == s`: goes to pane `s`.
//! - `p < s` (**late**: its pane was already emitted, for example it sat in the readings ring
//!   across a boundary): clamped into the open pane `s`, and counted (`late.clamped`). It is
//!   never dropped, and never rewrites an aggregate that is already out.
//! - `p > s` (**ahead** of the open pane): the reading proves the boundaries up to `p` have
//!   passed, so they are emitted first (event time), then the reading goes to pane `p`. This is
//!   what makes a restarted aggd catching up on a backlog put each queued reading in its own
//!   pane. But never beyond the wall clock: if `p` is after aggd's own clock (re-read to be
//!   sure), the reading is clamped into the current wall-clock pane and counted (`early.clamped`),
//!   so a reading stamped in the future cannot make aggd emit windows early.
//!
//! Boundaries are also emitted by the wall clock when the readings ring is drained (see
//! [`crate::stage`]), so emission happens on time with no input at all. After a long stop, at
//! most one window of boundaries is emitted to catch up (later ones would be empty). A wall
//! clock stepped back by less than a window just delays the next emission; stepped back by more,
//! it would stall emission until it caught up, so every key is forgotten instead (counted,
//! `evicted.clock`) and the windows restart at the clock's pane.
//!
//! Every reading of a key therefore lands in a pane no older than the key's previous one, which
//! is why the key's latest value is always in its newest pane and needs no per-pane copy.
//!
//! # Emission
//!
//! At boundary `b` every key with samples in panes `b−P ..= b−1` gets one aggregate: the merge
//! of those panes (count, min and max exact; the sum and the sum of squares are sums of pane
//! sums, so they equal sample-by-sample sums up to float rounding) and the key's latest value,
//! exact too. Keys with
//! no sample in the window are skipped. Work is one pass over the rows in use (`O(keys × P)`).
//! A key with no sample for `idle_ttl_ms` is evicted during that pass (`evicted.idle`); since
//! `idle_ttl_ms ≥ window_ms`, its window is empty by then and nothing is lost.
//!
//! # Capacity
//!
//! When all `max_keys` rows are in use, a new key evicts the least recently seen key (pane
//! granularity), counted as `evicted.capacity`: that key's samples leave the windows early.
//!
//! # A kill at any instruction
//!
//! The rows and the bookkeeping words are in shared memory; the index is rebuilt on start. The
//! writes of one reading's fold are ordered (compiler fences, `Release` stores of the words):
//!
//! 1. find or insert the key (a row is written completely before its tag; a victim's tag is
//!    cleared before the row is reused);
//! 2. advance the key's newest pane: clear the panes that fall out of its ring, then store
//!    `head` (idempotent: redoing it changes nothing);
//! 3. write the **undo journal**: the target pane's five fields and the key's `last`, then
//!    `J_POS = position + 1`;
//! 4. fold the value into the pane and `last`;
//! 5. store `FOLDED = position + 1`.
//!
//! On start, if `J_POS == FOLDED + 1`, the fold of reading `FOLDED` was between 3 and 5: the
//! journal is copied back, undoing any part of step 4, and the reading is folded again from the
//! ring. Otherwise step 4 had not begun (or was complete and `FOLDED` says so). So **each
//! reading is folded exactly once**, whatever instruction aggd is killed at.
//!
//! An emission stores `EMIT_CURSOR` (boundary, next row) after each batch handed to the ring and
//! `SEALED = b` at the end. A restarted aggd finishes an interrupted emission before anything
//! else, starting after the cursor, and after the key of the last aggregate in the ring if that
//! one belongs to the same boundary (a kill between the ring publish and the cursor store). So
//! each (key, boundary) aggregate is handed on at most once.

use std::sync::atomic::{compiler_fence, Ordering};

use records::{Aggregate, FixedText, Reading};

use crate::clock::Panes;
use crate::keys::{Keys, Rebuilt};
use crate::pane::Partial;
use crate::row::{self, key_hash, row_words, RowMut};
use crate::sink::Sink;
use crate::store::{self, Store};

/// Aggregates handed to the sink at once; also the granularity of the emission cursor.
const EMIT_BATCH: usize = 256;

/// A test hook standing for "the process is killed here": a countdown that panics with
/// [`kill::Killed`] when it reaches the armed point. Compiled out of non-test builds.
#[cfg(test)]
pub(crate) mod kill {
    use std::cell::Cell;

    thread_local! {
        static COUNTDOWN: Cell<u64> = const { Cell::new(0) };
    }

    /// The panic payload of a simulated kill.
    pub struct Killed;

    /// Kill at the `n`-th kill point from now (0: never).
    pub fn arm(n: u64) {
        COUNTDOWN.with(|c| c.set(n));
    }

    pub fn point() {
        COUNTDOWN.with(|c| match c.get() {
            0 => {}
            1 => {
                c.set(0);
                std::panic::panic_any(Killed);
            }
            n => c.set(n - 1),
        });
    }
}

macro_rules! kill_point {
    () => {
        #[cfg(test)]
        kill::point();
    };
}

/// The persistent shape of the windows and the eviction settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowConfig {
    /// Panes and pane length.
    pub panes: Panes,
    /// Rows of the table: most keys tracked at once.
    pub max_keys: u32,
    /// A key with no sample for this long is evicted (at least the window length).
    pub idle_ttl_ms: u64,
}

impl WindowConfig {
    /// From the `[aggd]` section (already checked by the config crate).
    pub fn from_config(aggd: &telemetry_config::Aggd) -> Option<WindowConfig> {
        Some(WindowConfig {
            panes: Panes::new(aggd.window_ms, aggd.emit_every_ms)?,
            max_keys: aggd.max_keys.max(1),
            idle_ttl_ms: aggd.idle_ttl_ms.max(aggd.window_ms),
        })
    }

    /// Words of the table's rows.
    pub fn words(&self) -> u64 {
        u64::from(self.max_keys) * row_words(self.panes.panes as usize) as u64
    }
}

/// Why a reading was not folded (each is an `error.*` counter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reject {
    /// The value is NaN or infinite (decoded should have refused it).
    NonFinite,
    /// The device or sensor id is empty (decoded should have refused it).
    EmptyId,
    /// The key's pane already holds `u32::MAX` samples.
    PaneFull,
}

impl Reject {
    /// The reading's verdict from its own fields (everything but [`Reject::PaneFull`]).
    pub fn check(r: &Reading) -> Result<(), Reject> {
        if !r.value.is_finite() {
            Err(Reject::NonFinite)
        } else if r.device().bytes().is_empty() || r.sensor().bytes().is_empty() {
            Err(Reject::EmptyId)
        } else {
            Ok(())
        }
    }
}

/// Events since the last [`Windows::take_tally`], for the stage's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Aggregates handed on.
    pub emitted: u64,
    /// Aggregates the sink refused (ring full).
    pub dropped: u64,
    /// Keys forgotten after `idle_ttl_ms` without a sample.
    pub evicted_idle: u64,
    /// Keys evicted to make room for a new key.
    pub evicted_capacity: u64,
    /// Keys added.
    pub inserted: u64,
    /// Readings clamped into the open pane because their pane was already emitted.
    pub late: u64,
    /// Readings clamped back to the wall-clock pane because they were stamped in the future.
    pub early: u64,
    /// Keys forgotten because the wall clock went back by more than a window.
    pub evicted_clock: u64,
}

/// What [`Windows::open`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opened {
    /// The table was new (or had never been initialised).
    pub fresh: bool,
    /// A fold interrupted by a kill was undone (its reading will be folded again).
    pub journal_undone: bool,
    /// Rows found.
    pub rows: Rebuilt,
}

/// The table does not hold windows of this shape (or is not ours).
pub struct Mismatch<S> {
    /// The store, untouched.
    pub store: S,
    /// What differs.
    pub reason: String,
}

/// A reading's key hash (its row's tag): what [`Windows::fold_keyed`] and the prefetches take.
#[inline]
pub fn key_of(r: &Reading) -> u64 {
    key_hash(r.device().bytes(), r.sensor().bytes())
}

/// The windows of every key, over a [`Store`].
pub struct Windows<S: Store> {
    store: S,
    cfg: WindowConfig,
    p: usize,
    idle_panes: u64,
    keys: Keys,
    sealed: u64,
    tally: Tally,
    batch: Vec<Aggregate>,
}

impl<S: Store> Windows<S> {
    /// Attaches to the windows in `store`: initialises a new (all-zero) store with the open pane
    /// at `now_ms`, or recovers an existing one (undoes an interrupted fold, re-validates and
    /// indexes the rows). Refuses a store of another shape.
    pub fn open(store: S, cfg: WindowConfig, now_ms: u64) -> Result<(Windows<S>, Opened), Mismatch<S>> {
        let p = cfg.panes.panes as usize;
        let shape = (cfg.panes.panes << 32) | u64::from(cfg.max_keys);
        let magic = store.word(store::MAGIC);
        let mut opened = Opened {
            fresh: magic == 0,
            journal_undone: false,
            rows: Rebuilt::default(),
        };
        let reason = if store.words().len() as u64 != cfg.words() {
            Some(format!("{} words, {} expected", store.words().len(), cfg.words()))
        } else if magic != 0 && magic != store::MAGIC_VALUE {
            Some(format!("magic {magic:#x}, {:#x} expected", store::MAGIC_VALUE))
        } else if magic != 0 && store.word(store::EMIT_EVERY) != cfg.panes.emit_every_ms {
            Some(format!(
                "emit_every_ms {} where {} is configured",
                store.word(store::EMIT_EVERY),
                cfg.panes.emit_every_ms
            ))
        } else if magic != 0 && store.word(store::SHAPE) != shape {
            let found = store.word(store::SHAPE);
            Some(format!(
                "{} panes × {} keys where {} × {} are configured",
                found >> 32,
                found as u32,
                cfg.panes.panes,
                cfg.max_keys
            ))
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(Mismatch { store, reason });
        }
        let mut store = store;
        if opened.fresh {
            // A new segment is all zeros: no row is in use. The magic goes last.
            store.set_word(store::EMIT_EVERY, cfg.panes.emit_every_ms);
            store.set_word(store::SHAPE, shape);
            store.set_word(store::SEALED, cfg.panes.pane_of(now_ms));
            for w in [
                store::FOLDED,
                store::COUNTED,
                store::EMIT_CURSOR,
                store::J_POS,
                store::ROWS_USED,
            ] {
                store.set_word(w, 0);
            }
            store.set_word(store::MAGIC, store::MAGIC_VALUE);
        } else {
            opened.journal_undone = undo_journal(&mut store, &cfg);
        }
        let sealed = store.word(store::SEALED);
        let rows_used = store.word(store::ROWS_USED);
        let (keys, rows) = Keys::rebuild(store.words_mut(), cfg.max_keys, p, sealed, rows_used);
        opened.rows = rows;
        Ok((
            Windows {
                store,
                cfg,
                p,
                idle_panes: cfg.panes.idle_panes(cfg.idle_ttl_ms),
                keys,
                sealed,
                tally: Tally::default(),
                batch: Vec::with_capacity(EMIT_BATCH),
            },
            opened,
        ))
    }

    /// Folds the reading at ring position `pos` into its key's window, emitting first the
    /// boundaries it shows have passed. `now` is the caller's recent wall-clock reading (ms),
    /// refreshed from `clock` if the reading looks ahead of it.
    pub fn fold<C, K>(
        &mut self,
        pos: u64,
        r: &Reading,
        now: &mut u64,
        clock: &mut C,
        sink: &mut K,
    ) -> Result<(), Reject>
    where
        C: FnMut() -> u64,
        K: Sink,
    {
        self.fold_keyed(pos, r, key_of(r), now, clock, sink)
    }

    /// [`Windows::fold`] with the reading's [`key_of`] already computed (for prefetching).
    pub fn fold_keyed<C, K>(
        &mut self,
        pos: u64,
        r: &Reading,
        tag: u64,
        now: &mut u64,
        clock: &mut C,
        sink: &mut K,
    ) -> Result<(), Reject>
    where
        C: FnMut() -> u64,
        K: Sink,
    {
        let verdict = Reject::check(r).and_then(|()| self.fold_value(pos, r, tag, now, clock, sink));
        kill_point!();
        self.store.set_word(store::FOLDED, pos.wrapping_add(1));
        verdict
    }

    /// Starts loading the index slot of the key whose [`key_of`] is `tag`: call a few readings
    /// ahead of [`Windows::fold_keyed`], so that the cache misses of many readings overlap.
    #[inline]
    pub fn prefetch_key(&self, tag: u64) {
        self.keys.prefetch_slot(tag);
    }

    /// Starts loading the row and pane `r` (whose [`key_of`] is `tag`) will be folded into
    /// (after [`Windows::prefetch_key`] for it, a little later).
    #[inline]
    pub fn prefetch_row(&self, r: &Reading, tag: u64) {
        if let Some(row) = self.keys.likely_row(tag) {
            let slot = self.cfg.panes.slot_of(self.cfg.panes.pane_of(r.received_ms));
            row::prefetch(self.store.words(), row, self.p, slot);
        }
    }

    fn fold_value<C: FnMut() -> u64, K: Sink>(
        &mut self,
        pos: u64,
        r: &Reading,
        tag: u64,
        now: &mut u64,
        clock: &mut C,
        sink: &mut K,
    ) -> Result<(), Reject> {
        let p = self.pane_for(r.received_ms, now, clock, sink);
        let (device, sensor, unit) = (r.device(), r.sensor(), r.unit());
        let (device, sensor, unit) = (device.bytes(), sensor.bytes(), unit.bytes());
        let row = match self.keys.find(self.store.words(), tag, device, sensor) {
            Some(row) => row,
            None => self.insert(tag, device, sensor, unit, p),
        } as usize;
        let slot = self.cfg.panes.slot_of(p);
        let (saved, last) = {
            let mut rm = RowMut::new(self.store.words_mut(), row, self.p);
            let head = rm.header.head;
            if p > head {
                for q in 1..=(p - head).min(self.p as u64) {
                    rm.panes.clear(self.cfg.panes.slot_of(head + q));
                }
                compiler_fence(Ordering::SeqCst);
                kill_point!();
                rm.header.head = p;
            }
            (rm.panes.save(slot), rm.header.last)
        };
        compiler_fence(Ordering::SeqCst);
        self.store.set_word(store::J_SLOT, ((row as u64) << 8) | slot as u64);
        for (i, w) in saved.into_iter().enumerate() {
            self.store.set_word(store::J_PANE + i, w);
        }
        self.store.set_word(store::J_LAST, last.to_bits());
        kill_point!();
        self.store.set_word(store::J_POS, pos.wrapping_add(1));
        compiler_fence(Ordering::SeqCst);
        kill_point!();
        let mut rm = RowMut::new(self.store.words_mut(), row, self.p);
        if !rm.panes.fold(slot, r.value) {
            return Err(Reject::PaneFull);
        }
        kill_point!();
        rm.header.last = r.value;
        rm.header.set_unit(unit);
        compiler_fence(Ordering::SeqCst);
        Ok(())
    }

    /// The pane a reading stamped `t` goes to (see the module docs), emitting the boundaries
    /// before it if it is ahead of the open pane.
    fn pane_for<C: FnMut() -> u64, K: Sink>(&mut self, t: u64, now: &mut u64, clock: &mut C, sink: &mut K) -> u64 {
        let s = self.sealed;
        let mut p = self.cfg.panes.pane_of(t);
        if p < s {
            self.tally.late += 1;
            return s;
        }
        if p > s {
            if p > self.cfg.panes.pane_of(*now) {
                *now = clock();
            }
            let cap = self.cfg.panes.pane_of(*now).max(s);
            if p > cap {
                self.tally.early += 1;
                p = cap;
            }
            self.emit_through(p, sink);
        }
        p
    }

    /// Adds a key with newest pane `p`, evicting the least recently seen key if the table is full.
    fn insert(&mut self, tag: u64, device: &[u8], sensor: &[u8], unit: &[u8], p: u64) -> u32 {
        let row = match self.keys.alloc() {
            Some(row) => row,
            None => {
                let victim = self
                    .keys
                    .lru_victim(self.store.words())
                    .expect("a full table has a victim");
                self.evict(victim as usize);
                self.tally.evicted_capacity += 1;
                self.keys.alloc().expect("a row was just freed")
            }
        };
        if u64::from(row) >= self.store.word(store::ROWS_USED) {
            self.store.set_word(store::ROWS_USED, u64::from(row) + 1);
        }
        {
            let mut rm = RowMut::new(self.store.words_mut(), row as usize, self.p);
            rm.header.set_key(device, sensor, unit);
            rm.header.head = p;
            rm.header.last = 0.0;
            rm.panes.clear_all();
        }
        compiler_fence(Ordering::SeqCst);
        kill_point!();
        RowMut::new(self.store.words_mut(), row as usize, self.p).header.tag = tag;
        compiler_fence(Ordering::SeqCst);
        self.keys.added(tag, row);
        self.tally.inserted += 1;
        row
    }

    /// Frees a row: its tag first (one store), then the index.
    fn evict(&mut self, row: usize) {
        let tag = row::tag(self.store.words(), row, self.p);
        row::clear_tag(self.store.words_mut(), row, self.p);
        compiler_fence(Ordering::SeqCst);
        kill_point!();
        self.keys.removed(self.store.words(), tag, row as u32);
    }

    /// Emits every boundary up to the wall-clock time `now_ms`.
    ///
    /// If the wall clock is more than a window behind the open pane, it was stepped back: the
    /// windows are in its future and would emit nothing until it caught up. Every key is then
    /// forgotten (`evicted.clock`) and the open pane restarts at the clock's pane.
    pub fn emit_due<K: Sink>(&mut self, now_ms: u64, sink: &mut K) {
        let pane = self.cfg.panes.pane_of(now_ms);
        if pane.saturating_add(self.cfg.panes.panes) < self.sealed {
            tracing::warn!(
                open_pane_ms = self.cfg.panes.boundary_ms(self.sealed),
                now_ms,
                keys = self.keys.live(),
                "the wall clock went back by more than a window; forgetting every window"
            );
            for r in 0..self.keys.high_water() as usize {
                if row::tag(self.store.words(), r, self.p) != 0 {
                    self.evict(r);
                    self.tally.evicted_clock += 1;
                }
            }
            self.set_sealed(pane);
            return;
        }
        self.emit_through(pane, sink);
    }

    /// Emits everything due by `now_ms` and then, ahead of time, the boundary that closes the
    /// open pane, so that every reading folded so far is in an emitted aggregate. For a clean
    /// stop: after it the segments may be removed and nothing accepted is lost. A later aggd
    /// that re-adopts the table treats readings stamped in that pane as late (`late.clamped`,
    /// folded into the next pane), so no (key, boundary) aggregate is ever emitted twice.
    pub fn flush<K: Sink>(&mut self, now_ms: u64, sink: &mut K) {
        self.emit_due(now_ms, sink);
        let open = self.sealed;
        self.emit_through(open + 1, sink);
    }

    /// Emits boundaries `sealed+1 ..= target`, making `target` the open pane. Boundaries more
    /// than P after the open pane have empty windows (nothing was folded in between) and are
    /// skipped in one step.
    fn emit_through<K: Sink>(&mut self, target: u64, sink: &mut K) {
        let s = self.sealed;
        if target <= s {
            return;
        }
        let last = target.min(s.saturating_add(self.cfg.panes.panes));
        for b in s + 1..=last {
            self.emit_boundary(b, sink);
        }
        if target > last {
            self.set_sealed(target);
        }
    }

    /// Finishes an emission that a kill interrupted (call once after [`Windows::open`], before
    /// folding). Returns true if there was one.
    pub fn finish_interrupted_emission<K: Sink>(&mut self, sink: &mut K) -> bool {
        let b = self.sealed + 1;
        let cursor = self.store.word(store::EMIT_CURSOR);
        let started = (cursor >> 32) as u32 == b as u32 && cursor as u32 > 0;
        let published = sink
            .last_handed_on()
            .is_some_and(|a| a.window_end_ms == self.cfg.panes.boundary_ms(b));
        if started || published {
            self.emit_boundary(b, sink);
        }
        started || published
    }

    fn emit_boundary<K: Sink>(&mut self, b: u64, sink: &mut K) {
        let started = std::time::Instant::now();
        let before = self.tally;
        let p = self.cfg.panes.panes;
        let mut start = 0u32;
        let cursor = self.store.word(store::EMIT_CURSOR);
        if (cursor >> 32) as u32 == b as u32 {
            start = cursor as u32;
        }
        if let Some(last) = sink.last_handed_on() {
            if last.window_end_ms == self.cfg.panes.boundary_ms(b) {
                let (d, s) = (last.device(), last.sensor());
                if let Some(r) =
                    self.keys
                        .find(self.store.words(), key_hash(d.bytes(), s.bytes()), d.bytes(), s.bytes())
                {
                    start = start.max(r + 1);
                }
            }
        }
        let (window_start, window_end) = self.cfg.panes.window_at(b);
        let hw = self.keys.high_water();
        let mut top = 0;
        for r in start..hw {
            let row = r as usize;
            if row::tag(self.store.words(), row, self.p) == 0 {
                continue;
            }
            let head = row::header(self.store.words(), row, self.p).head;
            if b >= head.saturating_add(1 + self.idle_panes) {
                self.evict(row);
                self.tally.evicted_idle += 1;
                continue;
            }
            top = r + 1;
            // Panes in the window (b−P ..= b−1) that the row still holds (head−P+1 ..= head);
            // head ≤ b−1 always, since the head is never past the open pane.
            let lo = b.saturating_sub(p).max((head + 1).saturating_sub(p));
            if head < lo {
                continue;
            }
            let rm = RowMut::new(self.store.words_mut(), row, self.p);
            let mut w = Partial::EMPTY;
            for q in lo..=head.min(b - 1) {
                w.merge(&rm.panes.get(self.cfg.panes.slot_of(q)));
            }
            if w.count == 0 {
                continue;
            }
            let h = &*rm.header;
            let Some(mut agg) = Aggregate::new(h.device(), h.sensor(), h.unit()) else {
                continue;
            };
            agg.window_start_ms = window_start;
            agg.window_end_ms = window_end;
            agg.count = w.count;
            agg.sum = w.sum;
            agg.sum_sq = w.sum_sq;
            agg.min = w.min;
            agg.max = w.max;
            agg.last = h.last;
            self.batch.push(agg);
            if self.batch.len() == EMIT_BATCH {
                self.hand_on(b, r + 1, sink);
            }
        }
        self.hand_on(b, hw, sink);
        if start == 0 {
            self.keys.shrink_high_water(top);
        }
        self.set_sealed(b);
        tracing::debug!(
            window_end_ms = window_end,
            resumed_at_row = start,
            rows = hw,
            emitted = self.tally.emitted - before.emitted,
            dropped = self.tally.dropped - before.dropped,
            evicted_idle = self.tally.evicted_idle - before.evicted_idle,
            elapsed_us = started.elapsed().as_micros() as u64,
            "emitted"
        );
    }

    /// Hands the batch to the sink and records that rows before `next_row` are done for `b`.
    fn hand_on<K: Sink>(&mut self, b: u64, next_row: u32, sink: &mut K) {
        if !self.batch.is_empty() {
            let n = sink.offer(&self.batch);
            self.tally.emitted += n as u64;
            self.tally.dropped += (self.batch.len() - n) as u64;
            self.batch.clear();
            kill_point!();
        }
        self.store
            .set_word(store::EMIT_CURSOR, (u64::from(b as u32) << 32) | u64::from(next_row));
    }

    fn set_sealed(&mut self, b: u64) {
        compiler_fence(Ordering::SeqCst);
        kill_point!();
        self.store.set_word(store::SEALED, b);
        self.sealed = b;
    }

    /// Milliseconds from `now_ms` to the next boundary (0 if it has passed).
    pub fn ms_until_next_boundary(&self, now_ms: u64) -> u64 {
        self.cfg.panes.boundary_ms(self.sealed + 1).saturating_sub(now_ms)
    }

    /// The open pane.
    pub fn sealed(&self) -> u64 {
        self.sealed
    }

    /// Readings-ring position up to which readings are folded.
    pub fn folded(&self) -> u64 {
        self.store.word(store::FOLDED)
    }

    /// Readings-ring position up to which readings are counted in the stats page.
    pub fn counted(&self) -> u64 {
        self.store.word(store::COUNTED)
    }

    /// Records that readings before `pos` are counted.
    pub fn set_counted(&self, pos: u64) {
        self.store.set_word(store::COUNTED, pos);
    }

    /// Starts over at ring position `pos` (the table does not belong to this readings ring).
    pub fn reset_positions(&self, pos: u64) {
        self.store.set_word(store::J_POS, 0);
        self.store.set_word(store::FOLDED, pos);
        self.store.set_word(store::COUNTED, pos);
    }

    /// The events since the last call.
    pub fn take_tally(&mut self) -> Tally {
        std::mem::take(&mut self.tally)
    }

    /// Keys tracked.
    pub fn keys(&self) -> u32 {
        self.keys.live()
    }

    /// Bytes of the store (the table segment).
    pub fn store_bytes(&self) -> usize {
        self.store.bytes()
    }

    /// Heap bytes that grow with `max_keys` (index, free set, eviction candidates) plus the
    /// emission batch.
    pub fn heap_bytes(&self) -> usize {
        self.keys.heap_bytes() + self.batch.capacity() * std::mem::size_of::<Aggregate>()
    }

    /// The configuration.
    pub fn config(&self) -> &WindowConfig {
        &self.cfg
    }

    /// Gives the store back (tests: a "restarted process" opens it again).
    pub fn into_store(self) -> S {
        self.store
    }
}

/// Undoes the fold of reading `FOLDED` if the journal says it was in progress. Idempotent.
fn undo_journal<S: Store>(store: &mut S, cfg: &WindowConfig) -> bool {
    let j = store.word(store::J_POS);
    if j == 0 || j != store.word(store::FOLDED).wrapping_add(1) {
        return false;
    }
    let at = store.word(store::J_SLOT);
    let (row, slot) = (at >> 8, (at & 0xff) as usize);
    let p = cfg.panes.panes as usize;
    if row < u64::from(cfg.max_keys) && slot < p {
        let pane: [u64; 5] = std::array::from_fn(|i| store.word(store::J_PANE + i));
        let last = f64::from_bits(store.word(store::J_LAST));
        let mut rm = RowMut::new(store.words_mut(), row as usize, p);
        rm.panes.restore(slot, pane);
        rm.header.last = last;
    }
    compiler_fence(Ordering::SeqCst);
    store.set_word(store::J_POS, 0);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::Bounded;
    use crate::store::MemStore;

    const T0: u64 = 1_700_000_000_000;

    fn cfg(window_ms: u64, emit_every_ms: u64, max_keys: u32) -> WindowConfig {
        WindowConfig {
            panes: Panes::new(window_ms, emit_every_ms).unwrap(),
            max_keys,
            idle_ttl_ms: window_ms,
        }
    }

    fn open(c: WindowConfig, now: u64) -> Windows<MemStore> {
        let (w, opened) = Windows::open(MemStore::new(c.words() as usize), c, now).ok().unwrap();
        assert!(opened.fresh);
        w
    }

    fn reading(dev: &str, value: f64, t: u64) -> Reading {
        let mut r = Reading::new(dev.as_bytes(), b"temp", b"C", value, 0).unwrap();
        r.received_ms = t;
        r
    }

    fn fold(
        w: &mut Windows<MemStore>,
        pos: u64,
        r: &Reading,
        now: u64,
        sink: &mut Vec<Aggregate>,
    ) -> Result<(), Reject> {
        let mut n = now;
        w.fold(pos, r, &mut n, &mut || now, sink)
    }

    #[test]
    fn a_window_slides_pane_by_pane() {
        // 3 panes of 100 ms.
        let mut w = open(cfg(300, 100, 8), T0);
        let mut out = Vec::new();
        fold(&mut w, 0, &reading("a", 1.0, T0 + 10), T0 + 10, &mut out).unwrap();
        fold(&mut w, 1, &reading("a", 5.0, T0 + 20), T0 + 20, &mut out).unwrap();
        assert!(out.is_empty());
        w.emit_due(T0 + 100, &mut out);
        assert_eq!(out.len(), 1);
        let a = out[0];
        assert_eq!((a.window_start_ms, a.window_end_ms), (T0 - 200, T0 + 100));
        assert_eq!(
            (a.count, a.sum, a.min, a.max, a.last, a.mean()),
            (2, 6.0, 1.0, 5.0, 5.0, 3.0)
        );
        assert_eq!(a.device().text(), "a");
        assert_eq!(a.unit().text(), "C");
        fold(&mut w, 2, &reading("a", -2.0, T0 + 150), T0 + 150, &mut out).unwrap();
        w.emit_due(T0 + 200, &mut out);
        assert_eq!(
            (out[1].count, out[1].min, out[1].max, out[1].last),
            (3, -2.0, 5.0, -2.0)
        );
        // T0+300 still covers T0..T0+300; T0+400 keeps -2 only; T0+500 is empty.
        w.emit_due(T0 + 300, &mut out);
        w.emit_due(T0 + 400, &mut out);
        w.emit_due(T0 + 500, &mut out);
        let counts: Vec<u64> = out.iter().map(|a| a.count).collect();
        assert_eq!(counts, [2, 3, 3, 1]);
        assert_eq!(out[3].min, -2.0);
        // Empty windows are not emitted; the idle key is evicted once idle_ttl has passed.
        w.emit_due(T0 + 600, &mut out);
        assert_eq!(out.len(), 4);
        assert_eq!(w.keys(), 0);
        assert_eq!(w.take_tally().evicted_idle, 1);
    }

    #[test]
    fn late_readings_go_to_the_open_pane_and_early_ones_to_the_wall_clock_pane() {
        let mut w = open(cfg(300, 100, 8), T0 + 50);
        let mut out = Vec::new();
        w.emit_due(T0 + 250, &mut out); // open pane: T0+200..T0+300
        fold(&mut w, 0, &reading("a", 1.0, T0 + 10), T0 + 260, &mut out).unwrap(); // late
        fold(&mut w, 1, &reading("a", 2.0, T0 + 10_000), T0 + 260, &mut out).unwrap(); // future
        let t = w.take_tally();
        assert_eq!((t.late, t.early), (1, 1));
        assert!(out.is_empty(), "a future stamp emits nothing early");
        w.emit_due(T0 + 300, &mut out);
        assert_eq!((out[0].count, out[0].window_end_ms), (2, T0 + 300));
    }

    #[test]
    fn a_reading_ahead_of_the_open_pane_emits_the_boundaries_before_it() {
        let mut w = open(cfg(300, 100, 8), T0);
        let mut out = Vec::new();
        fold(&mut w, 0, &reading("a", 1.0, T0 + 10), T0 + 10, &mut out).unwrap();
        // The clock says T0+250; the next reading is stamped T0+120: boundary T0+100 first.
        fold(&mut w, 1, &reading("a", 3.0, T0 + 120), T0 + 250, &mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].window_end_ms, out[0].count), (T0 + 100, 1));
        w.emit_due(T0 + 250, &mut out);
        assert_eq!((out[1].window_end_ms, out[1].count, out[1].sum), (T0 + 200, 2, 4.0));
    }

    #[test]
    fn bad_readings_are_rejected_and_still_consumed() {
        let mut w = open(cfg(300, 100, 8), T0);
        let mut out = Vec::new();
        assert_eq!(
            fold(&mut w, 0, &reading("a", f64::NAN, T0), T0, &mut out),
            Err(Reject::NonFinite)
        );
        let mut r = reading("a", 1.0, T0);
        r.set_ids(b"", b"temp", b"").unwrap();
        assert_eq!(fold(&mut w, 1, &r, T0, &mut out), Err(Reject::EmptyId));
        assert_eq!(w.folded(), 2);
        assert_eq!(w.keys(), 0);
    }

    #[test]
    fn a_full_table_evicts_the_least_recently_seen_key() {
        let mut w = open(cfg(300, 100, 2), T0);
        let mut out = Vec::new();
        fold(&mut w, 0, &reading("old", 1.0, T0), T0, &mut out).unwrap();
        fold(&mut w, 1, &reading("mid", 2.0, T0 + 100), T0 + 100, &mut out).unwrap();
        fold(&mut w, 2, &reading("new", 3.0, T0 + 200), T0 + 200, &mut out).unwrap();
        let t = w.take_tally();
        assert_eq!((t.evicted_capacity, t.inserted), (1, 3));
        out.clear();
        w.emit_due(T0 + 300, &mut out);
        let mut keys: Vec<String> = out.iter().map(|a| a.device().text().into_owned()).collect();
        keys.sort();
        assert_eq!(keys, ["mid", "new"]);
    }

    #[test]
    fn a_full_aggregates_ring_drops_and_counts_but_folding_goes_on() {
        let mut w = open(cfg(300, 100, 8), T0);
        let mut sink = Bounded {
            room: 2,
            ..Default::default()
        };
        for (i, d) in ["a", "b", "c", "d"].into_iter().enumerate() {
            let mut now = T0;
            w.fold(i as u64, &reading(d, 1.0, T0), &mut now, &mut || T0, &mut sink)
                .unwrap();
        }
        w.emit_due(T0 + 100, &mut sink);
        let t = w.take_tally();
        assert_eq!((t.emitted, t.dropped), (2, 2));
        assert_eq!(w.sealed(), (T0 + 100) / 100);
    }

    #[test]
    fn a_long_gap_emits_at_most_one_window_of_boundaries() {
        let mut w = open(cfg(300, 100, 8), T0);
        let mut out = Vec::new();
        fold(&mut w, 0, &reading("a", 1.0, T0), T0, &mut out).unwrap();
        w.emit_due(T0 + 3_600_000, &mut out);
        assert_eq!(out.iter().map(|a| a.count).collect::<Vec<_>>(), [1, 1, 1]);
        assert_eq!(w.sealed(), (T0 + 3_600_000) / 100);
        assert_eq!(w.ms_until_next_boundary(T0 + 3_600_040), 60);
    }

    #[test]
    fn a_clock_stepped_back_by_more_than_a_window_restarts_the_windows() {
        let mut w = open(cfg(300, 100, 8), T0);
        let mut out = Vec::new();
        fold(&mut w, 0, &reading("a", 1.0, T0), T0, &mut out).unwrap();
        w.emit_due(T0 - 250, &mut out); // back, but less than a window: wait for the clock
        assert_eq!((w.keys(), w.sealed()), (1, T0 / 100));
        w.emit_due(T0 - 3_600_000, &mut out);
        assert_eq!((w.keys(), w.sealed()), (0, (T0 - 3_600_000) / 100));
        assert_eq!(w.take_tally().evicted_clock, 1);
        fold(&mut w, 1, &reading("a", 2.0, T0 - 3_600_000), T0 - 3_600_000, &mut out).unwrap();
        w.emit_due(T0 - 3_600_000 + 100, &mut out);
        assert_eq!((out.len(), out[0].count, out[0].sum), (1, 1, 2.0));
    }

    #[test]
    fn another_shape_is_refused() {
        let c = cfg(300, 100, 4);
        let w = open(c, T0);
        let store = w.into_store();
        let other = WindowConfig {
            panes: Panes::new(300, 150).unwrap(),
            ..c
        };
        let store = match Windows::open(store, WindowConfig { max_keys: 4, ..other }, T0) {
            Err(m) => {
                assert!(m.reason.contains("words"), "{}", m.reason);
                m.store
            }
            Ok(_) => panic!("a store of another size was accepted"),
        };
        let mut other_e = c;
        other_e.panes.emit_every_ms = 50;
        other_e.panes.panes = 3;
        match Windows::open(store, other_e, T0) {
            Err(m) => assert!(m.reason.contains("emit_every_ms"), "{}", m.reason),
            Ok(_) => panic!("another emit_every_ms was accepted"),
        }
    }

    #[test]
    fn the_state_survives_reopening() {
        let c = cfg(300, 100, 4);
        let mut w = open(c, T0);
        let mut out = Vec::new();
        fold(&mut w, 7, &reading("a", 4.0, T0), T0, &mut out).unwrap();
        let (mut w, opened) = Windows::open(w.into_store(), c, T0 + 50).ok().unwrap();
        assert!(!opened.fresh && !opened.journal_undone);
        assert_eq!((opened.rows.live, w.folded()), (1, 8));
        w.emit_due(T0 + 100, &mut out);
        assert_eq!((out[0].count, out[0].sum), (1, 4.0));
    }
}
