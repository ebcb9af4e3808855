//! What the windows report to the stage: why a reading was not folded ([`Reject`]) and the
//! events since the stage last asked ([`Tally`]), each an `error.*`, `dropped.*`, `evicted.*`
//! or `late`/`early` counter.

use records::{FixedText, Reading};

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

/// Events since the last [`crate::Windows::take_tally`], for the stage's counters.
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
