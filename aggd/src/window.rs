//! The windows of every key over a [`Store`]: their shape ([`WindowConfig`]), attaching to a
//! table ([`Windows::open`]: initialise a new one, or recover one a killed process left), and
//! the fold of one reading.
//!
//! [`Windows`] puts together three pieces, each a type of its own that owns its state:
//!
//! - [`Rows`] ([`crate::rows`]): the rows, their key text and the indexes over them; find,
//!   insert, evict, and the fold of one value into a row under the undo journal.
//! - [`Emission`] ([`crate::emit`]): the open pane, emitting due boundaries, the flush of a clean
//!   stop, finishing an emission a kill interrupted.
//! - The positions and the undo journal ([`crate::journal`]): the table's bookkeeping words that
//!   make every reading fold exactly once across a kill.
//!
//! Which pane a reading goes to is [`crate::fold`]'s. The stage loop ([`crate::stage`]) emits
//! what is due, then folds.

use records::{FixedText, Reading};

use crate::emit::Emission;
use crate::keys::Rebuilt;
use crate::pane::Columns;
use crate::row::key_hash;
use crate::rows::Rows;
use crate::sink::Sink;
use crate::store::{self, Store, Tables};
use crate::{fold, journal};

pub use crate::events::{Reject, Tally};
pub use crate::window_config::WindowConfig;

/// What [`Windows::open`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opened {
    /// The table was new (or had never been initialised).
    pub fresh: bool,
    /// A fold interrupted by a kill was undone (its reading will be folded again).
    pub journal_undone: bool,
    /// Rows found.
    pub rows: Rebuilt,
    /// A table of another shape or layout was replaced by this one (by the stage, see
    /// `stage::open_windows`): the old windows were dropped.
    pub replaced: bool,
}

/// The table does not hold windows of this shape (or is not ours).
pub struct Mismatch<S> {
    /// The tables, untouched.
    pub store: Tables<S>,
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
    rows: Rows<S>,
    emission: Emission,
    cfg: WindowConfig,
    /// The fold's events (the emission keeps its own).
    tally: Tally,
}

impl<S: Store> Windows<S> {
    /// Attaches to the windows in `store`: initialises a new (all-zero) store with the open pane
    /// at `now_ms`, or recovers an existing one (undoes an interrupted fold, re-validates and
    /// indexes the rows). Refuses a store of another shape.
    pub fn open(tables: Tables<S>, cfg: WindowConfig, now_ms: u64) -> Result<(Windows<S>, Opened), Mismatch<S>> {
        let Tables {
            rows: mut store,
            strings,
        } = tables;
        if let Some(reason) = mismatch(&store, &strings, &cfg) {
            return Err(Mismatch {
                store: Tables { rows: store, strings },
                reason,
            });
        }
        let mut opened = Opened {
            fresh: store.word(store::MAGIC) == 0,
            journal_undone: false,
            rows: Rebuilt::default(),
            replaced: false,
        };
        if opened.fresh {
            // A new segment is all zeros: no row is in use. The magic goes last.
            store.set_word(store::EMIT_EVERY, cfg.panes.emit_every_ms);
            store.set_word(store::SHAPE, cfg.shape_word());
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
            opened.journal_undone = journal::undo(&mut store, &cfg);
        }
        let sealed = store.word(store::SEALED);
        let (rows, rebuilt) = Rows::rebuild(Tables { rows: store, strings }, &cfg, sealed);
        opened.rows = rebuilt;
        let windows = Windows {
            rows,
            emission: Emission::new(cfg, sealed),
            cfg,
            tally: Tally::default(),
        };
        Ok((windows, opened))
    }

    /// The boundary that must be emitted (see [`Windows::emit_through`]) before `r` can be
    /// folded, if any ([`fold::due_before`]). `now` is the caller's recent wall-clock reading
    /// (ms), refreshed from `clock` if the reading looks ahead of it.
    #[inline]
    pub fn due_before<C: FnMut() -> u64>(&self, r: &Reading, now: &mut u64, clock: &mut C) -> Option<u64> {
        fold::due_before(&self.cfg.panes, self.emission.sealed(), r, now, clock)
    }

