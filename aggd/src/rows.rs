//! [`Rows`]: the rows of the windows table, the key text they name and the in-memory indexes
//! over both, as one piece: finding a key's row, inserting one (evicting the least recently
//! seen key when the table is full), freeing one, and folding one reading into a row under the
//! undo journal.
//!
//! Its invariant is that the rows, the key index ([`Keys`]) and the text's reference counts
//! ([`Interner`]) agree, and that a process killed at any instruction leaves each row free or
//! complete: a new row is written completely (its text interned first) before its key word; a
//! freed row's key word is cleared before its index entry and text are released. The indexes
//! live on the heap and are rebuilt from the rows on every start ([`Rows::rebuild`]), which
//! re-validates every row, so only the rows need a crash protocol. The order of one fold's
//! writes, and why a kill at any of them loses and repeats nothing, is in [`crate::journal`].

use std::sync::atomic::{compiler_fence, Ordering};

use records::{FixedText, Reading};

use crate::journal;
use crate::keys::{Keys, Rebuilt};
use crate::pane_histogram::words_per_pane;
use crate::row::{self, RowHeader, RowMut, RowShape};
use crate::store::{self, Store, Tables};
use crate::strings::{self, Interner};
use crate::window_config::WindowConfig;

/// The rows, their key text and the indexes over them.
pub struct Rows<S: Store> {
    store: S,
    strings: S,
    interner: Interner,
    keys: Keys,
    shape: RowShape,
    /// Where the undo journal of a pane's histogram is: after the last row.
    journal_at: usize,
}

/// The pane already holds `u32::MAX` samples: the reading was not folded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PaneFull;

impl<S: Store> Rows<S> {
    /// Attaches to the rows of `tables` (of windows `cfg`, whose open pane is `sealed`):
    /// indexes the valid rows, frees the rest, and counts the key text the rows name.
    pub fn rebuild(tables: Tables<S>, cfg: &WindowConfig, sealed: u64) -> (Rows<S>, Rebuilt) {
        let Tables {
            rows: mut store,
            strings,
        } = tables;
        let shape = cfg.row_shape();
        let rows_used = store.word(store::ROWS_USED);
        let (keys, rebuilt) = Keys::rebuild(
            store.words_mut(),
            strings.words(),
            cfg.max_keys,
            shape,
            sealed,
            rows_used,
        );
        let words = store.words();
        let named = (0..keys.high_water() as usize)
            .map(|r| row::header(words, r, shape))
            .filter(|h| h.in_use())
            .flat_map(|h| h.ids());
        let interner = Interner::rebuild(strings.words(), strings::slots_for(cfg.max_keys), named);
        let rows = Rows {
            store,
            strings,
            interner,
            keys,
            shape,
            journal_at: cfg.rows_words() as usize,
        };
        (rows, rebuilt)
    }

    /// The table's bookkeeping words (positions, emission cursor, open pane).
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The layout of every row.
    pub fn shape(&self) -> RowShape {
        self.shape
    }

    /// The row holding the key whose hash is `tag`, if any.
    #[inline]
    pub fn find(&self, tag: u64, device: &[u8], sensor: &[u8]) -> Option<u32> {
        self.keys
            .find(self.store.words(), self.strings.words(), tag, device, sensor)
    }

