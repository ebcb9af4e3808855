//! One supervised stage ([`Supervised`]): its process, where it is in its life ([`Phase`]), the
//! facts of its current run ([`Run`]), its backoff, whether its input has stalled ([`Stall`]) and
//! the operator restart requests it has acted on. Everything that changes a stage's process or
//! phase is a method here, so that the phase always says what the process is doing; the rules
//! that depend only on times and marks (the backoff verdict, stalls) are in the files beside it
//! and are tested alone.

mod phase;
mod run;
mod stall;

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use pipeline_stats::lifecycle::ExitStatus;
use shm_ring::ring::RingObserver;
use stage_runtime::Backoff;
use tracing::{error, warn};

pub use self::phase::Phase;
pub use self::run::{judge, Run, Verdict};
pub use self::stall::Stall;
use crate::child_spec::ChildSpec;
use crate::events;
use crate::page::Page;
use crate::spawn::spawn_stage;

/// The first backoff step of a crash loop; it doubles up to [`BACKOFF_MAX`].
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// The longest backoff of a crash loop.
pub const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// A stage whose input position stands still while it has work to do and room for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stalled {
    /// Its input ring's read position.
    pub position: u64,
    /// Records waiting in its input ring.
    pub pending: u64,
    /// How long the position has stood still.
    pub stalled: Duration,
}

/// One supervised stage.
pub struct Supervised {
    spec: ChildSpec,
    /// Its process, while there is one.
    process: Option<Child>,
    /// Readable once the process has exited; `None` if pidfd_open failed (then the periodic
    /// check looks for its exit instead).
    pidfd: Option<OwnedFd>,
    phase: Phase,
    run: Run,
    /// Its input ring, read-only (for progress, stalls and poison records).
    input: Option<RingObserver>,
    /// Its output ring, read-only (whether it has room).
    output: Option<RingObserver>,
    stall: Stall,
    /// Operator restart requests already acted on.
    restart_requests_seen: u64,
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

    /// What it is.
    pub fn spec(&self) -> &ChildSpec {
        &self.spec
    }

