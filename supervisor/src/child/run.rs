//! The facts of a stage's current run that its exit is judged by, and the backoff rule that
//! judges it: a crash loop backs off, bad luck does not.

use std::time::{Duration, Instant};

/// Whether an exit ends a crash loop's run or an unlucky one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It was ready for at least `min_uptime`, or did work: restart at once, reset the backoff.
    BadLuck,
    /// It died before it was ready, or soon after without doing any work: back off.
    CrashLoop,
}

/// The backoff rule. `ready_for` is how long the stage had been ready when it exited (`None`:
/// it never was); `progressed` is whether it did work since it was ready (its input position
/// moved; for ingestd, its received counter grew).
pub fn judge(ready_for: Option<Duration>, progressed: bool, min_uptime: Duration) -> Verdict {
    match ready_for {
        Some(up) if progressed || up >= min_uptime => Verdict::BadLuck,
        _ => Verdict::CrashLoop,
    }
}

/// The facts of a stage's current (or last) run that its exit is judged by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// When it was spawned.
    started: Instant,
    /// When the supervisor saw it ready, if it did.
    ready_at: Option<Instant>,
    /// Its progress mark when it became ready (input position, or ingestd's received count).
    mark: Option<u64>,
}

impl Run {
    /// A run that starts at `now`.
    pub fn new(now: Instant) -> Run {
        Run {
            started: now,
            ready_at: None,
            mark: None,
        }
    }

    /// The stage became ready at `now`, with the progress mark `mark`; returns how long it took
    /// to start.
    pub fn ready(&mut self, now: Instant, mark: Option<u64>) -> Duration {
        self.ready_at = Some(now);
        self.mark = mark;
        now.saturating_duration_since(self.started)
    }

    /// How long it has been ready at `now`, if it became ready.
    pub fn ready_for(&self, now: Instant) -> Option<Duration> {
        self.ready_at.map(|t| now.saturating_duration_since(t))
    }

    /// Judges this run as it ends at `now` with the progress mark `mark_now`.
    pub fn verdict(&self, now: Instant, mark_now: Option<u64>, min_uptime: Duration) -> Verdict {
        let progressed = matches!((self.mark, mark_now), (Some(a), Some(b)) if a != b);
        judge(self.ready_for(now), progressed, min_uptime)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN_UPTIME: Duration = Duration::from_millis(500);
    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_stage_that_was_ready_long_enough_or_did_work_had_bad_luck() {
        assert_eq!(judge(Some(MIN_UPTIME), false, MIN_UPTIME), Verdict::BadLuck);
        assert_eq!(judge(Some(MS), true, MIN_UPTIME), Verdict::BadLuck, "did work");
        assert_eq!(judge(Some(Duration::ZERO), true, MIN_UPTIME), Verdict::BadLuck);
    }

    #[test]
    fn a_stage_that_died_unready_or_soon_without_work_is_in_a_crash_loop() {
        assert_eq!(judge(None, false, MIN_UPTIME), Verdict::CrashLoop, "never ready");
        assert_eq!(judge(None, true, MIN_UPTIME), Verdict::CrashLoop, "never ready");
        assert_eq!(judge(Some(MIN_UPTIME - MS), false, MIN_UPTIME), Verdict::CrashLoop);
    }

    #[test]
    fn a_run_is_judged_by_its_time_since_ready_and_its_progress_mark() {
        let t0 = Instant::now();
        let mut run = Run::new(t0);
        let later = t0 + Duration::from_secs(5);
        assert_eq!(
            run.verdict(later, Some(9), MIN_UPTIME),
            Verdict::CrashLoop,
            "never ready"
        );
        run.ready_at = Some(t0 + Duration::from_millis(4_900));
        run.mark = Some(9);
        assert_eq!(
            run.verdict(later, Some(9), MIN_UPTIME),
            Verdict::CrashLoop,
            "100 ms, no work"
        );
        assert_eq!(
            run.verdict(later, Some(10), MIN_UPTIME),
            Verdict::BadLuck,
            "100 ms, work"
        );
        assert_eq!(
            run.verdict(later, None, MIN_UPTIME),
            Verdict::CrashLoop,
            "unknown progress"
        );
        let much_later = t0 + Duration::from_secs(6);
        assert_eq!(run.verdict(much_later, Some(9), MIN_UPTIME), Verdict::BadLuck);
    }
}
