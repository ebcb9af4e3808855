//! `aggd`: the window aggregator. It takes `Reading`s from the readings ring, keeps a sliding
//! window per (device, sensor) — by default the last 60 s, emitted every 5 s — and hands one
//! `Aggregate` per key and emission to the aggregates ring (to emitd).
//!
//! # Design
//!
//! - **Panes, not samples** ([`pane`], [`clock`]). The window is P panes of one emit interval
//!   each, aligned to multiples of the interval on the wall clock. A pane holds count, sum, M2
//!   (Welford's, not a sum of squares), min and max; the window's aggregate is their merge
//!   ([`records::merge`]'s rules, the same that merge several pipelines' partial aggregates),
//!   which gives exactly the count, min, max and last that the seed's raw-sample method gives
//!   (the mean and stddev up to float rounding). A reading goes to the pane of its `received_ms`; late ones are clamped
//!   into the open pane, future ones into the wall-clock pane ([`fold`] has the rules).
//! - **State in shared memory** ([`store`], [`row`], [`strings`], [`keys`]). The windows live in
//!   the `windows` table segment, one row per key, and the key text they name in the `strings`
//!   segment, so a restarted aggd re-attaches them: killing aggd does not reset everyone's
//!   window. Rows are written so that a kill at any instruction leaves each row free or
//!   complete, and the in-memory indexes (keys, and the text's reference counts) are rebuilt
//!   from the rows on start.
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
//! A row is a 24-byte header (its key word: the ids of its device and sensor text and a check of
//! the key's hash; its newest pane and unit id; its latest value, see [`row`]), 8 bytes for the
//! time of that value when `last` is chosen, plus, per pane, a 4-byte count and 8 bytes for each
//! column the chosen statistics need (`[aggd] statistics`, see [`pane::Columns`]):
//! `24 + 8·l + (4 + 8·k)·P` bytes with `k` from 0 to 4, and `(8 + 4·B)·P` more when quantiles or
//! the histogram are chosen (a histogram of `B = [aggd] histogram_buckets` buckets per pane, see
//! [`pane_histogram`]). With the default 12 panes that is **464 bytes per key** for the default
//! set (`k = 4`, `l = 1`), **168** for `["count", "mean"]` (`k = 1`), **936** for `["count",
//! "quantiles"]` and **1328** for every statistic (`B = 16`) in the `windows` segment (reserved for all `max_keys`; pages are touched only as
//! rows are used). The key text is stored once per distinct string in the `strings` segment
//! ([`strings`]: 56 bytes a string, so about 6 bytes per key when each device has 10 sensors),
//! and the heap holds about 6 bytes per key of indexes ([`key_index`], [`strings`]).
//! The `bytes_per_key_of_the_default_shape` test checks the row sizes on the real segment;
//! `scripts/bench-aggd-memory.sh` measures everything, all in, at any number of keys.
//! docs/decisions.md D10 and D17 have the reasoning and the figures.

#![deny(missing_docs)]

#[macro_use]
mod kill;

pub mod clock;
pub mod counters;
pub mod emit;
pub mod events;
pub mod fold;
pub mod journal;
pub mod key_index;
pub mod keys;
pub mod pane;
pub mod pane_histogram;
mod prefetch;
mod probe;
pub mod row;
pub mod rows;
pub mod sink;
pub mod stage;
pub mod store;
pub mod strings;
pub mod window;
pub mod window_config;

#[cfg(test)]
mod reference;

pub use stage::Stage;
pub use window::{WindowConfig, Windows};
