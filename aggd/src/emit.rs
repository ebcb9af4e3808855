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
//! else ([`Windows::finish_interrupted_emission`]), starting after the cursor, and after the key
//! of the last aggregate in the ring if that one belongs to the same boundary (a kill between
//! the ring publish and the cursor store). So each (key, boundary) aggregate is handed on at
//! most once.

use std::sync::atomic::{compiler_fence, Ordering};

use records::{Aggregate, ExpHistogram, FixedText};

use crate::pane::Partial;
use crate::row::{self, key_hash, RowMut};
use crate::sink::Sink;
use crate::store::{self, Store};
use crate::strings;
use crate::window::Windows;

/// Aggregates handed to the sink at once; also the granularity of the emission cursor.
pub(crate) const EMIT_BATCH: usize = 256;

impl<S: Store> Windows<S> {
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
            self.tally.evicted_clock += self.forget_every_key();
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

    /// Emits boundaries `sealed+1 ..= target`, making `target` the open pane (nothing if it is
    /// not after the open pane). Boundaries more than P after the open pane have empty windows
    /// (nothing was folded in between) and are skipped in one step.
    pub fn emit_through<K: Sink>(&mut self, target: u64, sink: &mut K) {
        let s = self.sealed;
        if target <= s {
            return;
        }
        let last = target.min(s.saturating_add(self.cfg.panes.panes));
        for b in s + 1..=last {
            self.emit_boundary(b, sink);
        }
        if target > last {
            if target - s >= row::SKIP_FORGETS {
                // Every row is idle by far (idle_ttl_ms is at most MAX_IDLE_PANES panes); after
                // the skip their 40-bit heads could no longer be read back (see `crate::row`).
                self.tally.evicted_idle += self.forget_every_key();
            }
            self.set_sealed(target);
        }
    }

    /// Evicts every key (each row's key word cleared first, so a kill part-way leaves the rest
    /// for the next start to forget), returning how many.
    fn forget_every_key(&mut self) -> u64 {
        let mut forgotten = 0;
        for r in 0..self.keys.high_water() as usize {
            if row::in_use(self.store.words(), r, self.shape) {
                self.evict(r);
                forgotten += 1;
            }
        }
        forgotten
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

    /// The first row boundary `b`'s emission has not handed on yet: after the cursor, and after
    /// the last aggregate in the sink if it is of this boundary.
    fn resume_row<K: Sink>(&self, b: u64, sink: &K) -> u32 {
        let mut start = 0u32;
        let cursor = self.store.word(store::EMIT_CURSOR);
        if (cursor >> 32) as u32 == b as u32 {
            start = cursor as u32;
        }
        if let Some(last) = sink.last_handed_on() {
            if last.window_end_ms == self.cfg.panes.boundary_ms(b) {
                let (d, s) = (last.device(), last.sensor());
                let tag = key_hash(d.bytes(), s.bytes());
                if let Some(r) = self
                    .keys
                    .find(self.store.words(), self.strings.words(), tag, d.bytes(), s.bytes())
                {
                    start = start.max(r + 1);
                }
            }
        }
        start
    }

    fn emit_boundary<K: Sink>(&mut self, b: u64, sink: &mut K) {
        let started = std::time::Instant::now();
        let before = self.tally;
        let p = self.cfg.panes.panes;
        let start = self.resume_row(b, sink);
        let (window_start, window_end) = self.cfg.panes.window_at(b);
        let hw = self.keys.high_water();
        let mut top = 0;
        for r in start..hw {
            let row = r as usize;
            if !row::in_use(self.store.words(), row, self.shape) {
                continue;
            }
            // The open pane is b − 1 here; a head that cannot be read (never) is idle.
            let head = row::header(self.store.words(), row, self.shape).head(self.sealed);
            let Some(head) = head.filter(|h| b < h.saturating_add(1 + self.idle_panes)) else {
                self.evict(row);
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
            let rm = RowMut::new(self.store.words_mut(), row, self.shape);
            let mut w = Partial::EMPTY;
            let mut histogram = ExpHistogram::new(self.cfg.histogram_buckets);
            for q in lo..=head.min(b - 1) {
                let slot = self.cfg.panes.slot_of(q);
                w.merge(&rm.panes.get(slot));
                rm.panes.merge_histogram(slot, &mut histogram);
            }
            if w.count == 0 {
                continue;
            }
            let h = &*rm.header;
            let text = |id| strings::text(self.strings.words(), id);
            let Some(mut agg) = Aggregate::new(text(h.device()), text(h.sensor()), text(h.unit())) else {
                continue;
            };
            agg.set_statistics(self.cfg.statistics);
            agg.window_start_ms = window_start;
            agg.window_end_ms = window_end;
            agg.count = w.count;
            agg.sum = w.sum;
            agg.m2 = w.m2;
            agg.min = w.min;
            agg.max = w.max;
            agg.last = h.last;
            agg.last_ms = rm.last_ms.as_deref().copied().unwrap_or(0);
            agg.histogram = histogram;
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

    /// Records that every boundary up to `b` is emitted: `b` is the open pane.
    pub(crate) fn set_sealed(&mut self, b: u64) {
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
}
