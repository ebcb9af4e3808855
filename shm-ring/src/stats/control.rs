//! The manager's side of the stats page: the process that starts and stops the stages (the
//! pipeline's supervisor) sets their state and pid and keeps [`CONTROL_WORDS`] words of its own
//! in each stage slot, which this crate stores and shows but never interprets.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::clock::monotonic_ms;
use crate::error::{Error, Result};
use crate::segment::SegmentName;
use crate::stats::layout::{Page, StageSlot};
use crate::stats::StageState;
#[cfg(doc)]
use crate::stats::{StageSnapshot, StatsReader, CONTROL_WORDS};

/// Write access to every stage slot's state, pid and control words, for the process that
/// starts and stops the stages (the pipeline's supervisor) and for tools that talk to it through
/// the page (an operator's restart request).
///
/// The page gives the [`CONTROL_WORDS`] words no meaning: each is a plain atomic that the manager
/// loads, stores or adds to as it sees fit, and that [`StatsReader::snapshot`] shows as
/// [`StageSnapshot::control`]. Opening needs write access to the page.
///
/// ```
/// # use shm_ring::stats::{create_stats_page, StageState, StatsControl, StatsReader};
/// # use shm_ring::SegmentName;
/// # use std::sync::atomic::Ordering;
/// let name = SegmentName::new(&format!("doc-control-{}", std::process::id()), "stats")?;
/// create_stats_page(&name, &["decoded"], &[])?;
/// let control = StatsControl::open(&name)?;
/// let decoded = control.stage("decoded")?;
/// decoded.set_state(StageState::Starting, 0);
/// decoded.word(0).fetch_add(1, Ordering::Relaxed); // say, a restart count
/// let snap = StatsReader::open(&name)?.snapshot();
/// let s = snap.stage("decoded").unwrap();
/// assert_eq!((s.state, s.control[0]), (Some(StageState::Starting), 1));
/// shm_ring::segment::remove_all(name.prefix())?;
/// # Ok::<(), shm_ring::Error>(())
/// ```
pub struct StatsControl {
    page: Page,
}

impl StatsControl {
    /// Opens the page writable.
    pub fn open(name: &SegmentName) -> Result<Self> {
        Ok(StatsControl {
            page: Page::open(name, true)?,
        })
    }

    /// The slot of `stage`; an error if the page has none.
    pub fn stage(&self, stage: &str) -> Result<ControlSlot<'_>> {
        let i = self.page.find_stage(stage).ok_or_else(|| Error::InvalidParameter {
            reason: format!("stats page has no slot for stage {stage:?}"),
        })?;
        Ok(ControlSlot {
            slot: self.page.slot(i),
        })
    }
}

/// One stage's slot as its manager sees it; from [`StatsControl::stage`].
#[derive(Clone, Copy)]
pub struct ControlSlot<'a> {
    slot: &'a StageSlot,
}

impl ControlSlot<'_> {
    /// Sets the stage's state and pid (the manager does so before it spawns the stage, which
    /// then writes its own pid on attach).
    pub fn set_state(&self, state: StageState, pid: u32) {
        self.slot.pid.store(pid, Ordering::Relaxed);
        self.slot.state.store(state as u32, Ordering::Release);
    }

    /// The state word now, or `None` for a value this version does not know.
    pub fn state(&self) -> Option<StageState> {
        StageState::from_raw(self.slot.state.load(Ordering::Acquire))
    }

    /// The pid word now.
    pub fn pid(&self) -> u32 {
        self.slot.pid.load(Ordering::Relaxed)
    }

    /// Milliseconds since the stage's last heartbeat (CLOCK_MONOTONIC), or `None` if it never beat.
    pub fn heartbeat_age_ms(&self) -> Option<u64> {
        let beat = self.slot.heartbeat_ms.load(Ordering::Relaxed);
        (beat != 0).then(|| monotonic_ms().saturating_sub(beat))
    }

    /// One of the stage's counters as last published, or `None` if it has none of that name.
    /// A single load: unlike [`StatsReader::snapshot`] it never waits for a batch boundary, and
    /// is not consistent with the stage's other counters.
    pub fn counter(&self, name: &str) -> Option<u64> {
        self.slot.counter_value(name)
    }

    /// Control word `i` (below [`CONTROL_WORDS`]; panics otherwise). Any process with write
    /// access may write it; which one does is the manager's convention.
    pub fn word(&self, i: usize) -> &AtomicU64 {
        &self.slot.control[i]
    }
}
