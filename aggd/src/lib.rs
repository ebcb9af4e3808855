//! `aggd`: the window aggregator. It takes `Reading`s from the readings ring, keeps a sliding
//! window per (device, sensor) — by default the last 60 s, emitted every 5 s — and hands one
//! `Aggregate` per key and emission to the aggregates ring (to emitd).
//!
//! # Design
//!
//! - **Panes, not samples** ([`pane`], [`clock`]). The window is P panes of one emit interval
//!   each, aligned to multiples of the interval on the wall clock. A pane holds count, sum, sum
//!   of squares, min and max; the window's aggregate is their merge, which gives exactly the
//!   count, min, max and mean that the seed's raw-sample method gives (the mean up to float
//!   summation order). A reading goes to the pane of its `received_ms`; late ones are clamped
//!   into the open pane, future ones into the wall-clock pane ([`fold`] has the rules).
//! - **State in shared memory** ([`store`], [`row`], [`keys`]). The windows live in the
//!   `windows` table segment, one row per key, so a restarted aggd re-attaches them: killing
//!   aggd does not reset everyone's window. Rows are written so that a kill at any instruction
//!   leaves each row free or complete, and the in-memory index is rebuilt from the rows on
//!   start.
//! - **Exactly once across a kill** ([`journal`], [`emit`], [`stage`]). An undo journal in the table's
//!   bookkeeping words and the position of the last folded reading make every reading fold
//!   exactly once; an emission cursor plus the last aggregate in the ring make every aggregate go
//!   out at most once.
//! - **Bounded memory** ([`keys`]). At most `max_keys` keys (the least recently seen is evicted,
//!   counted); idle keys are forgotten after `idle_ttl_ms` (counted).
//! - **Never blocked by its output** ([`sink`]). A full aggregates ring drops and counts; the
//!   readings keep being folded.
//!
//! # Memory per key
//!
//! A row is 128 bytes of header (the key's device, sensor and unit text inline, its tag, newest
//! pane and latest value) plus, per pane, a 4-byte count and 8 bytes for each column the chosen
//! statistics need (`[aggd] statistics`, see [`pane::Columns`]): `128 + (4 + 8·k)·P` bytes with
//! `k` from 0 to 4. With the default 12 panes that is **560 bytes per key** for the full set
//! (`k = 4`) and 272 for `["count", "mean"]` (`k = 1`) in the table segment (reserved for all
//! `max_keys`; pages are touched only as rows are used), plus about 11 bytes per key of heap for
//! the index, measured by the `bytes_per_key_of_the_default_shape` test and, all-in at any key
//! count, by `scripts/bench-aggd-memory.sh`. docs/decisions.md D10 and D17 say why and what is
//! left (interning the key text).

#![deny(missing_docs)]

#[macro_use]
mod kill;

pub mod clock;
pub mod counters;
pub mod emit;
pub mod fold;
pub mod journal;
pub mod keys;
pub mod pane;
mod prefetch;
pub mod row;
pub mod sink;
pub mod stage;
pub mod store;
pub mod window;

#[cfg(test)]
mod reference;

pub use stage::{Segments, Stage, StartError};
pub use window::{WindowConfig, Windows};
