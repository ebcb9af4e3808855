//! The supervisor's hold on the stats page ([`Page`]): its own slot's counters (restarts, hangs,
//! poison records skipped, dead letters lost) and the control words of the stages' slots
//! (`pipeline_stats::lifecycle`), written together so that a restart or a hang is always counted
//! in both; and what it reads back from the stages' slots (states, heartbeats, restart requests).
//!
//! A write that fails (a slot missing from a page of another layout) is dropped: the page is for
//! operators, and supervising must go on without it.

use pipeline_stats::lifecycle::{ExitStatus, HangReason, Lifecycle};
use records::names::{counter, segment, stage, supervisor_counter};
use shm_ring::stats::{CounterId, StageState};
use shm_ring::SegmentName;
use stage_runtime::StageCounters;

/// The supervisor's own counters in the stats page.
struct Ids {
    restarts: CounterId,
    hangs: CounterId,
    poison_skipped: CounterId,
    dead_letter_full: CounterId,
}

/// The stats page as the supervisor writes and reads it.
pub struct Page {
    lifecycle: Lifecycle,
    own: StageCounters,
    ids: Ids,
}

impl Page {
    /// Attaches to the stats page of pipeline `prefix` (which `segments::prepare` created), takes
    /// the supervisor's slot and marks it running.
    pub fn open(prefix: &str) -> Result<Page, shm_ring::Error> {
        let page = SegmentName::new(prefix, segment::STATS)?;
        let lifecycle = Lifecycle::open(&page)?;
        let mut own = StageCounters::attach(&page, stage::SUPERVISOR)?;
        let ids = Ids {
            restarts: own.id(supervisor_counter::RESTARTS)?,
            hangs: own.id(supervisor_counter::HANGS)?,
            poison_skipped: own.id(supervisor_counter::POISON_SKIPPED)?,
            dead_letter_full: own.id(supervisor_counter::DEAD_LETTER_FULL)?,
        };
        own.set_state(StageState::Running);
        own.flush();
        Ok(Page { lifecycle, own, ids })
    }

    /// Publishes the supervisor's counters and heartbeat.
    pub fn flush(&mut self) {
        self.own.flush();
    }

    /// Sets the supervisor's own state.
    pub fn set_own_state(&self, state: StageState) {
        self.own.set_state(state);
    }

    /// Sets a stage's state and pid.
    pub fn set_state(&self, stage: &str, state: StageState, pid: u32) {
        let _ = self.lifecycle.set_state(stage, state, pid);
    }

    /// Records how a stage ended, and that it is now `exited`.
    pub fn record_exit(&self, stage: &str, exit: ExitStatus) {
        let _ = self.lifecycle.record_exit(stage, exit);
    }

    /// Counts a restart of `stage`.
    pub fn count_restart(&mut self, stage: &str) {
        self.own.add(self.ids.restarts, 1);
        let _ = self.lifecycle.count_restart(stage);
    }

    /// Counts a hang of `stage` and says why (its restart is counted when it happens).
    pub fn count_hang(&mut self, stage: &str, reason: HangReason) {
        self.own.add(self.ids.hangs, 1);
        let _ = self.lifecycle.count_hang(stage, reason);
    }

    /// Counts a poison record taken out of `ring`: in all, and per ring, so that telemetryctl's
    /// balance can account for it.
    pub fn count_poison_skipped(&mut self, ring: &str) {
        self.own.add(self.ids.poison_skipped, 1);
        if let Ok(id) = self.own.id(&format!("{}.{ring}", supervisor_counter::POISON_SKIPPED)) {
            self.own.add(id, 1);
        }
    }

    /// Counts a poison record that the dead-letter file did not take.
    pub fn count_dead_letter_full(&mut self) {
        self.own.add(self.ids.dead_letter_full, 1);
    }

    /// Whether `stage`'s slot says it is running with process `pid` (the pid too: the state
    /// could still be a predecessor's).
    pub fn reports_running(&self, stage: &str, pid: u32) -> bool {
        self.lifecycle
            .slot(stage)
            .is_ok_and(|slot| slot.state() == Some(StageState::Running) && slot.pid() == pid)
    }

    /// The age of `stage`'s heartbeat (0 if it never beat); `None` without a slot.
    pub fn heartbeat_age_ms(&self, stage: &str) -> Option<u64> {
        Some(self.lifecycle.slot(stage).ok()?.heartbeat_age_ms().unwrap_or(0))
    }

    /// `stage`'s received counter, a single load (see `Supervised::progress_mark`).
    pub fn received(&self, stage: &str) -> Option<u64> {
        self.lifecycle.slot(stage).ok()?.counter(counter::RECEIVED)
    }

    /// How many restarts operators have asked for `stage` so far (0 without a slot).
    pub fn restart_requests(&self, stage: &str) -> u64 {
        self.lifecycle.restart_requests(stage).unwrap_or(0)
    }
}
