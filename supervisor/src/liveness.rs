//! Liveness ([`Liveness`]): is each stage ready, alive and moving? It owns the hang timeout and
//! the schedule of the periodic look, and judges one stage at a time; the loop acts on what it
//! finds (`Supervisor::check`). The loop asks on two occasions:
//!
//! - a stage wrote to the readiness pipe: every starting stage whose slot in the stats page
//!   reports `Running` (with its own pid) is ready ([`Liveness::is_ready`]);
//! - every check interval ([`check_interval`]): readiness again (in case a wake-up was lost),
//!   exits of children without a pidfd, hangs ([`Liveness::hang`]), and operators' restart
//!   requests.
//!
//! A stage is hung, killed and restarted (counted in `hangs`, with the reason in its slot) when
//!
//! - its heartbeat is older than `hang_timeout_ms` ([`HangReason::Heartbeat`]);
//! - decoded or aggd: its input ring holds records and its output ring has room, but its read
//!   position has not moved for `hang_timeout_ms` ([`HangReason::NoProgress`]). Not emitd, which
//!   in JetStream mode holds its position on purpose while NATS is away, and not ingestd, which
//!   has no input ring (see `ChildSpec::must_keep_moving`);
//! - it is still starting after `start_timeout_ms` ([`HangReason::StartTimeout`]; that deadline
//!   is the loop's, see `Supervisor::on_time`).

use std::time::{Duration, Instant};

use pipeline_stats::lifecycle::HangReason;
use tracing::warn;

use crate::child::Supervised;
use crate::page::Page;

/// How often the loop looks at heartbeats, stalls and restart requests: a quarter of the hang
/// timeout (so a hang is found at most a quarter late), from 50 ms to 1 s.
pub fn check_interval(hang_timeout: Duration) -> Duration {
    (hang_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(1))
}

/// The hang timeout and the periodic look's schedule.
pub struct Liveness {
    hang_timeout: Duration,
    check_every: Duration,
    next_check: Instant,
}

impl Liveness {
    /// Liveness with `hang_timeout`; the first periodic look is one interval after `now`.
    pub fn new(hang_timeout: Duration, now: Instant) -> Liveness {
        let check_every = check_interval(hang_timeout);
        Liveness {
            hang_timeout,
            check_every,
            next_check: now + check_every,
        }
    }

    /// How often the periodic look comes (see [`check_interval`]).
    pub fn check_every(&self) -> Duration {
        self.check_every
    }

    /// When the periodic look is next due.
    pub fn next_check(&self) -> Instant {
        self.next_check
    }

    /// Whether the periodic look is due at `now`; if so, the next one is scheduled.
    pub fn due(&mut self, now: Instant) -> bool {
        if now < self.next_check {
            return false;
        }
        self.next_check = now + self.check_every;
        true
    }

    /// Whether a starting stage has become ready: its slot reports `Running` with its pid.
    pub fn is_ready(&self, child: &Supervised, page: &Page) -> bool {
        child.is_starting() && page.reports_running(child.name(), child.pid())
    }

    /// Why a running stage is hung at `now`, if it is.
    pub fn hang(&self, child: &mut Supervised, page: &Page, now: Instant) -> Option<HangReason> {
        let age_ms = page.heartbeat_age_ms(child.name())?;
        if age_ms > self.hang_timeout.as_millis() as u64 {
            warn!(stage = child.name(), heartbeat_age_ms = age_ms, "heartbeat too old");
            return Some(HangReason::Heartbeat);
        }
        let stalled = child.stalled(now)?;
        if stalled.stalled <= self.hang_timeout {
            return None;
        }
        warn!(
            stage = child.name(),
            position = stalled.position,
            pending = stalled.pending,
            stalled_ms = stalled.stalled.as_millis() as u64,
            "input pending and room downstream, but the position does not move"
        );
        Some(HangReason::NoProgress)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_check_interval_is_a_quarter_of_the_hang_timeout_within_bounds() {
        assert_eq!(check_interval(Duration::from_secs(10)), Duration::from_secs(1));
        assert_eq!(check_interval(Duration::from_secs(2)), Duration::from_millis(500));
        assert_eq!(check_interval(Duration::from_millis(100)), Duration::from_millis(50));
    }

    #[test]
    fn the_periodic_look_is_due_once_per_interval() {
        let t0 = Instant::now();
        let mut l = Liveness::new(Duration::from_secs(2), t0);
        assert_eq!(l.next_check(), t0 + Duration::from_millis(500));
        assert!(!l.due(t0 + Duration::from_millis(499)));
        assert!(l.due(t0 + Duration::from_millis(600)));
        assert_eq!(
            l.next_check(),
            t0 + Duration::from_millis(1_100),
            "from the look, not the plan"
        );
        assert!(!l.due(t0 + Duration::from_millis(700)));
    }
}
