//! The supervisor's side of the stats page: what the control words of each stage slot mean.
//!
//! shm-ring stores [`CONTROL_WORDS`] atomic words per stage and gives them no meaning (see
//! `shm_ring::stats::StatsControl`). This module is their only interpreter, for the supervisor that
//! writes them and for `telemetryctl`, which shows them and asks for restarts through them:
//!
//! | word | meaning | written by |
//! |---|---|---|
//! | [`Word::Restarts`] | restarts since the page was created | the supervisor |
//! | [`Word::Hangs`] | of which the stage was killed as hung | the supervisor |
//! | [`Word::LastExit`] | how the last process ended, an encoded [`ExitStatus`] | the supervisor |
//! | [`Word::RestartRequests`] | restarts an operator asked for; the supervisor restarts the stage whenever it grows | `telemetryctl restart` (adds 1) |
//! | [`Word::LastHang`] | why the stage was last killed as hung, a [`HangReason`] code | the supervisor |
//!
//! The other words are unused.

use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::Ordering;

use shm_ring::stats::{StageSnapshot, StageState, StatsControl, CONTROL_WORDS};
use shm_ring::SegmentName;

/// The control words this module uses, by index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Word {
    /// Restarts since the page was created.
    Restarts = 0,
    /// Restarts of a stage killed as hung (also counted in `Restarts`).
    Hangs = 1,
    /// The encoded [`ExitStatus`] of the last exit.
    LastExit = 2,
    /// Restart requests from operators.
    RestartRequests = 3,
    /// The [`HangReason`] code of the last hang (0: never hung).
    LastHang = 4,
}

const _: () = assert!((Word::LastHang as usize) < CONTROL_WORDS);

impl Word {
    /// This word's value in a snapshot.
    pub fn of(self, s: &StageSnapshot) -> u64 {
        s.control[self as usize]
    }
}

/// How a stage process last ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// It has not exited (since the page was created).
    None,
    /// It exited with this code.
    Code(i32),
    /// A signal killed it.
    Signal(i32),
}

impl ExitStatus {
    /// The one place where a process's wait status becomes ours (a code, else a signal).
    pub fn from_wait(status: std::process::ExitStatus) -> ExitStatus {
        match (status.code(), status.signal()) {
            (Some(code), _) => ExitStatus::Code(code),
            (None, Some(sig)) => ExitStatus::Signal(sig),
            // Neither: only for a stopped or continued status, which `wait` never returns here.
            (None, None) => ExitStatus::Code(-1),
        }
    }

    /// Whether this looks like a crash in the stage's own code (a Rust panic exits 101; a fault
    /// raises one of these signals), as opposed to being killed or exiting on purpose.
    pub fn crashed(self) -> bool {
        match self {
            ExitStatus::Code(code) => code == 101,
            ExitStatus::Signal(sig) => {
                [libc::SIGABRT, libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE].contains(&sig)
            }
            ExitStatus::None => false,
        }
    }

    /// As stored in [`Word::LastExit`]: the kind in the high half, the value in the low half.
    pub fn encode(self) -> u64 {
        match self {
            ExitStatus::None => 0,
            ExitStatus::Code(c) => (1 << 32) | u64::from(c as u32),
            ExitStatus::Signal(s) => (2 << 32) | u64::from(s as u32),
        }
    }

    /// The inverse of [`ExitStatus::encode`]; an unknown kind reads as `None`.
    pub fn decode(v: u64) -> ExitStatus {
        match v >> 32 {
            1 => ExitStatus::Code(v as u32 as i32),
            2 => ExitStatus::Signal(v as u32 as i32),
            _ => ExitStatus::None,
        }
    }
}

/// Why the supervisor killed a stage as hung.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum HangReason {
    /// Its heartbeat was older than `hang_timeout_ms`.
    Heartbeat = 1,
    /// It stayed in `starting` longer than `start_timeout_ms`.
    StartTimeout = 2,
    /// Its input ring had records and room downstream, but its position did not move for
    /// `hang_timeout_ms`.
    NoProgress = 3,
}

impl HangReason {
    /// The code stored in [`Word::LastHang`], or `None` for 0 and unknown codes.
    pub fn decode(v: u64) -> Option<HangReason> {
        Some(match v {
            1 => HangReason::Heartbeat,
            2 => HangReason::StartTimeout,
            3 => HangReason::NoProgress,
            _ => return None,
        })
    }

    /// As shown by `telemetryctl` (`heartbeat`, `start_timeout`, `no_progress`).
    pub fn as_str(self) -> &'static str {
        match self {
            HangReason::Heartbeat => "heartbeat",
            HangReason::StartTimeout => "start_timeout",
            HangReason::NoProgress => "no_progress",
        }
    }

    /// One phrase for a log line or `telemetryctl status`.
    pub fn describe(self) -> &'static str {
        match self {
            HangReason::Heartbeat => "its heartbeat was older than hang_timeout_ms",
            HangReason::StartTimeout => "it stayed starting longer than start_timeout_ms",
            HangReason::NoProgress => "its input was pending but its position did not move for hang_timeout_ms",
        }
    }
}

