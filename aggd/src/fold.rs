//! Folding: which pane a reading goes to, finding or inserting its key's row, evicting, and the
//! fold of one value into a pane. Folding never emits: [`Windows::due_before`] says which
//! boundary must be emitted (by [`crate::emit`]) before a reading can be folded, and the caller
//! emits it first.
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
//!   passed, so they are emitted first (event time: [`Windows::due_before`] returns `p`), and
//!   the reading then goes to pane `p`, the new open pane. This is what makes a restarted aggd
//!   catching up on a backlog put each queued reading in its own pane. But never beyond the wall
//!   clock: if `p` is after aggd's own clock (re-read to be sure), only the boundaries up to the
//!   wall-clock pane are due and the reading is clamped into that pane, counted
//!   (`early.clamped`), so a reading stamped in the future cannot make aggd emit windows early.
//!
//! So once what is due has been emitted, every reading is folded into the open pane. Every
//! reading of a key therefore lands in a pane no older than the key's previous one, which is why
//! the key's latest value is always in its newest pane and needs no per-pane copy.
//!
//! # Capacity
//!
//! When all `max_keys` rows are in use, a new key evicts the least recently seen key (pane
//! granularity), counted as `evicted.capacity`: that key's samples leave the windows early.
//!
//! # Key text
//!
//! A new key's device, sensor and unit text is interned ([`crate::strings`]) after its row is
//! taken (so a victim's text is released first and may be reused) and before its key word is
//! written; an evicted row releases its text after its key word is cleared.
//!
//! The order of a fold's writes, and why a kill at any of them loses and repeats nothing, is in
//! [`crate::journal`].

use std::sync::atomic::{compiler_fence, Ordering};

use records::{FixedText, Reading};

use crate::pane_histogram::words_per_pane;
use crate::row::{self, RowHeader, RowMut};
use crate::store::{self, Store};
use crate::strings;
use crate::window::{key_of, Reject, Windows};

impl<S: Store> Windows<S> {
    /// The boundary that must be emitted (see [`Windows::emit_through`]) before `r` can be
    /// folded, if any: the reading's pane when it is ahead of the open pane, but not past the
    /// wall clock. `now` is the caller's recent wall-clock reading (ms), refreshed from `clock`
    /// if the reading looks ahead of it. Readings that will be rejected emit nothing.
    #[inline]
    pub fn due_before<C: FnMut() -> u64>(&self, r: &Reading, now: &mut u64, clock: &mut C) -> Option<u64> {
        let s = self.sealed;
        let p = self.cfg.panes.pane_of(r.received_ms);
        if p <= s || Reject::check(r).is_err() {
            return None;
        }
        if p > self.cfg.panes.pane_of(*now) {
            *now = clock();
        }
        let due = p.min(self.cfg.panes.pane_of(*now));
        (due > s).then_some(due)
    }

    /// Folds the reading at ring position `pos` into its key's window, in the open pane (emit
    /// what [`Windows::due_before`] returns first).
    pub fn fold(&mut self, pos: u64, r: &Reading) -> Result<(), Reject> {
        self.fold_keyed(pos, r, key_of(r))
    }

