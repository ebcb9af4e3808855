//! The windows of every key over a [`Store`]: their shape ([`WindowConfig`]), attaching to a
//! table ([`Windows::open`]: initialise a new one, or recover one a killed process left), and
//! what the stage reads back (positions, tallies, sizes).
//!
//! The work is in one file per concept, each an `impl` block of [`Windows`]:
//!
//! - [`crate::fold`]: which pane a reading goes to, insert and evict, the fold of one value;
//!   folding returns the boundary that is due ([`Windows::due_before`]) and never emits.
//! - [`crate::emit`]: emitting due boundaries, the flush of a clean stop, finishing an emission
//!   a kill interrupted.
//! - [`crate::journal`]: the undo journal and the readings-ring positions that make every
//!   reading fold exactly once across a kill.
//!
//! The stage loop ([`crate::stage`]) emits what is due, then folds.

use records::{FixedText, Reading, Statistics};

use crate::clock::Panes;
use crate::emit::EMIT_BATCH;
use crate::keys::{Keys, Rebuilt};
use crate::pane::Columns;
use crate::pane_histogram::words_per_pane;
use crate::row::{self, key_hash, row_words, RowShape};
use crate::store::{self, Store, Tables};
use crate::strings::{self, Interner};

/// The persistent shape of the windows and the eviction settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowConfig {
    /// Panes and pane length.
    pub panes: Panes,
    /// Rows of the table: most keys tracked at once.
    pub max_keys: u32,
    /// A key with no sample for this long is evicted (at least the window length).
    pub idle_ttl_ms: u64,
    /// The statistics each aggregate carries; the rows store only the pane columns they need.
    pub statistics: Statistics,
    /// Buckets of each pane's and window's histogram (`[aggd] histogram_buckets`; stored only
    /// if the statistics need histograms).
    pub histogram_buckets: u32,
}

impl WindowConfig {
    /// From the `[aggd]` section (already checked by the config crate).
    pub fn from_config(aggd: &telemetry_config::Aggd) -> Option<WindowConfig> {
        Some(WindowConfig {
            panes: Panes::new(aggd.window_ms, aggd.emit_every_ms)?,
            max_keys: aggd.max_keys.clamp(1, row::MAX_KEYS),
            idle_ttl_ms: aggd.idle_ttl_ms.max(aggd.window_ms),
            statistics: aggd
                .statistics
                .iter()
                .filter_map(|s| Statistics::from_name(s.name()))
                .fold(Statistics::NONE, |set, s| set | s),
            histogram_buckets: aggd.histogram_buckets,
        })
    }

    /// The layout of the table's rows, derived from the panes and the statistics.
    pub fn row_shape(&self) -> RowShape {
        RowShape::of(
            self.panes.panes as usize,
            Columns::needed_by(self.statistics),
            self.histogram_buckets as usize,
        )
    }

    /// The table's `SHAPE` word: histogram buckets (0 if none are stored), the pane columns
    /// *not* stored, panes, rows (see [`crate::store`]).
    pub fn shape_word(&self) -> u64 {
        let shape = self.row_shape();
        ((shape.buckets as u64) << 48)
            | (shape.columns.omitted_bits() << 40)
            | (self.panes.panes << 32)
            | u64::from(self.max_keys)
    }

    /// Words of the table: the rows, then the undo journal of a pane's histogram (if stored).
    pub fn words(&self) -> u64 {
        self.rows_words() + words_per_pane(self.row_shape().buckets) as u64
    }

    /// Words of the rows.
    pub fn rows_words(&self) -> u64 {
        u64::from(self.max_keys) * row_words(self.row_shape()) as u64
    }

