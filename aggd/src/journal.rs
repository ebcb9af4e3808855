//! The undo journal and the readings-ring position words: what makes every reading fold exactly
//! once, whatever instruction aggd is killed at.
//!
//! The rows and the bookkeeping words are in shared memory; the key index is rebuilt on start.
//! The writes of one reading's fold ([`crate::rows::Rows::fold`]) are ordered (compiler fences,
//! `Release` stores of the words):
//!
//! 1. find or insert the key (a row is written completely before its key word; a victim's key
//!    word is cleared before the row is reused);
//! 2. advance the key's newest pane: clear the panes that fall out of its ring, then store
//!    `head` (idempotent: redoing it changes nothing);
//! 3. write the **undo journal** ([`record`]): the target pane's five fields, its
//!    histogram's words if histograms are stored (a fold may downscale and so rewrite all of
//!    them; they go to the table's last words, after the rows) and the key's `last` and
//!    `last_ms`, then `J_POS = position + 1`;
//! 4. fold the value into the pane, `last` and `last_ms`;
//! 5. store `FOLDED = position + 1` ([`set_folded`]).
//!
//! On start (`undo`, called by [`crate::window::Windows::open`]), if `J_POS == FOLDED + 1`, the
//! fold of reading `FOLDED` was between 3 and 5: the journal is copied back, undoing any part of
//! step 4, and the reading is folded again from the ring. Otherwise step 4 had not begun (or was complete and `FOLDED` says so).
//!
//! `COUNTED` is the stage's: the position up to which readings are counted in the stats page
//! (see [`crate::stage`] for how the three positions are reconciled after a restart).

use std::sync::atomic::{compiler_fence, Ordering};

use crate::pane::PaneWords;
use crate::pane_histogram::words_per_pane;
use crate::row::RowMut;
use crate::store::{self, Store};
use crate::window_config::WindowConfig;

/// Step 3: records how to undo the fold of the reading at ring position `pos` into pane slot
/// `slot` of `row`, whose fields are `saved` and whose `last` and `last_ms` are `last` now. The
/// caller has copied the pane's histogram words to the table's words after the last row.
pub fn record<S: Store>(store: &S, pos: u64, (row, slot): (usize, usize), saved: PaneWords, last: (f64, u64)) {
    compiler_fence(Ordering::SeqCst);
    // The pane's count is a u32 (`crate::pane`), a row below 2²⁴ and a slot below 2⁸.
    store.set_word(store::J_SLOT, store::j_slot(row as u64, slot as u64, saved[0]));
    for (i, w) in saved[1..].iter().enumerate() {
        store.set_word(store::J_PANE + i, *w);
    }
    store.set_word(store::J_LAST, last.0.to_bits());
    store.set_word(store::J_LAST_MS, last.1);
    kill_point!();
    store.set_word(store::J_POS, pos.wrapping_add(1));
    compiler_fence(Ordering::SeqCst);
    kill_point!();
}

/// Step 5: every reading before ring position `pos + 1` is folded.
pub fn set_folded<S: Store>(store: &S, pos: u64) {
    kill_point!();
    store.set_word(store::FOLDED, pos.wrapping_add(1));
}

/// Readings-ring position up to which readings are folded.
pub fn folded<S: Store>(store: &S) -> u64 {
    store.word(store::FOLDED)
}

/// Readings-ring position up to which readings are counted in the stats page.
pub fn counted<S: Store>(store: &S) -> u64 {
    store.word(store::COUNTED)
}

/// Records that readings before `pos` are counted.
pub fn set_counted<S: Store>(store: &S, pos: u64) {
    store.set_word(store::COUNTED, pos);
}

/// Starts over at ring position `pos` (the table does not belong to this readings ring).
pub fn reset_positions<S: Store>(store: &S, pos: u64) {
    store.set_word(store::J_POS, 0);
    store.set_word(store::FOLDED, pos);
    store.set_word(store::COUNTED, pos);
}

/// Undoes the fold of reading `FOLDED` if the journal says it was in progress. Idempotent.
/// Returns whether it undid one.
pub(crate) fn undo<S: Store>(store: &mut S, cfg: &WindowConfig) -> bool {
    let j = store.word(store::J_POS);
    if j == 0 || j != store.word(store::FOLDED).wrapping_add(1) {
        return false;
    }
    let (row, slot, count) = store::j_slot_parts(store.word(store::J_SLOT));
    let shape = cfg.row_shape();
    if row < u64::from(cfg.max_keys) && (slot as usize) < shape.panes {
        let pane: PaneWords = std::array::from_fn(|i| {
            if i == 0 {
                count
            } else {
                store.word(store::J_PANE + i - 1)
            }
        });
        let last = f64::from_bits(store.word(store::J_LAST));
        let last_ms = store.word(store::J_LAST_MS);
        let (at, n) = (cfg.rows_words() as usize, words_per_pane(shape.buckets));
        let mut histogram = [0u64; words_per_pane(records::exp_histogram::CAPACITY)];
        histogram[..n].copy_from_slice(&store.words()[at..at + n]);
        let mut rm = RowMut::new(store.words_mut(), row as usize, shape);
        rm.panes.restore(slot as usize, pane);
        rm.panes.restore_histogram(slot as usize, &histogram[..n]);
        rm.header.last = last;
        if let Some(t) = rm.last_ms {
            *t = last_ms;
        }
    }
    compiler_fence(Ordering::SeqCst);
    store.set_word(store::J_POS, 0);
    true
}
