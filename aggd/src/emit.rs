//! Emission: one aggregate per key at each boundary, by the wall clock or because a reading
//! showed the boundary has passed; the flush of a clean stop; and finishing an emission that a
//! kill interrupted.
//!
//! At boundary `b` every key with samples in panes `b−P ..= b−1` gets one aggregate: the merge
//! of those panes by the rules of [`records::merge`] (count, min and max exact; the sum a sum of
//! pane sums, so it equals the sample-by-sample sum up to float rounding; M2 by Chan et al.'s
//! update), the panes' histograms merged by `records::exp_histogram`'s rule (exact: the
//! histogram of the window's samples) and the key's latest value and its time, exact too. The aggregate says which statistics it carries (`[aggd] statistics`); the fields
//! of the others are not meaningful (their columns are not stored). Keys with no sample in the window are skipped. Work is one pass over the rows in
//! use (`O(keys × P)`). A key with no sample for `idle_ttl_ms` is evicted during that pass
//! (`evicted.idle`); since `idle_ttl_ms ≥ window_ms`, its window is empty by then and nothing is
//! lost.
//!
//! Boundaries are emitted by the wall clock when the readings ring is drained (see
//! [`crate::stage`]), so emission happens on time with no input at all, and before a reading
//! that is ahead of the open pane is folded (see [`crate::fold`]). After a long stop, at most
//! one window of boundaries is emitted to catch up (later ones would be empty). A wall clock
//! stepped back by less than a window just delays the next emission; stepped back by more, it
//! would stall emission until it caught up, so every key is forgotten instead (counted,
//! `evicted.clock`) and the windows restart at the clock's pane.
//!
//! # A kill in the middle of an emission
//!
//! An emission stores `EMIT_CURSOR` (boundary, next row) after each batch handed to the ring and
//! `SEALED = b` at the end. A restarted aggd finishes an interrupted emission before anything
//! else ([`Emission::finish_interrupted`]), starting after the cursor, and after the key
//! of the last aggregate in the ring if that one belongs to the same boundary (a kill between
//! the ring publish and the cursor store). So each (key, boundary) aggregate is handed on at
//! most once.

use std::sync::atomic::{compiler_fence, Ordering};

use records::{Aggregate, FixedText};

use crate::events::Tally;
use crate::pane::Partial;
use crate::row::{self, key_hash};
use crate::rows::Rows;
use crate::sink::Sink;
use crate::store::{self, Store};
use crate::window_config::WindowConfig;

/// Aggregates handed to the sink at once; also the granularity of the emission cursor.
pub(crate) const EMIT_BATCH: usize = 256;

/// The emission side of the windows: the open pane (a copy of the `SEALED` word), the batch
/// being handed on, and the events of emission (aggregates handed on or dropped, keys evicted
/// idle or by a clock stepped back).
pub struct Emission {
    cfg: WindowConfig,
    /// The open pane: every boundary up to it is emitted.
    sealed: u64,
    /// Boundaries a key may go without a sample before it is evicted.
    idle_panes: u64,
    /// Reused: no allocation per emission.
    batch: Vec<Aggregate>,
    tally: Tally,
}

impl Emission {
    /// The emission of windows `cfg`, whose open pane is `sealed`.
    pub fn new(cfg: WindowConfig, sealed: u64) -> Emission {
        Emission {
            cfg,
            sealed,
            idle_panes: cfg.panes.idle_panes(cfg.idle_ttl_ms).min(row::MAX_IDLE_PANES),
            batch: Vec::with_capacity(EMIT_BATCH),
            tally: Tally::default(),
        }
    }

