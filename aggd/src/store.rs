//! Where the window state lives: the `windows` table segment (a `shm_ring::table::Table` of 64-bit
//! words, so that rows can be sized for the configured number of panes) and its bookkeeping
//! words. [`MemStore`] is the same thing in process memory, for tests.
//!
//! The key text is in a second table segment, `strings` ([`crate::strings`]), of the same
//! words; [`Tables`] holds both.
//!
//! The table is `max_keys` rows of [`crate::row::row_words`]`(P)` words, then, if histograms
//! are stored, the undo journal of one pane's histogram (`1 + ⌈B/2⌉` words, see
//! [`crate::journal`]). Its 16 user words:
//!
//! | word | meaning |
//! |---|---|
//! | `MAGIC` | [`MAGIC_VALUE`] once the words below are initialised (written last) |
//! | `EMIT_EVERY` | pane length in ms |
//! | `SHAPE` | `buckets << 48 \| omitted << 40 \| panes << 32 \| max_keys`: the row layout; `omitted` is the pane columns *not* stored ([`crate::pane::Columns`], derived from `[aggd] statistics`), `buckets` each pane's histogram buckets (0 if none are stored) |
//! | `SEALED` | the open pane: every boundary up to `SEALED·E` has been emitted |
//! | `FOLDED` | readings-ring position: every reading before it is folded into the windows |
//! | `COUNTED` | readings-ring position: every reading before it is counted in the stats page |
//! | `EMIT_CURSOR` | `(boundary as u32) << 32 \| row`: how far the emission of that boundary got |
//! | `J_POS` … `J_LAST_MS` | the undo journal of the fold in progress (see [`crate::journal`]) |
//! | `ROWS_USED` | high-water mark of rows ever used; rows above it are zero |

use std::sync::atomic::{AtomicU64, Ordering};

use bytemuck::{Pod, Zeroable};
use shm_ring::table::{Table, USER_WORDS};

/// The table's record: one word. Rows are laid out over words by [`crate::row`].
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(transparent)]
pub struct Word(pub u64);

impl shm_ring::Record for Word {
    // Bump the version whenever the row layout or the user words change meaning: a table of the
    // old layout is then replaced instead of misread.
    // 2: the row header holds text ids (the text is in the `strings` segment).
    // 3: a 24-byte row header (24-bit ids and a check in the key word, a 40-bit head).
    // 4: panes keep M2 in place of the sum of squares; rows keep `last_ms` when `last` is
    //    chosen; the journal packs the pane's count with its slot and keeps `last_ms`.
    // 5: per-pane histograms (quantiles), their buckets in the shape word, and the journal of a
    //    pane's histogram after the rows.
    const TYPE_NAME: &'static str = "aggd.WindowsWord/5";
}

/// `"aggdwin"` and the layout version.
pub const MAGIC_VALUE: u64 = 0x6167_6764_7769_6e01;

/// User word: initialised marker.
pub const MAGIC: usize = 0;
/// User word: pane length in ms.
pub const EMIT_EVERY: usize = 1;
/// User word: the row layout (omitted pane columns, panes) and row count.
pub const SHAPE: usize = 2;
/// User word: the open pane.
pub const SEALED: usize = 3;
/// User word: readings folded up to this ring position.
pub const FOLDED: usize = 4;
/// User word: readings counted up to this ring position.
pub const COUNTED: usize = 5;
/// User word: emission progress.
pub const EMIT_CURSOR: usize = 6;
/// User word: `position + 1` of the reading whose fold the journal below can undo (0: none).
pub const J_POS: usize = 7;
/// User word: `row << 40 | slot << 32 | count` of the journaled pane ([`j_slot`]).
pub const J_SLOT: usize = 8;
/// User words: the journaled pane's sum, M2, min, max (four words).
pub const J_PANE: usize = 9;
/// User word: the journaled row's previous `last` value.
pub const J_LAST: usize = 13;
/// User word: the journaled row's previous `last_ms`.
pub const J_LAST_MS: usize = 14;
/// User word: rows from this one up have never been used (so a restart need not read them).
pub const ROWS_USED: usize = 15;