    /// [`Windows::fold`] with the reading's [`key_of`] already computed (for prefetching).
    pub fn fold_keyed(&mut self, pos: u64, r: &Reading, tag: u64) -> Result<(), Reject> {
        let verdict = Reject::check(r).and_then(|()| self.fold_value(pos, r, tag));
        self.set_folded(pos);
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
            row::prefetch(self.store.words(), row, self.shape, slot);
        }
    }

    /// Starts loading the device text of the row the key whose [`key_of`] is `tag` most likely
    /// has (after [`Windows::prefetch_row`] for it, a little later: this reads the row).
    #[inline]
    pub fn prefetch_text(&self, tag: u64) {
        if let Some(row) = self.keys.likely_row(tag) {
            if row < self.keys.high_water() as usize {
                strings::prefetch(
                    self.strings.words(),
                    row::header(self.store.words(), row, self.shape).device(),
                );
            }
        }
    }

    fn fold_value(&mut self, pos: u64, r: &Reading, tag: u64) -> Result<(), Reject> {
        let p = self.pane_for(r.received_ms);
        let (device, sensor, unit) = (r.device(), r.sensor(), r.unit());
        let (device, sensor, unit) = (device.bytes(), sensor.bytes(), unit.bytes());
        let row = match self
            .keys
            .find(self.store.words(), self.strings.words(), tag, device, sensor)
        {
            Some(row) => row,
            None => self.insert(tag, device, sensor, unit, p),
        } as usize;
        let slot = self.cfg.panes.slot_of(p);
        let mut histogram = [0u64; words_per_pane(records::exp_histogram::CAPACITY)];
        let (saved, last) = {
            let mut rm = RowMut::new(self.store.words_mut(), row, self.shape);
            // A head that cannot be read (never: no head is after the open pane) reads as
            // older than every pane, so the whole ring is cleared.
            let head = rm.header.head(p).unwrap_or(0);
            if p > head {
                for q in 1..=(p - head).min(self.p as u64) {
                    rm.panes.clear(self.cfg.panes.slot_of(head + q));
                }
                compiler_fence(Ordering::SeqCst);
                kill_point!();
                rm.header.set_head(p);
            }
            let last_ms = rm.last_ms.as_deref().copied().unwrap_or(0);
            let kept = rm.panes.save_histogram(slot);
            histogram[..kept.len()].copy_from_slice(kept);
            (rm.panes.save(slot), (rm.header.last, last_ms))
        };
        let kept = words_per_pane(self.shape.buckets);
        self.journal(pos, (row, slot), saved, &histogram[..kept], last);
        let mut rm = RowMut::new(self.store.words_mut(), row, self.shape);
        if !rm.panes.fold(slot, r.value) {
            return Err(Reject::PaneFull);
        }
        kill_point!();
        rm.header.last = r.value;
        if let Some(t) = rm.last_ms {
            *t = r.received_ms;
        }
        let old_unit = rm.header.unit();
        if strings::text(self.strings.words(), old_unit) != unit {
            self.set_unit(row, old_unit, unit);
        }
        compiler_fence(Ordering::SeqCst);
        Ok(())
    }

    /// The key's latest reading has another unit: name the new text, then release the old.
    #[cold]
    fn set_unit(&mut self, row: usize, old: u32, unit: &[u8]) {
        let id = self.interner.intern(self.strings.words_mut(), unit);
        compiler_fence(Ordering::SeqCst);
        RowMut::new(self.store.words_mut(), row, self.shape).header.set_unit(id);
        compiler_fence(Ordering::SeqCst);
        kill_point!();
        self.interner.release(self.strings.words(), old);
    }

    /// The pane a reading stamped `t` goes to: the open pane (see the module docs), counting
    /// the reading if it is clamped there.
    #[inline]
    fn pane_for(&mut self, t: u64) -> u64 {
        let (s, p) = (self.sealed, self.cfg.panes.pane_of(t));
        if p < s {
            self.tally.late += 1;
        } else if p > s {
            self.tally.early += 1;
        }
        s
    }

    /// Adds a key with newest pane `p`, evicting the least recently seen key if the table is full.
    fn insert(&mut self, tag: u64, device: &[u8], sensor: &[u8], unit: &[u8], p: u64) -> u32 {
        let row = match self.keys.alloc() {
            Some(row) => row,
            None => {
                let victim = self
                    .keys
                    .lru_victim(self.store.words(), self.sealed)
                    .expect("a full table has a victim");
                self.evict(victim as usize);
                self.tally.evicted_capacity += 1;
                self.keys.alloc().expect("a row was just freed")
            }
        };
        if u64::from(row) >= self.store.word(store::ROWS_USED) {
            self.store.set_word(store::ROWS_USED, u64::from(row) + 1);
        }
        let ids = [device, sensor, unit].map(|text| self.interner.intern(self.strings.words_mut(), text));
        compiler_fence(Ordering::SeqCst);
        kill_point!();
        {
            let mut rm = RowMut::new(self.store.words_mut(), row as usize, self.shape);
            rm.header.set_unit(ids[2]);
            rm.header.set_head(p);
            rm.header.last = 0.0;
            if let Some(t) = rm.last_ms {
                *t = 0;
            }
            rm.panes.clear_all();
        }
        compiler_fence(Ordering::SeqCst);
        kill_point!();
        RowMut::new(self.store.words_mut(), row as usize, self.shape)
            .header
            .set_key(RowHeader::key_word(ids[0], ids[1], tag));
        compiler_fence(Ordering::SeqCst);
        self.keys.added(tag, row);
        self.tally.inserted += 1;
        row
    }

    /// Frees a row: its key word first (one store), then the index and the row's key text.
    pub(crate) fn evict(&mut self, row: usize) {
        let h = *row::header(self.store.words(), row, self.shape);
        row::clear_key(self.store.words_mut(), row, self.shape);
        compiler_fence(Ordering::SeqCst);
        kill_point!();
        let tag = h.tag(self.strings.words());
        self.keys
            .removed(self.store.words(), self.strings.words(), tag, row as u32);
        for id in h.ids() {
            self.interner.release(self.strings.words(), id);
        }
    }
}