    /// Folds the reading at ring position `pos` into its key's window, in the open pane (emit
    /// what [`Windows::due_before`] returns first).
    pub fn fold(&mut self, pos: u64, r: &Reading) -> Result<(), Reject> {
        self.fold_keyed(pos, r, key_of(r))
    }

    /// [`Windows::fold`] with the reading's [`key_of`] already computed (for prefetching).
    pub fn fold_keyed(&mut self, pos: u64, r: &Reading, tag: u64) -> Result<(), Reject> {
        let verdict = Reject::check(r).and_then(|()| self.fold_value(pos, r, tag));
        journal::set_folded(self.rows.store(), pos);
        verdict
    }

    fn fold_value(&mut self, pos: u64, r: &Reading, tag: u64) -> Result<(), Reject> {
        let open = self.emission.sealed();
        let p = fold::pane_for(&self.cfg.panes, open, r.received_ms, &mut self.tally);
        let (device, sensor, unit) = (r.device(), r.sensor(), r.unit());
        let key = (device.bytes(), sensor.bytes(), unit.bytes());
        let row = match self.rows.find(tag, key.0, key.1) {
            Some(row) => row,
            None => {
                let (row, evicted) = self.rows.insert(tag, key, p, open);
                self.tally.inserted += 1;
                self.tally.evicted_capacity += u64::from(evicted);
                row
            }
        } as usize;
        let panes = self.cfg.panes;
        let slot_of = |q: u64| panes.slot_of(q);
        self.rows
            .fold(pos, (row, p, panes.slot_of(p)), (panes.panes as usize, slot_of), r)
            .map_err(|_| Reject::PaneFull)
    }

    /// Starts loading the index slot of the key whose [`key_of`] is `tag`: call a few readings
    /// ahead of [`Windows::fold_keyed`], so that the cache misses of many readings overlap.
    #[inline]
    pub fn prefetch_key(&self, tag: u64) {
        self.rows.prefetch_key(tag);
    }

    /// Starts loading the row and pane `r` (whose [`key_of`] is `tag`) will be folded into
    /// (after [`Windows::prefetch_key`] for it, a little later).
    #[inline]
    pub fn prefetch_row(&self, r: &Reading, tag: u64) {
        let slot = self.cfg.panes.slot_of(self.cfg.panes.pane_of(r.received_ms));
        self.rows.prefetch_row(tag, slot);
    }

    /// Starts loading the device text of the row the key whose [`key_of`] is `tag` most likely
    /// has (after [`Windows::prefetch_row`] for it, a little later: this reads the row).
    #[inline]
    pub fn prefetch_text(&self, tag: u64) {
        self.rows.prefetch_text(tag);
    }

    /// Emits every boundary up to the wall-clock time `now_ms` ([`Emission::emit_due`]).
    pub fn emit_due<K: Sink>(&mut self, now_ms: u64, sink: &mut K) {
        self.emission.emit_due(&mut self.rows, now_ms, sink);
    }

    /// Emits everything due and then the boundary that closes the open pane, for a clean stop
    /// ([`Emission::flush`]).
    pub fn flush<K: Sink>(&mut self, now_ms: u64, sink: &mut K) {
        self.emission.flush(&mut self.rows, now_ms, sink);
    }

    /// Emits boundaries up to `target`, making it the open pane ([`Emission::emit_through`]).
    pub fn emit_through<K: Sink>(&mut self, target: u64, sink: &mut K) {
        self.emission.emit_through(&mut self.rows, target, sink);
    }

    /// Finishes an emission that a kill interrupted (call once after [`Windows::open`], before
    /// folding). Returns true if there was one.
    pub fn finish_interrupted_emission<K: Sink>(&mut self, sink: &mut K) -> bool {
        self.emission.finish_interrupted(&mut self.rows, sink)
    }