    /// Emits every boundary up to the wall-clock time `now_ms`.
    ///
    /// If the wall clock is more than a window behind the open pane, it was stepped back: the
    /// windows are in its future and would emit nothing until it caught up. Every key is then
    /// forgotten (`evicted.clock`) and the open pane restarts at the clock's pane.
    pub fn emit_due<S: Store, K: Sink>(&mut self, rows: &mut Rows<S>, now_ms: u64, sink: &mut K) {
        let pane = self.cfg.panes.pane_of(now_ms);
        if pane.saturating_add(self.cfg.panes.panes) < self.sealed {
            tracing::warn!(
                open_pane_ms = self.cfg.panes.boundary_ms(self.sealed),
                now_ms,
                keys = rows.live(),
                "the wall clock went back by more than a window; forgetting every window"
            );
            self.tally.evicted_clock += rows.forget_all();
            self.set_sealed(rows, pane);
            return;
        }
        self.emit_through(rows, pane, sink);
    }

    /// Emits everything due by `now_ms` and then, ahead of time, the boundary that closes the
    /// open pane, so that every reading folded so far is in an emitted aggregate. For a clean
    /// stop: after it the segments may be removed and nothing accepted is lost. A later aggd
    /// that re-adopts the table treats readings stamped in that pane as late (`late.clamped`,
    /// folded into the next pane), so no (key, boundary) aggregate is ever emitted twice.
    pub fn flush<S: Store, K: Sink>(&mut self, rows: &mut Rows<S>, now_ms: u64, sink: &mut K) {
        self.emit_due(rows, now_ms, sink);
        let open = self.sealed;
        self.emit_through(rows, open + 1, sink);
    }

    /// Emits boundaries `sealed+1 ..= target`, making `target` the open pane (nothing if it is
    /// not after the open pane). Boundaries more than P after the open pane have empty windows
    /// (nothing was folded in between) and are skipped in one step.
    pub fn emit_through<S: Store, K: Sink>(&mut self, rows: &mut Rows<S>, target: u64, sink: &mut K) {
        let s = self.sealed;
        if target <= s {
            return;
        }
        let last = target.min(s.saturating_add(self.cfg.panes.panes));
        for b in s + 1..=last {
            self.emit_boundary(rows, b, sink);
        }
        if target > last {
            if target - s >= row::SKIP_FORGETS {
                // Every row is idle by far (idle_ttl_ms is at most MAX_IDLE_PANES panes); after
                // the skip their 40-bit heads could no longer be read back (see `crate::row`).
                self.tally.evicted_idle += rows.forget_all();
            }
            self.set_sealed(rows, target);
        }
    }

    /// Finishes an emission that a kill interrupted (call once after opening, before folding).
    /// Returns true if there was one.
    pub fn finish_interrupted<S: Store, K: Sink>(&mut self, rows: &mut Rows<S>, sink: &mut K) -> bool {
        let b = self.sealed + 1;
        let cursor = rows.store().word(store::EMIT_CURSOR);
        let started = (cursor >> 32) as u32 == b as u32 && cursor as u32 > 0;
        let published = sink
            .last_handed_on()
            .is_some_and(|a| a.window_end_ms == self.cfg.panes.boundary_ms(b));
        if started || published {
            self.emit_boundary(rows, b, sink);
        }
        started || published
    }

    /// The first row boundary `b`'s emission has not handed on yet: after the cursor, and after
    /// the last aggregate in the sink if it is of this boundary.
    fn resume_row<S: Store, K: Sink>(&self, rows: &Rows<S>, b: u64, sink: &K) -> u32 {
        let mut start = 0u32;
        let cursor = rows.store().word(store::EMIT_CURSOR);
        if (cursor >> 32) as u32 == b as u32 {
            start = cursor as u32;
        }
        if let Some(last) = sink.last_handed_on() {
            if last.window_end_ms == self.cfg.panes.boundary_ms(b) {
                let (d, s) = (last.device(), last.sensor());
                if let Some(r) = rows.find(key_hash(d.bytes(), s.bytes()), d.bytes(), s.bytes()) {
                    start = start.max(r + 1);
                }
            }
        }
        start
    }

