//! aggd's counters on the stats page (stage `aggd`).
//!
//! Readings: `received = forwarded + error.*` (forwarded: folded into a window), per published
//! batch. The other counters count aggregates, keys and clamped readings; they are not part of
//! that sum.
//!
//! | counter | counts |
//! |---|---|
//! | `received` | readings taken from the readings ring |
//! | `forwarded` | readings folded into a window |
//! | `error.non_finite`, `error.empty_id` | readings refused (decoded should have refused them) |
//! | `error.pane_full` | readings refused because their key's pane already held 2³²−1 samples |
//! | `aggregates.emitted` | aggregates handed to the aggregates ring |
//! | `dropped.aggregates_ring_full` | aggregates not handed on: the ring was full |
//! | `evicted.idle` | keys forgotten after `idle_ttl_ms` without a sample (their window was empty) |
//! | `evicted.capacity` | keys evicted (least recently seen) to make room: their samples leave early |
//! | `evicted.clock` | keys forgotten because the wall clock went back by more than a window |
//! | `keys.inserted` | keys added; tracked keys = `keys.inserted − evicted.*` |
//! | `late.clamped` | readings whose pane was already emitted, folded into the open pane |
//! | `early.clamped` | readings stamped after aggd's clock, folded into the current pane |
//! | `windows.replaced` | starts that found a windows table of another shape or layout (window settings or `statistics` changed) and replaced it: its windows were dropped |

use records::names::{counter, drop_reason, error_reason, gauge};
use shm_ring::stats::CounterId;
use stage_runtime::StageCounters;

use crate::events::{Reject, Tally};

/// `error.pane_full` (aggd's own; not in `records::names`).
pub const PANE_FULL: &str = "error.pane_full";
/// Aggregates handed on.
pub const AGGREGATES_EMITTED: &str = records::names::counter::AGGREGATES_EMITTED;
/// Keys evicted for idleness.
pub const EVICTED_IDLE: &str = "evicted.idle";
/// Keys evicted for room.
pub const EVICTED_CAPACITY: &str = "evicted.capacity";
/// Keys forgotten after a backward clock step.
pub const EVICTED_CLOCK: &str = "evicted.clock";
/// Keys added.
pub const KEYS_INSERTED: &str = "keys.inserted";
/// Late readings clamped into the open pane.
pub const LATE_CLAMPED: &str = "late.clamped";
/// Future-stamped readings clamped into the wall-clock pane.
pub const EARLY_CLAMPED: &str = "early.clamped";
/// Windows tables of another shape or layout replaced on start.
pub const WINDOWS_REPLACED: &str = "windows.replaced";

/// The stage's slot and the ids of its counters.
pub struct Counters {
    slot: StageCounters,
    received: CounterId,
    forwarded: CounterId,
    non_finite: CounterId,
    empty_id: CounterId,
    pane_full: CounterId,
    emitted: CounterId,
    dropped: CounterId,
    evicted_idle: CounterId,
    evicted_capacity: CounterId,
    evicted_clock: CounterId,
    inserted: CounterId,
    late: CounterId,
    early: CounterId,
    windows_replaced: CounterId,
    /// `gauge.keys_tracked`: keys in the window table, set at every publish.
    keys_tracked: CounterId,
}

impl Counters {
    /// Registers the counters in aggd's slot of the stats page (from the frame:
    /// `stage_runtime::Context::counters`).
    pub fn new(mut slot: StageCounters) -> Result<Counters, shm_ring::Error> {
        Ok(Counters {
            received: slot.id(counter::RECEIVED)?,
            forwarded: slot.id(counter::FORWARDED)?,
            non_finite: slot.id(error_reason::NON_FINITE)?,
            empty_id: slot.id(error_reason::EMPTY_ID)?,
            pane_full: slot.id(PANE_FULL)?,
            emitted: slot.id(AGGREGATES_EMITTED)?,
            dropped: slot.id(drop_reason::AGGREGATES_RING_FULL)?,
            evicted_idle: slot.id(EVICTED_IDLE)?,
            evicted_capacity: slot.id(EVICTED_CAPACITY)?,
            evicted_clock: slot.id(EVICTED_CLOCK)?,
            inserted: slot.id(KEYS_INSERTED)?,
            late: slot.id(LATE_CLAMPED)?,
            early: slot.id(EARLY_CLAMPED)?,
            windows_replaced: slot.id(WINDOWS_REPLACED)?,
            keys_tracked: slot.id(gauge::KEYS_TRACKED)?,
            slot,
        })
    }

    /// Counts one reading taken, and its verdict.
    #[inline]
    pub fn reading(&mut self, verdict: Result<(), Reject>) {
        self.slot.add(self.received, 1);
        let id = match verdict {
            Ok(()) => self.forwarded,
            Err(Reject::NonFinite) => self.non_finite,
            Err(Reject::EmptyId) => self.empty_id,
            Err(Reject::PaneFull) => self.pane_full,
        };
        self.slot.add(id, 1);
    }

    /// Adds the windows' events.
    pub fn tally(&mut self, t: Tally) {
        for (id, n) in [
            (self.emitted, t.emitted),
            (self.dropped, t.dropped),
            (self.evicted_idle, t.evicted_idle),
            (self.evicted_capacity, t.evicted_capacity),
            (self.evicted_clock, t.evicted_clock),
            (self.inserted, t.inserted),
            (self.late, t.late),
            (self.early, t.early),
        ] {
            if n > 0 {
                self.slot.add(id, n);
            }
        }
    }

    /// Counts a windows table replaced on start (published with the next flush).
    pub fn windows_replaced(&mut self) {
        self.slot.add(self.windows_replaced, 1);
    }

    /// Sets the number of keys in the window table (published with the next flush).
    pub fn keys_tracked(&mut self, keys: u64) {
        self.slot.set_gauge(self.keys_tracked, keys);
    }

    /// Publishes everything added so far (one consistent step) and beats the heartbeat.
    pub fn flush(&mut self) {
        self.slot.flush();
    }

    /// The stage slot (ring depth).
    pub fn slot(&self) -> &StageCounters {
        &self.slot
    }
}