    /// Adds a key with newest pane `p`, evicting the least recently seen key (by the open pane
    /// `open`) if the table is full. Returns the row and whether a key was evicted.
    pub fn insert(
        &mut self,
        tag: u64,
        (device, sensor, unit): (&[u8], &[u8], &[u8]),
        p: u64,
        open: u64,
    ) -> (u32, bool) {
        let (row, evicted) = match self.keys.alloc() {
            Some(row) => (row, false),
            None => {
                let victim = self
                    .keys
                    .lru_victim(self.store.words(), open)
                    .expect("a full table has a victim");
                self.evict(victim as usize);
                (self.keys.alloc().expect("a row was just freed"), true)
            }
        };
        if u64::from(row) >= self.store.word(store::ROWS_USED) {
            self.store.set_word(store::ROWS_USED, u64::from(row) + 1);
        }
        let ids = [device, sensor, unit].map(|text| self.interner.intern(self.strings.words_mut(), text));
        compiler_fence(Ordering::SeqCst);
        kill_point!();
        {
            let mut rm = self.row_mut(row as usize);
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
        self.row_mut(row as usize)
            .header
            .set_key(RowHeader::key_word(ids[0], ids[1], tag));
        compiler_fence(Ordering::SeqCst);
        self.keys.added(tag, row);
        (row, evicted)
    }

    /// Frees a row: its key word first (one store), then the index and the row's key text.
    pub fn evict(&mut self, row: usize) {
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

    /// Evicts every key (each row's key word cleared first, so a kill part-way leaves the rest
    /// for the next start to forget), returning how many.
    pub fn forget_all(&mut self) -> u64 {
        let mut forgotten = 0;
        for r in 0..self.keys.high_water() as usize {
            if self.in_use(r) {
                self.evict(r);
                forgotten += 1;
            }
        }
        forgotten
    }

    /// Folds reading `r`, at readings-ring position `pos`, into pane `p` (slot `slot`) of
    /// `row`: advances the row's newest pane to `p` (clearing the `panes` slots that fall out
    /// of its ring, `slot_of` naming them), journals the pane, `last` and `last_ms`, then folds
    /// (see [`crate::journal`] for the order).
    pub fn fold(
        &mut self,
        pos: u64,
        (row, p, slot): (usize, u64, usize),
        (panes, slot_of): (usize, impl Fn(u64) -> usize),
        r: &Reading,
    ) -> Result<(), PaneFull> {
        let kept = words_per_pane(self.shape.buckets);
        let (saved, last) = {
            // The journal of the pane's histogram is after the last row: copied straight there.
            let (rows, journal) = self.store.words_mut().split_at_mut(self.journal_at);
            let mut rm = RowMut::new(rows, row, self.shape);
            // A head that cannot be read (never: no head is after the open pane) reads as
            // older than every pane, so the whole ring is cleared.
            let head = rm.header.head(p).unwrap_or(0);
            if p > head {
                for q in 1..=(p - head).min(panes as u64) {
                    rm.panes.clear(slot_of(head + q));
                }
                compiler_fence(Ordering::SeqCst);
                kill_point!();
                rm.header.set_head(p);
            }
            let last_ms = rm.last_ms.as_deref().copied().unwrap_or(0);
            journal[..kept].copy_from_slice(rm.panes.save_histogram(slot));
            (rm.panes.save(slot), (rm.header.last, last_ms))
        };
        journal::record(&self.store, pos, (row, slot), saved, last);
        let mut rm = self.row_mut(row);
        if !rm.panes.fold(slot, r.value) {
            return Err(PaneFull);
        }
        kill_point!();
        rm.header.last = r.value;
        if let Some(t) = rm.last_ms {
            *t = r.received_ms;
        }
        let old_unit = rm.header.unit();
        let unit = r.unit();
        if strings::text(self.strings.words(), old_unit) != unit.bytes() {
            self.set_unit(row, old_unit, unit.bytes());
        }
        compiler_fence(Ordering::SeqCst);
        Ok(())
    }

    /// The key's latest reading has another unit: name the new text, then release the old.
    #[cold]
    fn set_unit(&mut self, row: usize, old: u32, unit: &[u8]) {
        let id = self.interner.intern(self.strings.words_mut(), unit);
        compiler_fence(Ordering::SeqCst);
        self.row_mut(row).header.set_unit(id);
        compiler_fence(Ordering::SeqCst);
        kill_point!();
        self.interner.release(self.strings.words(), old);
    }

    /// Row `row`, for reading and writing.
    #[inline]
    pub fn row_mut(&mut self, row: usize) -> RowMut<'_> {
        RowMut::new(self.store.words_mut(), row, self.shape)
    }

    /// Row `row`'s header.
    #[inline]
    pub fn header(&self, row: usize) -> &RowHeader {
        row::header(self.store.words(), row, self.shape)
    }

    /// True if row `row` holds a key.
    #[inline]
    pub fn in_use(&self, row: usize) -> bool {
        row::in_use(self.store.words(), row, self.shape)
    }

    /// The text of id `id`.
    #[inline]
    pub fn text(&self, id: u32) -> &[u8] {
        strings::text(self.strings.words(), id)
    }

    /// Starts loading the index slot of the key whose hash is `tag`.
    #[inline]
    pub fn prefetch_key(&self, tag: u64) {
        self.keys.prefetch_slot(tag);
    }

    /// Starts loading the header and pane slot `slot` of the row the key whose hash is `tag`
    /// most likely has.
    #[inline]
    pub fn prefetch_row(&self, tag: u64, slot: usize) {
        if let Some(row) = self.keys.likely_row(tag) {
            row::prefetch(self.store.words(), row, self.shape, slot);
        }
    }

    /// Starts loading the device text of the row the key whose hash is `tag` most likely has
    /// (after [`Rows::prefetch_row`] for it: this reads the row).
    #[inline]
    pub fn prefetch_text(&self, tag: u64) {
        if let Some(row) = self.keys.likely_row(tag) {
            if row < self.keys.high_water() as usize {
                strings::prefetch(self.strings.words(), self.header(row).device());
            }
        }
    }

    /// Rows from this one up are free.
    pub fn high_water(&self) -> u32 {
        self.keys.high_water()
    }

    /// Lowers the high-water mark to `top` (a full sweep found no row in use from there).
    pub fn shrink_high_water(&mut self, top: u32) {
        self.keys.shrink_high_water(top);
    }

    /// Keys held.
    pub fn live(&self) -> u32 {
        self.keys.live()
    }

    /// Key texts interned.
    pub fn texts(&self) -> usize {
        self.interner.live()
    }

    /// Heap bytes of the indexes (key index, free set, eviction candidates; the text's index
    /// and reference counts).
    pub fn heap_bytes(&self) -> usize {
        self.keys.heap_bytes() + self.interner.heap_bytes()
    }

    /// Bytes of the rows' segment and of the key text's.
    pub fn bytes(&self) -> (usize, usize) {
        (self.store.bytes(), self.strings.bytes())
    }

    /// Gives the tables back.
    pub fn into_tables(self) -> Tables<S> {
        Tables {
            rows: self.store,
            strings: self.strings,
        }
    }
}