    /// Words of the string table (three texts per row at most).
    pub fn string_words(&self) -> u64 {
        strings::words_for(self.max_keys)
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
    pub(crate) store: S,
    pub(crate) cfg: WindowConfig,
    /// Panes per window, as a length.
    pub(crate) p: usize,
    /// The rows' layout.
    pub(crate) shape: RowShape,
    /// The interned key text.
    pub(crate) strings: S,
    /// Reference counts and index of the key text.
    pub(crate) interner: Interner,
    /// Boundaries a key may go without a sample before it is evicted.
    pub(crate) idle_panes: u64,
    pub(crate) keys: Keys,
    /// The open pane (a copy of the `SEALED` word).
    pub(crate) sealed: u64,
    pub(crate) tally: Tally,
    /// The emission batch (reused; no allocation per emission).
    pub(crate) batch: Vec<records::Aggregate>,
}

impl<S: Store> Windows<S> {
    /// Attaches to the windows in `store`: initialises a new (all-zero) store with the open pane
    /// at `now_ms`, or recovers an existing one (undoes an interrupted fold, re-validates and
    /// indexes the rows). Refuses a store of another shape.
    pub fn open(tables: Tables<S>, cfg: WindowConfig, now_ms: u64) -> Result<(Windows<S>, Opened), Mismatch<S>> {
        let Tables { rows: store, strings } = tables;
        let p = cfg.panes.panes as usize;
        let shape = cfg.shape_word();
        let magic = store.word(store::MAGIC);
        let mut opened = Opened {
            fresh: magic == 0,
            journal_undone: false,
            rows: Rebuilt::default(),
            replaced: false,
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
        let reason = reason.or_else(|| {
            (strings.words().len() as u64 != cfg.string_words()).then(|| {
                format!(
                    "{} words of text, {} expected",
                    strings.words().len(),
                    cfg.string_words()
                )
            })
        });
        if let Some(reason) = reason {
            return Err(Mismatch {
                store: Tables { rows: store, strings },
                reason,
            });
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
            opened.journal_undone = crate::journal::undo(&mut store, &cfg);
        }
        let sealed = store.word(store::SEALED);
        let rows_used = store.word(store::ROWS_USED);
        let shape = cfg.row_shape();
        let (keys, rows) = Keys::rebuild(
            store.words_mut(),
            strings.words(),
            cfg.max_keys,
            shape,
            sealed,
            rows_used,
        );
        opened.rows = rows;
        let words = store.words();
        let named = (0..keys.high_water() as usize)
            .map(|r| row::header(words, r, shape))
            .filter(|h| h.in_use())
            .flat_map(|h| h.ids());
        let interner = Interner::rebuild(strings.words(), strings::slots_for(cfg.max_keys), named);
        Ok((
            Windows {
                store,
                cfg,
                p,
                shape,
                strings,
                interner,
                idle_panes: cfg.panes.idle_panes(cfg.idle_ttl_ms).min(row::MAX_IDLE_PANES),
                keys,
                sealed,
                tally: Tally::default(),
                batch: Vec::with_capacity(EMIT_BATCH),
            },
            opened,
        ))
    }

    /// The events since the last call.
    pub fn take_tally(&mut self) -> Tally {
        std::mem::take(&mut self.tally)
    }

    /// Keys tracked.
    pub fn keys(&self) -> u32 {
        self.keys.live()
    }

    /// Bytes of the rows' store (the `windows` table segment).
    pub fn store_bytes(&self) -> usize {
        self.store.bytes()
    }

    /// Bytes of the key text's store (the `strings` table segment).
    pub fn strings_bytes(&self) -> usize {
        self.strings.bytes()
    }

    /// Key texts interned.
    pub fn texts(&self) -> usize {
        self.interner.live()
    }

    /// Heap bytes that grow with the keys (key index, free set, eviction candidates; the key
    /// text's index and reference counts) plus the emission batch.
    pub fn heap_bytes(&self) -> usize {
        self.keys.heap_bytes()
            + self.interner.heap_bytes()
            + self.batch.capacity() * std::mem::size_of::<records::Aggregate>()
    }

    /// The configuration.
    pub fn config(&self) -> &WindowConfig {
        &self.cfg
    }

    /// Gives the tables back (tests: a "restarted process" opens them again).
    pub fn into_store(self) -> Tables<S> {
        Tables {
            rows: self.store,
            strings: self.strings,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