    fn emit_boundary<S: Store, K: Sink>(&mut self, rows: &mut Rows<S>, b: u64, sink: &mut K) {
        let started = std::time::Instant::now();
        let before = self.tally;
        let p = self.cfg.panes.panes;
        let start = self.resume_row(rows, b, sink);
        let (window_start, window_end) = self.cfg.panes.window_at(b);
        let hw = rows.high_water();
        let mut top = 0;
        for r in start..hw {
            let row = r as usize;
            if !rows.in_use(row) {
                continue;
            }
            // The open pane is b − 1 here; a head that cannot be read (never) is idle.
            let head = rows.header(row).head(self.sealed);
            let Some(head) = head.filter(|h| b < h.saturating_add(1 + self.idle_panes)) else {
                rows.evict(row);
                self.tally.evicted_idle += 1;
                continue;
            };
            top = r + 1;
            // Panes in the window (b−P ..= b−1) that the row still holds (head−P+1 ..= head);
            // head ≤ b−1 always, since the head is never past the open pane.
            let lo = b.saturating_sub(p).max((head + 1).saturating_sub(p));
            if head < lo {
                continue;
            }
            if let Some(agg) = self.aggregate(rows, row, (lo, head.min(b - 1)), (window_start, window_end)) {
                self.batch.push(agg);
                if self.batch.len() == EMIT_BATCH {
                    self.hand_on(rows, b, r + 1, sink);
                }
            }
        }
        self.hand_on(rows, b, hw, sink);
        if start == 0 {
            rows.shrink_high_water(top);
        }
        self.set_sealed(rows, b);
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

    /// The aggregate of `row` over panes `lo ..= hi` (window `start .. end`), if it has samples.
    fn aggregate<S: Store>(
        &self,
        rows: &mut Rows<S>,
        row: usize,
        (lo, hi): (u64, u64),
        (start, end): (u64, u64),
    ) -> Option<Aggregate> {
        let rm = rows.row_mut(row);
        let mut w = Partial::EMPTY;
        for q in lo..=hi {
            w.merge(&rm.panes.get(self.cfg.panes.slot_of(q)));
        }
        if w.count == 0 {
            return None;
        }
        let (last, last_ms) = (rm.header.last, rm.last_ms.as_deref().copied().unwrap_or(0));
        let h = *rows.header(row);
        let (device, sensor, unit) = (rows.text(h.device()), rows.text(h.sensor()), rows.text(h.unit()));
        let mut agg = Aggregate::with_histogram_budget(device, sensor, unit, self.cfg.histogram_buckets)?;
        if rows.shape().buckets > 0 {
            // Merged in place: the aggregate is the one copy of the window's histogram.
            let rm = rows.row_mut(row);
            for q in lo..=hi {
                rm.panes.merge_histogram(self.cfg.panes.slot_of(q), &mut agg.histogram);
            }
        }
        agg.set_statistics(self.cfg.statistics);
        agg.window_start_ms = start;
        agg.window_end_ms = end;
        agg.count = w.count;
        agg.sum = w.sum;
        agg.m2 = w.m2;
        agg.min = w.min;
        agg.max = w.max;
        agg.last = last;
        agg.last_ms = last_ms;
        Some(agg)
    }

    /// Hands the batch to the sink and records that rows before `next_row` are done for `b`.
    fn hand_on<S: Store, K: Sink>(&mut self, rows: &Rows<S>, b: u64, next_row: u32, sink: &mut K) {
        if !self.batch.is_empty() {
            let n = sink.offer(&self.batch);
            self.tally.emitted += n as u64;
            self.tally.dropped += (self.batch.len() - n) as u64;
            self.batch.clear();
            kill_point!();
        }
        rows.store()
            .set_word(store::EMIT_CURSOR, (u64::from(b as u32) << 32) | u64::from(next_row));
    }

    /// Records that every boundary up to `b` is emitted: `b` is the open pane.
    fn set_sealed<S: Store>(&mut self, rows: &Rows<S>, b: u64) {
        compiler_fence(Ordering::SeqCst);
        kill_point!();
        rows.store().set_word(store::SEALED, b);
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

    /// The events since the last call.
    pub fn take_tally(&mut self) -> Tally {
        std::mem::take(&mut self.tally)
    }

    /// Heap bytes of the batch.
    pub fn heap_bytes(&self) -> usize {
        self.batch.capacity() * std::mem::size_of::<Aggregate>()
    }
}