    /// Milliseconds from `now_ms` to the next boundary (0 if it has passed).
    pub fn ms_until_next_boundary(&self, now_ms: u64) -> u64 {
        self.emission.ms_until_next_boundary(now_ms)
    }

    /// The open pane.
    pub fn sealed(&self) -> u64 {
        self.emission.sealed()
    }

    /// Readings-ring position up to which readings are folded.
    pub fn folded(&self) -> u64 {
        journal::folded(self.rows.store())
    }

    /// Readings-ring position up to which readings are counted in the stats page.
    pub fn counted(&self) -> u64 {
        journal::counted(self.rows.store())
    }

    /// Records that readings before `pos` are counted.
    pub fn set_counted(&self, pos: u64) {
        journal::set_counted(self.rows.store(), pos)
    }

    /// Starts over at ring position `pos` (the table does not belong to this readings ring).
    pub fn reset_positions(&self, pos: u64) {
        journal::reset_positions(self.rows.store(), pos)
    }

    /// The events since the last call.
    pub fn take_tally(&mut self) -> Tally {
        let folded = std::mem::take(&mut self.tally);
        let emitted = self.emission.take_tally();
        Tally {
            emitted: emitted.emitted,
            dropped: emitted.dropped,
            evicted_idle: emitted.evicted_idle,
            evicted_clock: emitted.evicted_clock,
            ..folded
        }
    }

    /// Keys tracked.
    pub fn keys(&self) -> u32 {
        self.rows.live()
    }

    /// Bytes of the rows' store (the `windows` table segment).
    pub fn store_bytes(&self) -> usize {
        self.rows.bytes().0
    }

    /// Bytes of the key text's store (the `strings` table segment).
    pub fn strings_bytes(&self) -> usize {
        self.rows.bytes().1
    }

    /// Key texts interned.
    pub fn texts(&self) -> usize {
        self.rows.texts()
    }

    /// Heap bytes that grow with the keys (key index, free set, eviction candidates; the key
    /// text's index and reference counts) plus the emission batch.
    pub fn heap_bytes(&self) -> usize {
        self.rows.heap_bytes() + self.emission.heap_bytes()
    }

    /// The configuration.
    pub fn config(&self) -> &WindowConfig {
        &self.cfg
    }

    /// The rows (tests look at them after a restart).
    #[cfg(test)]
    pub(crate) fn rows_mut(&mut self) -> &mut Rows<S> {
        &mut self.rows
    }

    /// Gives the tables back (tests: a "restarted process" opens them again).
    pub fn into_store(self) -> Tables<S> {
        self.rows.into_tables()
    }
}

/// Why `store` and `strings` do not hold windows of `cfg`, if they do not.
fn mismatch<S: Store>(store: &S, strings: &S, cfg: &WindowConfig) -> Option<String> {
    let magic = store.word(store::MAGIC);
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
    } else if magic != 0 && store.word(store::SHAPE) != cfg.shape_word() {
        let found = store.word(store::SHAPE);
        let columns = Columns::from_omitted_bits((found >> 40) & 0xff);
        let described = |columns: Columns, buckets: u64| match buckets {
            0 => columns.to_string(),
            b => format!("{columns} of {b} buckets"),
        };
        Some(format!(
            "{} panes × {} keys of pane columns ({}) where {} × {} of ({}) are configured \
             (aggd.statistics = {}, aggd.histogram_buckets = {})",
            (found >> 32) & 0xff,
            found as u32,
            described(columns, found >> 48),
            cfg.panes.panes,
            cfg.max_keys,
            described(cfg.row_shape().columns, cfg.row_shape().buckets as u64),
            cfg.statistics,
            cfg.histogram_buckets
        ))
    } else {
        None
    };
    reason.or_else(|| {
        (strings.words().len() as u64 != cfg.string_words()).then(|| {
            format!(
                "{} words of text, {} expected",
                strings.words().len(),
                cfg.string_words()
            )
        })
    })
}

#[cfg(test)]
pub(crate) mod tests;
