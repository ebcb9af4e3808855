//! The supervision loop: start the stages in order, restart each alone when it exits
//! (one_for_one), restart it when it hangs, escalate past the restart intensity, restart on an
//! operator's request, and stop everything in order on SIGTERM.
//!
//! The loop sleeps in one `poll(2)` (see [`crate::events`]) until a child exits (its pidfd), a
//! stage reports ready (the readiness pipe), a signal arrives (the shutdown pipe), or the nearest
//! deadline passes: a restart that is due, a stop deadline, a start timeout, the periodic look at
//! heartbeats, stalls and restart requests ([`crate::liveness`]), or systemd's watchdog. It never
//! polls on a fixed tick: idle, it wakes once per check interval (`hang_timeout_ms / 4`, 50 ms to
//! 1 s). The per-stage decisions (deadlines, backoff) are in [`crate::child`]; the ordered stop in
//! [`crate::stop`].

use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use pipeline_stats::lifecycle::{ExitStatus, HangReason, Lifecycle};
use records::names::{counter, segment, stage, supervisor_counter};
use shm_ring::{CounterId, SegmentName, StageState};
use stage_runtime::{Shutdown, StageCounters};
use telemetry_config::Config;
use tracing::{error, info, warn};

use crate::child::{check_interval, nearest, Phase, Run, Supervised, Verdict};
use crate::child_spec::ChildSpec;
use crate::events::{self, ReadyPipe};
use crate::intensity::RestartIntensity;
use crate::notify::Notifier;
use crate::poison::{DeadLetter, PoisonWatch};
use crate::spawn::spawn_stage;

/// How the supervisor ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// SIGTERM/SIGINT: every stage stopped in order.
    Stopped,
    /// The restart intensity was exceeded: everything stopped; exit non-zero.
    Escalated,
}

/// The supervisor's own counters in the stats page.
pub(crate) struct Ids {
    pub(crate) restarts: CounterId,
    pub(crate) hangs: CounterId,
    pub(crate) poison_skipped: CounterId,
    pub(crate) dead_letter_full: CounterId,
}

/// The `[supervisor]` durations, read once.
pub(crate) struct Limits {
    pub(crate) hang_timeout: Duration,
    pub(crate) start_timeout: Duration,
    pub(crate) min_uptime: Duration,
    pub(crate) shutdown_timeout: Duration,
    /// How often [`crate::liveness`] looks (see [`check_interval`]).
    pub(crate) check_every: Duration,
}

impl Limits {
    fn of(s: &telemetry_config::Supervisor) -> Limits {
        let ms = Duration::from_millis;
        Limits {
            hang_timeout: ms(s.hang_timeout_ms),
            start_timeout: ms(s.start_timeout_ms),
            min_uptime: ms(s.min_uptime_ms),
            shutdown_timeout: ms(s.shutdown_timeout_ms),
            check_every: check_interval(ms(s.hang_timeout_ms)),
        }
    }
}

/// The supervisor.
pub struct Supervisor {
    pub(crate) config: Config,
    config_path: PathBuf,
    pub(crate) children: Vec<Supervised>,
    pub(crate) lifecycle: Lifecycle,
    pub(crate) own: StageCounters,
    pub(crate) ids: Ids,
    intensity: RestartIntensity,
    pub(crate) notifier: Notifier,
    ready_sent: bool,
    ready_pipe: ReadyPipe,
    pub(crate) limits: Limits,
    next_check: Instant,
    next_watchdog: Option<Instant>,
    pub(crate) poison: PoisonWatch,
    pub(crate) dead_letter: DeadLetter,
}