const _: () = assert!(J_PANE + 4 == J_LAST && J_LAST_MS < ROWS_USED && ROWS_USED < USER_WORDS);
// A row number fits the 24 bits `j_slot` gives it.
const _: () = assert!((crate::row::MAX_KEYS as u64) < 1 << 24);

/// The `J_SLOT` word of the journaled pane: its row (below 2²⁴), its slot (below 2⁸) and its
/// count (a `u32`).
#[inline]
pub fn j_slot(row: u64, slot: u64, count: u64) -> u64 {
    debug_assert!(row < 1 << 24 && slot < 1 << 8 && count <= u64::from(u32::MAX));
    row << 40 | slot << 32 | count
}

/// The row, slot and count of a `J_SLOT` word.
#[inline]
pub fn j_slot_parts(word: u64) -> (u64, u64, u64) {
    (word >> 40, (word >> 32) & 0xff, word & 0xffff_ffff)
}

/// The two tables of the windows state: the rows (with the bookkeeping words) and the key text
/// they name ([`crate::strings`]).
pub struct Tables<S> {
    /// The `windows` table: rows and bookkeeping words.
    pub rows: S,
    /// The `strings` table: the interned key text (its bookkeeping words are unused).
    pub strings: S,
}

/// The words of the windows state: rows and bookkeeping. Bookkeeping words are stored with
/// `Release`, so every row write before such a store is in place before it.
pub trait Store {
    /// The rows' words.
    fn words(&self) -> &[u64];
    /// The rows' words, for writing.
    fn words_mut(&mut self) -> &mut [u64];
    /// A bookkeeping word.
    fn word(&self, i: usize) -> u64;
    /// Sets a bookkeeping word.
    fn set_word(&self, i: usize, value: u64);
    /// Bytes this store occupies (the whole segment for the shared-memory table).
    fn bytes(&self) -> usize;
}

/// The windows table in `/dev/shm`.
pub struct TableStore(pub Table<Word>);

impl Store for TableStore {
    #[inline]
    fn words(&self) -> &[u64] {
        bytemuck::cast_slice(self.0.rows())
    }

    #[inline]
    fn words_mut(&mut self) -> &mut [u64] {
        bytemuck::cast_slice_mut(self.0.rows_mut())
    }

    #[inline]
    fn word(&self, i: usize) -> u64 {
        self.0.user_word(i)
    }

    #[inline]
    fn set_word(&self, i: usize, value: u64) {
        self.0.set_user_word(i, value)
    }

    fn bytes(&self) -> usize {
        self.0.segment_bytes()
    }
}

/// The windows state in process memory (tests, and what the table would cost on the heap).
pub struct MemStore {
    words: Vec<u64>,
    user: [AtomicU64; USER_WORDS],
}

impl MemStore {
    /// A zeroed store of `len` words.
    pub fn new(len: usize) -> MemStore {
        MemStore {
            words: vec![0; len],
            user: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Zeroed tables for windows of `cfg`.
    pub fn tables(cfg: &crate::WindowConfig) -> Tables<MemStore> {
        Tables {
            rows: MemStore::new(cfg.words() as usize),
            strings: MemStore::new(cfg.string_words() as usize),
        }
    }
}

impl Store for MemStore {
    fn words(&self) -> &[u64] {
        &self.words
    }

    fn words_mut(&mut self) -> &mut [u64] {
        &mut self.words
    }

    fn word(&self, i: usize) -> u64 {
        self.user[i].load(Ordering::Acquire)
    }

    fn set_word(&self, i: usize, value: u64) {
        self.user[i].store(value, Ordering::Release)
    }

    fn bytes(&self) -> usize {
        self.words.len() * 8 + USER_WORDS * 8
    }
}