/// One stage's control words, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StageLifecycle {
    /// Restarts since the page was created.
    pub restarts: u64,
    /// Of which the stage was killed as hung.
    pub hangs: u64,
    /// How its last process ended.
    pub last_exit: ExitStatus,
    /// Why it was last killed as hung, if ever.
    pub last_hang: Option<HangReason>,
}

impl StageLifecycle {
    /// Decodes a stage's words from a snapshot.
    pub fn of(s: &StageSnapshot) -> StageLifecycle {
        StageLifecycle {
            restarts: Word::Restarts.of(s),
            hangs: Word::Hangs.of(s),
            last_exit: ExitStatus::decode(Word::LastExit.of(s)),
            last_hang: HangReason::decode(Word::LastHang.of(s)),
        }
    }

    /// Writes these values into a snapshot's words (for building test snapshots).
    pub fn write_to(&self, s: &mut StageSnapshot) {
        s.control[Word::Restarts as usize] = self.restarts;
        s.control[Word::Hangs as usize] = self.hangs;
        s.control[Word::LastExit as usize] = self.last_exit.encode();
        s.control[Word::LastHang as usize] = self.last_hang.map_or(0, |h| h as u64);
    }
}

/// Writes the control words: the supervisor's handle, and `telemetryctl restart`'s.
pub struct Lifecycle {
    control: StatsControl,
}

impl Lifecycle {
    /// Opens the page writable.
    pub fn open(page: &SegmentName) -> Result<Lifecycle, shm_ring::Error> {
        Ok(Lifecycle {
            control: StatsControl::open(page)?,
        })
    }

    /// The page's slot of `stage`, for its state, pid and heartbeat.
    pub fn slot(&self, stage: &str) -> Result<shm_ring::stats::ControlSlot<'_>, shm_ring::Error> {
        self.control.stage(stage)
    }

    /// Sets a stage's state and pid.
    pub fn set_state(&self, stage: &str, state: StageState, pid: u32) -> Result<(), shm_ring::Error> {
        self.slot(stage)?.set_state(state, pid);
        Ok(())
    }

    /// Records how a stage ended, and that it is now `exited`.
    pub fn record_exit(&self, stage: &str, exit: ExitStatus) -> Result<(), shm_ring::Error> {
        let s = self.slot(stage)?;
        s.word(Word::LastExit as usize).store(exit.encode(), Ordering::Relaxed);
        s.set_state(StageState::Exited, s.pid());
        Ok(())
    }

    /// Counts a restart.
    pub fn count_restart(&self, stage: &str) -> Result<(), shm_ring::Error> {
        self.slot(stage)?
            .word(Word::Restarts as usize)
            .fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Counts a hang and says why (its restart is counted when it happens).
    pub fn count_hang(&self, stage: &str, reason: HangReason) -> Result<(), shm_ring::Error> {
        let s = self.slot(stage)?;
        s.word(Word::LastHang as usize).store(reason as u64, Ordering::Relaxed);
        s.word(Word::Hangs as usize).fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Asks the supervisor to restart `stage`; returns the new number of requests.
    pub fn request_restart(&self, stage: &str) -> Result<u64, shm_ring::Error> {
        Ok(self
            .slot(stage)?
            .word(Word::RestartRequests as usize)
            .fetch_add(1, Ordering::AcqRel)
            + 1)
    }

    /// How many restarts have been asked for `stage` so far.
    pub fn restart_requests(&self, stage: &str) -> Result<u64, shm_ring::Error> {
        Ok(self
            .slot(stage)?
            .word(Word::RestartRequests as usize)
            .load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_status_round_trips() {
        for s in [
            ExitStatus::None,
            ExitStatus::Code(0),
            ExitStatus::Code(-1),
            ExitStatus::Code(101),
            ExitStatus::Signal(9),
        ] {
            assert_eq!(ExitStatus::decode(s.encode()), s);
        }
    }

    #[test]
    fn a_wait_status_is_a_code_or_a_signal() {
        assert_eq!(
            ExitStatus::from_wait(std::process::ExitStatus::from_raw(3 << 8)),
            ExitStatus::Code(3)
        );
        assert_eq!(
            ExitStatus::from_wait(std::process::ExitStatus::from_raw(libc::SIGKILL)),
            ExitStatus::Signal(libc::SIGKILL)
        );
        assert!(ExitStatus::Code(101).crashed() && ExitStatus::Signal(libc::SIGSEGV).crashed());
        assert!(!ExitStatus::Signal(libc::SIGKILL).crashed() && !ExitStatus::Code(1).crashed());
    }

    #[test]
    fn hang_reasons_round_trip_and_zero_is_none() {
        for h in [HangReason::Heartbeat, HangReason::StartTimeout, HangReason::NoProgress] {
            assert_eq!(HangReason::decode(h as u64), Some(h));
        }
        assert_eq!(HangReason::decode(0), None);
        assert_eq!(HangReason::decode(99), None);
    }
}