    /// Its name (its stats slot and binary).
    pub fn name(&self) -> &'static str {
        self.spec.name
    }

    /// Where it is in its life.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Its pid, or 0 without a process.
    pub fn pid(&self) -> u32 {
        self.process.as_ref().map_or(0, Child::id)
    }

    /// Whether it has a process (running, starting, or exited and not reaped yet).
    pub fn has_process(&self) -> bool {
        self.process.is_some()
    }

    /// Its pidfd, to sleep on; `None` without a process or when pidfd_open failed.
    pub fn pidfd(&self) -> Option<BorrowedFd<'_>> {
        self.pidfd.as_ref().map(AsFd::as_fd)
    }

    /// Whether it is ready.
    pub fn is_running(&self) -> bool {
        matches!(self.phase, Phase::Running { .. })
    }

    /// Whether it is spawned and not ready yet.
    pub fn is_starting(&self) -> bool {
        matches!(self.phase, Phase::Starting { .. })
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

    /// Spawns it at `now` (a new run), handing it the readiness pipe's write end; returns its
    /// pid. Without a pidfd its exit is found by the periodic check.
    pub fn start(&mut self, config_path: &Path, ready_fd: RawFd, now: Instant) -> io::Result<u32> {
        self.run = Run::new(now);
        self.stall.reset();
        let child = spawn_stage(&self.spec.program, config_path, Some(ready_fd))?;
        let pid = child.id();
        self.pidfd = events::pidfd_open(pid)
            .inspect_err(
                |e| warn!(stage = self.spec.name, pid, error = %e, "no pidfd; exits are found by the periodic check"),
            )
            .ok();
        self.process = Some(child);
        self.phase = Phase::Starting { since: now };
        Ok(pid)
    }

    /// Its exit status if its process has exited; the process is then forgotten.
    pub fn reap(&mut self) -> Option<ExitStatus> {
        let status = match self.process.as_mut().map(Child::try_wait) {
            Some(Ok(Some(status))) => status,
            Some(Ok(None)) | None => return None,
            Some(Err(e)) => {
                error!(stage = self.spec.name, error = %e, "cannot reap");
                return None;
            }
        };
        self.forget_process();
        Some(ExitStatus::from_wait(status))
    }

    /// Forgets its process (reaped) and pidfd.
    pub fn forget_process(&mut self) {
        self.process = None;
        self.pidfd = None;
    }

    /// SIGKILL, without waiting.
    pub fn kill(&mut self) {
        if let Some(c) = self.process.as_mut() {
            let _ = c.kill();
        }
    }

    /// SIGTERM, and SIGKILL at `deadline` (see [`Phase::Stopping`]); started again after its exit
    /// if `restart`.
    pub fn terminate(&mut self, deadline: Instant, restart: bool) {
        let pid = self.pid();
        if pid != 0 {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        self.phase = Phase::Stopping { deadline, restart };
    }

    /// It did not stop by its deadline: SIGKILL, and look again at `next_deadline` (only if even
    /// SIGKILL has not ended it by then).
    pub fn kill_overdue(&mut self, next_deadline: Instant) {
        let Phase::Stopping { restart, .. } = self.phase else {
            return;
        };
        self.kill();
        self.phase = Phase::Stopping {
            deadline: next_deadline,
            restart,
        };
    }

    /// Kills it as hung; it is restarted when its exit is reaped.
    pub fn kill_as_hung(&mut self) {
        self.kill();
        self.phase = Phase::Killed;
    }

    /// It reports ready at `now`, with the progress mark `mark`; returns how long it took.
    pub fn became_ready(&mut self, now: Instant, mark: Option<u64>) -> Duration {
        self.phase = Phase::Running { since: now };
        self.run.ready(now, mark)
    }

    /// Whether it was stopped to be started again (an operator's restart request).
    pub fn stopped_to_restart(&self) -> bool {
        matches!(self.phase, Phase::Stopping { restart: true, .. })
    }

    /// How its run that ended at `now` (progress mark `mark_now`) is judged.
    pub fn verdict(&self, now: Instant, mark_now: Option<u64>, min_uptime: Duration) -> Verdict {
        self.run.verdict(now, mark_now, min_uptime)
    }

    /// How long it has been ready at `now`, if it became ready in this run.
    pub fn ready_for(&self, now: Instant) -> Option<Duration> {
        self.run.ready_for(now)
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

    /// Schedules its next start at `at`.
    pub fn restart_at(&mut self, at: Instant) {
        self.phase = Phase::RestartAt(at);
    }

    /// Takes the page's count of operator restart requests; `true` when it grew since the last
    /// look (each request is acted on once).
    pub fn see_restart_requests(&mut self, requests: u64) -> bool {
        if requests > self.restart_requests_seen {
            self.restart_requests_seen = requests;
            return true;
        }
        false
    }

    /// Its progress mark: its input ring's read position, or for a stage without an input ring
    /// (ingestd) its received counter. Single loads, so that judging an exit never waits (a
    /// snapshot would, on a stage killed inside a counter update).
    pub fn progress_mark(&self, page: &Page) -> Option<u64> {
        match &self.input {
            Some(ring) => Some(ring.positions().1),
            None => page.received(self.spec.name),
        }
    }

    /// The input record it was handling when it died, if any (its ring's processing marker).
    pub fn processing(&self) -> Option<u64> {
        self.input.as_ref().and_then(RingObserver::processing)
    }

    /// One look at its input at `now`, for a stage that must keep moving (see
    /// `ChildSpec::must_keep_moving`): how long its position has stood still with records
    /// pending and room downstream, if it has.
    pub fn stalled(&mut self, now: Instant) -> Option<Stalled> {
        if !self.spec.must_keep_moving() {
            return None;
        }
        let (Some(input), Some(output)) = (&self.input, &self.output) else {
            return None;
        };
        let (written, read) = input.positions();
        let (out_written, out_read) = output.positions();
        let room = out_written.wrapping_sub(out_read) < output.capacity();
        let stalled = self.stall.observe(now, read, written != read, room)?;
        Some(Stalled {
            position: read,
            pending: written.wrapping_sub(read),
            stalled,
        })
    }

    /// After SIGTERM: waits for it to exit, SIGKILLing it at `deadline`. Sleeps on its pidfd at
    /// most `heartbeat_every` at a time, calling `heartbeat` after each nap (the supervisor's
    /// own heartbeat must not go stale during a long stop).
    pub fn wait_stopped(
        &mut self,
        deadline: Instant,
        heartbeat_every: Duration,
        mut heartbeat: impl FnMut(),
    ) -> ExitStatus {
        loop {
            let Some(process) = self.process.as_mut() else {
                return ExitStatus::None;
            };
            if let Ok(Some(status)) = process.try_wait() {
                return ExitStatus::from_wait(status);
            }
            let now = Instant::now();
            if now >= deadline {
                warn!(
                    stage = self.spec.name,
                    "did not stop within the shutdown timeout; killing it"
                );
                let _ = process.kill();
                return process.wait().map_or(ExitStatus::None, ExitStatus::from_wait);
            }
            let nap = (deadline - now).min(heartbeat_every);
            match &self.pidfd {
                Some(fd) => {
                    events::wait_exit(fd.as_fd(), nap);
                }
                None => std::thread::sleep(nap.min(Duration::from_millis(10))),
            }
            heartbeat();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

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
    fn deadlines_per_phase() {
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
    }

    #[test]
    fn restart_requests_are_acted_on_once_each() {
        let mut s = stage();
        assert!(!s.see_restart_requests(0), "none yet");
        assert!(s.see_restart_requests(2));
        assert!(!s.see_restart_requests(2), "the same count again");
        assert!(s.see_restart_requests(3));
    }
}
