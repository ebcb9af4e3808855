//! One supervised stage: its phase, the facts of its current run, and the decisions that depend
//! only on them, kept free of processes and pages so that they can be tested alone:
//!
//! - when it is next due ([`Supervised::deadline`], [`nearest`]);
//! - how long to wait before restarting it after an exit ([`judge`]: a crash loop backs off,
//!   bad luck does not);
//! - whether its input has stalled ([`Stall`]).

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use shm_ring::RingObserver;
use stage_runtime::Backoff;

use crate::child_spec::ChildSpec;

/// The first backoff step of a crash loop; it doubles up to [`BACKOFF_MAX`].
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// The longest backoff of a crash loop.
pub const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Where a stage is in its life, as the supervisor sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Not started yet (waiting for the stages before it).
    Pending,
    /// Spawned at `since`, not yet reporting ready.
    Starting {
        /// When it was spawned.
        since: Instant,
    },
    /// Reporting ready since `since`.
    Running {
        /// When the supervisor saw it ready.
        since: Instant,
    },
    /// Exited; restart due at the given time.
    RestartAt(Instant),
    /// Asked to stop (an operator's restart request); killed at the deadline.
    Stopping {
        /// When it gets SIGKILL.
        deadline: Instant,
        /// Whether to start it again once it has exited.
        restart: bool,
    },
    /// Killed as hung; waiting for its exit.
    Killed,
}

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

/// Tracks whether a stage's input position stands still while it has records to read and room
/// to write them: fed one look at a time, it says for how long that has been so.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stall {
    position: Option<u64>,
    since: Option<Instant>,
}

impl Stall {
    /// Forgets what it saw (a new run).
    pub fn reset(&mut self) {
        *self = Stall::default();
    }

    /// One look at `now`: the consumer `position`, whether records are `pending` in the input,
    /// and whether the output has `room`. Returns how long the stage has been stalled, counted
    /// from the first look that found the position where it is now with work to do (never more
    /// than the truth, so a hang is never declared early).
    pub fn observe(&mut self, now: Instant, position: u64, pending: bool, room: bool) -> Option<Duration> {
        let moved = self.position.replace(position) != Some(position);
        if !pending || !room {
            self.since = None;
            return None;
        }
        if moved {
            self.since = Some(now);
            return None;
        }
        let since = *self.since.get_or_insert(now);
        Some(now.saturating_duration_since(since))
    }
}

/// The facts of a stage's current (or last) run that its exit is judged by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// When it was spawned.
    pub started: Instant,
    /// When the supervisor saw it ready, if it did.
    pub ready_at: Option<Instant>,
    /// Its progress mark when it became ready (input position, or ingestd's received count).
    pub mark: Option<u64>,
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

    /// Judges this run as it ends at `now` with the progress mark `mark_now`.
    pub fn verdict(&self, now: Instant, mark_now: Option<u64>, min_uptime: Duration) -> Verdict {
        let progressed = matches!((self.mark, mark_now), (Some(a), Some(b)) if a != b);
        judge(
            self.ready_at.map(|t| now.saturating_duration_since(t)),
            progressed,
            min_uptime,
        )
    }
}

/// One supervised stage.
pub struct Supervised {
    /// What it is.
    pub spec: ChildSpec,
    /// Its process, while there is one.
    pub process: Option<std::process::Child>,
    /// Readable once the process has exited; `None` if pidfd_open failed (then the periodic
    /// check looks for its exit instead).
    pub pidfd: Option<OwnedFd>,
    /// Where it is in its life.
    pub phase: Phase,
    /// Its current run.
    pub run: Run,
    /// Its input ring, read-only (for progress and stalls).
    pub input: Option<RingObserver>,
    /// Its output ring, read-only (whether it has room).
    pub output: Option<RingObserver>,
    /// Whether its input stands still.
    pub stall: Stall,
    /// Operator restart requests already acted on.
    pub restart_requests_seen: u64,
    backoff: Backoff,
}

impl Supervised {
    /// A stage not started yet, with read-only views of its rings (if they can be opened).
    pub fn new(spec: ChildSpec, prefix: &str, restart_requests_seen: u64, now: Instant) -> Supervised {
        let observe = |ring: Option<&str>| {
            let name = shm_ring::SegmentName::new(prefix, ring?).ok()?;
            RingObserver::attach(&name).ok()
        };
        Supervised {
            input: observe(spec.input),
            output: observe(spec.output),
            spec,
            process: None,
            pidfd: None,
            phase: Phase::Pending,
            run: Run::new(now),
            stall: Stall::default(),
            restart_requests_seen,
            backoff: Backoff::new(BACKOFF_MIN, BACKOFF_MAX),
        }
    }

    /// Its pid, or 0 without a process.
    pub fn pid(&self) -> u32 {
        self.process.as_ref().map_or(0, std::process::Child::id)
    }

    /// Whether it is ready.
    pub fn is_running(&self) -> bool {
        matches!(self.phase, Phase::Running { .. })
    }