impl Supervisor {
    /// Attaches to the stats page (which `segments::prepare` created) and the rings, and creates
    /// the readiness pipe.
    pub fn new(
        config: Config,
        config_path: PathBuf,
        specs: Vec<ChildSpec>,
        notifier: Notifier,
    ) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let page = SegmentName::new(&config.pipeline.prefix, segment::STATS)?;
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
        let s = config.supervisor.clone();
        let limits = Limits::of(&s);
        let now = Instant::now();
        let children = specs
            .into_iter()
            .map(|spec| {
                let seen = lifecycle.restart_requests(spec.name).unwrap_or(0);
                Supervised::new(spec, &config.pipeline.prefix, seen, now)
            })
            .collect();
        Ok(Supervisor {
            intensity: RestartIntensity::new(s.restart_intensity, Duration::from_secs(s.restart_period_s)),
            next_watchdog: notifier.watchdog_interval().map(|every| now + every),
            next_check: now + limits.check_every,
            ready_pipe: ReadyPipe::new()?,
            poison: PoisonWatch::new(s.poison_attempts),
            dead_letter: DeadLetter::new(&s.dead_letter_file, s.dead_letter_max_bytes),
            config,
            config_path,
            children,
            lifecycle,
            own,
            ids,
            notifier,
            ready_sent: false,
            limits,
        })
    }

    /// Runs until SIGTERM/SIGINT or escalation.
    pub fn run(&mut self, shutdown: &Shutdown) -> Outcome {
        self.notifier.status("starting stages");
        let wake = shutdown
            .wake_pipe()
            .inspect_err(|e| warn!(error = %e, "no shutdown wake-up pipe; waits are cut to 100 ms instead"))
            .ok();
        match self.supervise(shutdown, wake.as_ref().map(AsFd::as_fd)) {
            Ok(()) => {
                self.stop_all("shutdown requested");
                Outcome::Stopped
            }
            Err(reason) => {
                error!(%reason, "restart intensity exceeded; stopping the pipeline");
                self.notifier.status(&format!("giving up: {reason}"));
                self.stop_all(&reason);
                Outcome::Escalated
            }
        }
    }

    /// The loop. `Ok` on a shutdown request, `Err` when the restart intensity was exceeded.
    fn supervise(&mut self, shutdown: &Shutdown, wake: Option<BorrowedFd<'_>>) -> Result<(), String> {
        loop {
            // Checked before every wait; a signal after this point is in the wake-up pipe.
            if shutdown.requested() {
                return Ok(());
            }
            self.on_time(Instant::now())?;
            self.own.flush();
            let deadline = self.next_deadline();
            let mut timeout = deadline.saturating_duration_since(Instant::now());
            if wake.is_none() {
                timeout = timeout.min(Duration::from_millis(100));
            }
            let pidfds: Vec<(usize, BorrowedFd<'_>)> = self
                .children
                .iter()
                .enumerate()
                .filter_map(|(i, c)| Some((i, c.pidfd.as_ref()?.as_fd())))
                .collect();
            let woken = match events::wait(wake, self.ready_pipe.as_fd(), &pidfds, timeout) {
                Ok(w) => w,
                Err(e) => {
                    // Not expected (poll fails only for bad arguments or no memory); do not spin.
                    error!(error = %e, "poll failed");
                    std::thread::sleep(self.limits.check_every);
                    continue;
                }
            };
            for i in woken.exited {
                self.reap(i)?;
            }
            if woken.ready {
                self.check_ready(Instant::now());
            }
        }
    }

    /// Everything that is due by the clock at `now`.
    fn on_time(&mut self, now: Instant) -> Result<(), String> {
        for i in 0..self.children.len() {
            let name = self.children[i].spec.name;
            match self.children[i].phase {
                // Start in order: every stage before this one must be ready.
                Phase::Pending if self.children[..i].iter().all(Supervised::is_running) => self.start(i)?,
                Phase::Starting { since } if now >= since + self.limits.start_timeout => {
                    // Its wake-up may still be unread in the pipe: look at the page first.
                    self.check_ready(now);
                    if !self.children[i].is_running() {
                        self.hang(i, HangReason::StartTimeout);
                    }
                }
                Phase::RestartAt(at) if now >= at => self.start(i)?,
                Phase::Stopping { deadline, restart } if now >= deadline => {
                    warn!(stage = name, "did not stop in time; killing it");
                    self.kill(i);
                    // Not again at once: only if even SIGKILL has not ended it by then.
                    self.children[i].phase = Phase::Stopping {
                        deadline: now + self.limits.shutdown_timeout,
                        restart,
                    };
                }
                _ => {}
            }
        }
        if now >= self.next_check {
            self.check(now)?;
            self.next_check = now + self.limits.check_every;
        }
        if self.next_watchdog.is_some_and(|at| now >= at) {
            self.notifier.watchdog();
            self.next_watchdog = self.notifier.watchdog_interval().map(|every| now + every);
        }
        Ok(())
    }

    /// The nearest instant at which [`Supervisor::on_time`] has something to do.
    fn next_deadline(&self) -> Instant {
        let start_timeout = self.limits.start_timeout;
        let children = self.children.iter().map(|c| c.deadline(start_timeout));
        nearest(children.chain([Some(self.next_check), self.next_watchdog])).unwrap_or(self.next_check)
    }

    /// A stage's progress mark: its input ring's read position, or for a stage without an input
    /// ring (ingestd) its received counter. Single loads, so that judging an exit never waits
    /// (a snapshot would, on a stage killed inside a counter update).
    pub(crate) fn progress_mark(&self, i: usize) -> Option<u64> {
        let c = &self.children[i];
        match &c.input {
            Some(ring) => Some(ring.positions().1),
            None => self.lifecycle.slot(c.spec.name).ok()?.counter(counter::RECEIVED),
        }
    }

    /// Spawns a stage. A stage that cannot even be spawned (missing binary, no permission)
    /// counts as a failed start, towards the restart intensity like any exit.
    fn start(&mut self, i: usize) -> Result<(), String> {
        let now = Instant::now();
        let name = self.children[i].spec.name;
        // Before the spawn: a stage quick enough to report Running must not be overwritten.
        let _ = self.lifecycle.set_state(name, StageState::Starting, 0);
        let ready_fd = Some(self.ready_pipe.child_end());
        let c = &mut self.children[i];
        c.run = Run::new(now);
        c.stall.reset();
        match spawn_stage(&c.spec.program, &self.config_path, ready_fd) {
            Ok(child) => {
                let pid = child.id();
                c.pidfd = events::pidfd_open(pid)
                    .inspect_err(
                        |e| warn!(stage = name, pid, error = %e, "no pidfd; exits are found by the periodic check"),
                    )
                    .ok();
                c.process = Some(child);
                c.phase = Phase::Starting { since: now };
                info!(stage = name, pid, "started");
                Ok(())
            }
            Err(e) => {
                error!(stage = name, program = %c.spec.program.display(), error = %e, "cannot start");
                self.restart_later(i, &format!("{name} cannot be started ({e})"), Verdict::CrashLoop)
            }
        }
    }

    /// A child's pidfd is readable (or, without one, the periodic check asks): reap it.
    pub(crate) fn reap(&mut self, i: usize) -> Result<(), String> {
        let status = match self.children[i].process.as_mut().map(std::process::Child::try_wait) {
            Some(Ok(Some(status))) => status,
            Some(Ok(None)) | None => return Ok(()),
            Some(Err(e)) => {
                error!(stage = self.children[i].spec.name, error = %e, "cannot reap");
                return Ok(());
            }
        };
        self.on_exit(i, ExitStatus::from_wait(status))
    }

    fn on_exit(&mut self, i: usize, exit: ExitStatus) -> Result<(), String> {
        let now = Instant::now();
        let name = self.children[i].spec.name;
        let _ = self.lifecycle.record_exit(name, exit);
        let mark = self.progress_mark(i);
        let c = &mut self.children[i];
        c.process = None;
        c.pidfd = None;
        if matches!(c.phase, Phase::Stopping { restart: true, .. }) {
            info!(stage = name, ?exit, "stopped on request; starting it again");
            self.count_restart(name);
            return self.start(i);
        }
        let verdict = c.run.verdict(now, mark, self.limits.min_uptime);
        let ready_ms = c
            .run
            .ready_at
            .map(|t| now.saturating_duration_since(t).as_millis() as u64);
        warn!(stage = name, ?exit, ?verdict, ready_ms, "exited");
        if exit.crashed() {
            self.check_poison(i);
        }
        self.restart_later(i, &format!("{name} exited ({exit:?})"), verdict)
    }

    /// Schedules a restart after a failure (at once for bad luck, after a backoff for a crash
    /// loop), or gives up past the restart intensity.
    fn restart_later(&mut self, i: usize, failure: &str, verdict: Verdict) -> Result<(), String> {
        let now = Instant::now();
        let name = self.children[i].spec.name;
        if !self.intensity.allow(now) {
            let s = &self.config.supervisor;
            return Err(format!(
                "{failure}: more than {} restarts within {} s",
                s.restart_intensity, s.restart_period_s
            ));
        }
        self.count_restart(name);
        let delay = self.children[i].restart_delay(verdict);
        if !delay.is_zero() {
            info!(
                stage = name,
                delay_ms = delay.as_millis() as u64,
                "crash loop; backing off"
            );
        }
        self.children[i].phase = Phase::RestartAt(now + delay);
        let _ = self.lifecycle.set_state(name, StageState::Backoff, 0);
        self.report();
        Ok(())
    }

    fn count_restart(&mut self, name: &str) {
        self.own.add(self.ids.restarts, 1);
        let _ = self.lifecycle.count_restart(name);
    }

    pub(crate) fn kill(&mut self, i: usize) {
        if let Some(c) = self.children[i].process.as_mut() {
            let _ = c.kill();
        }
    }

    /// SIGTERM, and a deadline for SIGKILL.
    pub(crate) fn terminate(&mut self, i: usize, restart: bool) {
        let pid = self.children[i].pid();
        if pid != 0 {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        self.children[i].phase = Phase::Stopping {
            deadline: Instant::now() + self.limits.shutdown_timeout,
            restart,
        };
    }

    /// Sends READY=1 the first time every stage runs, and a STATUS= line on every change.
    pub(crate) fn report(&mut self) {
        let running = self.children.iter().filter(|c| c.is_running()).count();
        let status = format!("{running}/{} stages running", self.children.len());
        if running == self.children.len() && !self.ready_sent {
            self.notifier.ready(&status);
            self.ready_sent = true;
            info!("all stages running");
        } else {
            self.notifier.status(&status);
        }
    }
}
