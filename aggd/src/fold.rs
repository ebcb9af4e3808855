//! Folding: which pane a reading goes to ([`due_before`], [`pane_for`]). Finding or inserting its
//! key's row, evicting and the fold of one value into a pane are [`crate::rows::Rows`]'; the
//! windows ([`crate::window::Windows::fold`]) put the two together. Folding never emits:
//! [`due_before`] says which boundary must be emitted (by [`crate::emit`]) before a reading can be
//! folded, and the caller emits it first.
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
//!   passed, so they are emitted first (event time: [`due_before`] returns `p`), and
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

use records::Reading;

use crate::clock::Panes;
use crate::events::{Reject, Tally};

/// The boundary that must be emitted before `r` can be folded, if any, with the open pane
/// `sealed`: the reading's pane when it is ahead of the open pane, but not past the wall clock.
/// `now` is the caller's recent wall-clock reading (ms), refreshed from `clock` if the reading
/// looks ahead of it. Readings that will be rejected emit nothing.
#[inline]
pub fn due_before<C: FnMut() -> u64>(
    panes: &Panes,
    sealed: u64,
    r: &Reading,
    now: &mut u64,
    clock: &mut C,
) -> Option<u64> {
    let p = panes.pane_of(r.received_ms);
    if p <= sealed || Reject::check(r).is_err() {
        return None;
    }
    if p > panes.pane_of(*now) {
        *now = clock();
    }
    let due = p.min(panes.pane_of(*now));
    (due > sealed).then_some(due)
}

/// The pane a reading stamped `t` goes to once what is due is emitted: the open pane `sealed`,
/// counting the reading if it is clamped there.
#[inline]
pub fn pane_for(panes: &Panes, sealed: u64, t: u64, tally: &mut Tally) -> u64 {
    let p = panes.pane_of(t);
    if p < sealed {
        tally.late += 1;
    } else if p > sealed {
        tally.early += 1;
    }
    sealed
}