    /// When the loop must next look at this stage by the clock: the end of its start timeout,
    /// its restart time, or its stop deadline. `None`: only an event concerns it.
    pub fn deadline(&self, start_timeout: Duration) -> Option<Instant> {
        match self.phase {
            Phase::Starting { since } => Some(since + start_timeout),
            Phase::RestartAt(at) => Some(at),
            Phase::Stopping { deadline, .. } => Some(deadline),
            Phase::Pending | Phase::Running { .. } | Phase::Killed => None,
        }
    }

    /// The delay before the next start after an exit judged `verdict`: none for bad luck (and
    /// the backoff starts over), the next backoff step for a crash loop.
    pub fn restart_delay(&mut self, verdict: Verdict) -> Duration {
        match verdict {
            Verdict::BadLuck => {
                self.backoff.reset();
                Duration::ZERO
            }
            Verdict::CrashLoop => self.backoff.next_delay(),
        }
    }
}

/// The earliest of some deadlines.
pub fn nearest(deadlines: impl IntoIterator<Item = Option<Instant>>) -> Option<Instant> {
    deadlines.into_iter().flatten().min()
}

/// How often the loop looks at heartbeats, stalls and restart requests: a quarter of the hang
/// timeout (so a hang is found at most a quarter late), from 50 ms to 1 s.
pub fn check_interval(hang_timeout: Duration) -> Duration {
    (hang_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    const MIN_UPTIME: Duration = Duration::from_millis(500);
    const MS: Duration = Duration::from_millis(1);

    fn stage() -> Supervised {
        let spec = ChildSpec {
            name: "decoded",
            program: PathBuf::from("/nonexistent/decoded"),
            input: None,
            output: None,
        };
        Supervised::new(spec, "no-such-pipeline", 0, Instant::now())
    }

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

    #[test]
    fn a_crash_loop_backs_off_and_bad_luck_restarts_at_once_and_resets() {
        let mut s = stage();
        let loops: Vec<Duration> = (0..4).map(|_| s.restart_delay(Verdict::CrashLoop)).collect();
        for (delay, step) in loops.iter().zip([100, 200, 400, 800]) {
            let step = Duration::from_millis(step);
            assert!(*delay >= step / 2 && *delay <= step, "{delay:?} for a step of {step:?}");
        }
        assert_eq!(s.restart_delay(Verdict::BadLuck), Duration::ZERO);
        assert!(
            s.restart_delay(Verdict::CrashLoop) <= BACKOFF_MIN,
            "reset by the good run"
        );
        for _ in 0..20 {
            assert!(s.restart_delay(Verdict::CrashLoop) <= BACKOFF_MAX);
        }
    }

    #[test]
    fn deadlines_per_phase_and_the_nearest_one() {
        let t0 = Instant::now();
        let start_timeout = Duration::from_secs(30);
        let mut s = stage();
        assert_eq!(s.deadline(start_timeout), None, "pending: waits for an event");
        s.phase = Phase::Starting { since: t0 };
        assert_eq!(s.deadline(start_timeout), Some(t0 + start_timeout));
        s.phase = Phase::Running { since: t0 };
        assert_eq!(s.deadline(start_timeout), None);
        s.phase = Phase::RestartAt(t0 + MS);
        assert_eq!(s.deadline(start_timeout), Some(t0 + MS));
        s.phase = Phase::Stopping {
            deadline: t0 + 2 * MS,
            restart: true,
        };
        assert_eq!(s.deadline(start_timeout), Some(t0 + 2 * MS));
        s.phase = Phase::Killed;
        assert_eq!(s.deadline(start_timeout), None);

        assert_eq!(nearest([None, None]), None);
        assert_eq!(
            nearest([Some(t0 + 3 * MS), None, Some(t0 + MS), Some(t0 + 2 * MS)]),
            Some(t0 + MS)
        );
    }

    #[test]
    fn the_check_interval_is_a_quarter_of_the_hang_timeout_within_bounds() {
        assert_eq!(check_interval(Duration::from_secs(10)), Duration::from_secs(1));
        assert_eq!(check_interval(Duration::from_secs(2)), Duration::from_millis(500));
        assert_eq!(check_interval(Duration::from_millis(100)), Duration::from_millis(50));
    }

    #[test]
    fn a_stall_is_counted_only_with_work_pending_and_room_downstream() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut s = Stall::default();
        assert_eq!(s.observe(at(0), 5, true, true), None, "first look");
        assert_eq!(s.observe(at(100), 5, true, true), Some(Duration::from_millis(100)));
        assert_eq!(s.observe(at(200), 6, true, true), None, "it moved");
        assert_eq!(s.observe(at(300), 6, true, true), Some(Duration::from_millis(100)));
        assert_eq!(s.observe(at(400), 6, false, true), None, "nothing to read");
        assert_eq!(
            s.observe(at(500), 6, true, true),
            Some(Duration::ZERO),
            "counted afresh"
        );
        assert_eq!(
            s.observe(at(600), 6, true, false),
            None,
            "output full: blocked, not hung"
        );
        assert_eq!(s.observe(at(700), 6, true, true), Some(Duration::ZERO));
        assert_eq!(s.observe(at(1_700), 6, true, true), Some(Duration::from_secs(1)));
        s.reset();
        assert_eq!(s.observe(at(1_800), 6, true, true), None, "a new run starts over");
    }
}
