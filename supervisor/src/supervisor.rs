//! The supervision loop ([`Supervisor`]): start the stages in order, restart each alone when it
//! exits (one_for_one), restart it when it hangs, escalate past the restart intensity, restart
//! on an operator's request, and stop everything in order on SIGTERM.
//!
//! The loop sleeps in one `poll(2)` (see [`crate::events`]) until a child exits (its pidfd), a
//! stage reports ready (the readiness pipe), a signal arrives (the shutdown pipe), or the nearest
//! deadline passes: a restart that is due, a stop deadline, a start timeout, the periodic look at
//! heartbeats, stalls and restart requests ([`crate::liveness`]), or systemd's watchdog
//! ([`crate::service`]). It never polls on a fixed tick: idle, it wakes once per check interval
//! (`hang_timeout_ms / 4`, 50 ms to 1 s).
//!
//! The loop decides and the pieces it owns keep their own state: each stage's process and phase
//! ([`crate::child`]), the stats page ([`crate::page`]), the restart intensity
//! ([`crate::intensity`]), liveness, poison records ([`crate::poison`]) and what systemd is told;
//! the ordered stop is [`crate::stop`].

use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use pipeline_stats::lifecycle::{ExitStatus, HangReason};
use shm_ring::stats::StageState;
use stage_runtime::Shutdown;
use telemetry_config::Config;
use tracing::{error, info, warn};

use crate::child::{Phase, Supervised, Verdict};
use crate::child_spec::ChildSpec;
use crate::events::{self, ReadyPipe};
use crate::intensity::RestartIntensity;
use crate::liveness::Liveness;
use crate::notify::Notifier;
use crate::page::Page;
use crate::poison::{DeadLetter, Poison};
use crate::service::Service;
use crate::stop;

/// How the supervisor ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// SIGTERM/SIGINT: every stage stopped in order.
    Stopped,
    /// The restart intensity was exceeded: everything stopped; exit non-zero.
    Escalated,
}

/// The `[supervisor]` durations the loop itself applies (the hang timeout is liveness').
struct Timeouts {
    start: Duration,
    min_uptime: Duration,
    shutdown: Duration,
}

/// The earliest of some deadlines.
fn nearest(deadlines: impl IntoIterator<Item = Option<Instant>>) -> Option<Instant> {
    deadlines.into_iter().flatten().min()
}

/// The supervisor.
pub struct Supervisor {
    config_path: PathBuf,
    children: Vec<Supervised>,
    page: Page,
    intensity: RestartIntensity,
    liveness: Liveness,
    poison: Poison,
    service: Service,
    ready_pipe: ReadyPipe,
    timeouts: Timeouts,
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
        let prefix = &config.pipeline.prefix;
        let page = Page::open(prefix)?;
        let s = &config.supervisor;
        let ms = Duration::from_millis;
        let now = Instant::now();
        let children = specs
            .into_iter()
            .map(|spec| {
                let seen = page.restart_requests(spec.name);
                Supervised::new(spec, prefix, seen, now)
            })
            .collect();
        Ok(Supervisor {
            intensity: RestartIntensity::new(s.restart_intensity, Duration::from_secs(s.restart_period_s)),
            service: Service::new(notifier, now),
            liveness: Liveness::new(ms(s.hang_timeout_ms), now),
            ready_pipe: ReadyPipe::new()?,
            poison: Poison::new(
                prefix,
                s.poison_attempts,
                DeadLetter::new(&s.dead_letter_file, s.dead_letter_max_bytes),
            ),
            timeouts: Timeouts {
                start: ms(s.start_timeout_ms),
                min_uptime: ms(s.min_uptime_ms),
                shutdown: ms(s.shutdown_timeout_ms),
            },
            config_path,
            children,
            page,
        })
    }

    /// Runs until SIGTERM/SIGINT or escalation.
    pub fn run(&mut self, shutdown: &Shutdown) -> Outcome {
        self.service.status("starting stages");
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
                self.service.status(&format!("giving up: {reason}"));
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
            self.page.flush();
            let deadline = self.next_deadline();
            let mut timeout = deadline.saturating_duration_since(Instant::now());
            if wake.is_none() {
                timeout = timeout.min(Duration::from_millis(100));
            }
            let pidfds: Vec<(usize, BorrowedFd<'_>)> = self
                .children
                .iter()
                .enumerate()
                .filter_map(|(i, c)| Some((i, c.pidfd()?)))
                .collect();
            let woken = match events::wait(wake, self.ready_pipe.as_fd(), &pidfds, timeout) {
                Ok(w) => w,
                Err(e) => {
                    // Not expected (poll fails only for bad arguments or no memory); do not spin.
                    error!(error = %e, "poll failed");
                    std::thread::sleep(self.liveness.check_every());
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
            match self.children[i].phase() {
                // Start in order: every stage before this one must be ready.
                Phase::Pending if self.children[..i].iter().all(Supervised::is_running) => self.start(i)?,
                Phase::Starting { since } if now >= since + self.timeouts.start => {
                    // Its wake-up may still be unread in the pipe: look at the page first.
                    self.check_ready(now);
                    if !self.children[i].is_running() {
                        self.hang(i, HangReason::StartTimeout);
                    }
                }
                Phase::RestartAt(at) if now >= at => self.start(i)?,
                Phase::Stopping { deadline, .. } if now >= deadline => {
                    warn!(stage = self.children[i].name(), "did not stop in time; killing it");
                    self.children[i].kill_overdue(now + self.timeouts.shutdown);
                }
                _ => {}
            }
        }
        if self.liveness.due(now) {
            self.check(now)?;
        }
        self.service.on_time(now);
        Ok(())
    }

    /// The nearest instant at which [`Supervisor::on_time`] has something to do.
    fn next_deadline(&self) -> Instant {
        let next_check = self.liveness.next_check();
        let children = self.children.iter().map(|c| c.deadline(self.timeouts.start));
        nearest(children.chain([Some(next_check), self.service.next_watchdog()])).unwrap_or(next_check)
    }

    /// Spawns a stage. A stage that cannot even be spawned (missing binary, no permission)
    /// counts as a failed start, towards the restart intensity like any exit.
    fn start(&mut self, i: usize) -> Result<(), String> {
        let now = Instant::now();
        let name = self.children[i].name();
        // Before the spawn: a stage quick enough to report Running must not be overwritten.
        self.page.set_state(name, StageState::Starting, 0);
        let ready_fd = self.ready_pipe.child_end();
        match self.children[i].start(&self.config_path, ready_fd, now) {
            Ok(pid) => {
                info!(stage = name, pid, "started");
                Ok(())
            }
            Err(e) => {
                let program = self.children[i].spec().program.display();
                error!(stage = name, program = %program, error = %e, "cannot start");
                self.restart_later(i, &format!("{name} cannot be started ({e})"), Verdict::CrashLoop)
            }
        }
    }

    /// A child's pidfd is readable (or, without one, the periodic check asks): reap it.
    fn reap(&mut self, i: usize) -> Result<(), String> {
        match self.children[i].reap() {
            Some(exit) => self.on_exit(i, exit),
            None => Ok(()),
        }
    }

    fn on_exit(&mut self, i: usize, exit: ExitStatus) -> Result<(), String> {
        let now = Instant::now();
        let name = self.children[i].name();
        self.page.record_exit(name, exit);
        let mark = self.children[i].progress_mark(&self.page);
        if self.children[i].stopped_to_restart() {
            info!(stage = name, ?exit, "stopped on request; starting it again");
            self.page.count_restart(name);
            return self.start(i);
        }
        let c = &self.children[i];
        let verdict = c.verdict(now, mark, self.timeouts.min_uptime);
        let ready_ms = c.ready_for(now).map(|d| d.as_millis() as u64);
        warn!(stage = name, ?exit, ?verdict, ready_ms, "exited");
        if exit.crashed() {
            self.poison.after_crash(&self.children[i], &mut self.page);
        }
        self.restart_later(i, &format!("{name} exited ({exit:?})"), verdict)
    }

    /// Schedules a restart after a failure (at once for bad luck, after a backoff for a crash
    /// loop), or gives up past the restart intensity.
    fn restart_later(&mut self, i: usize, failure: &str, verdict: Verdict) -> Result<(), String> {
        let now = Instant::now();
        let name = self.children[i].name();
        if !self.intensity.allow(now) {
            return Err(format!("{failure}: {}", self.intensity.describe()));
        }
        self.page.count_restart(name);
        let delay = self.children[i].restart_delay(verdict);
        if !delay.is_zero() {
            info!(
                stage = name,
                delay_ms = delay.as_millis() as u64,
                "crash loop; backing off"
            );
        }
        self.children[i].restart_at(now + delay);
        self.page.set_state(name, StageState::Backoff, 0);
        self.report();
        Ok(())
    }

    /// The periodic look (see [`crate::liveness`]). `Err` when reaping an exit exceeded the
    /// restart intensity.
    fn check(&mut self, now: Instant) -> Result<(), String> {
        self.check_ready(now);
        for i in 0..self.children.len() {
            if self.children[i].pidfd().is_none() && self.children[i].has_process() {
                self.reap(i)?;
            }
            if self.children[i].is_running() {
                if let Some(reason) = self.liveness.hang(&mut self.children[i], &self.page, now) {
                    self.hang(i, reason);
                }
            }
            // An operator's restart request (`telemetryctl restart`): a count that grows.
            let requests = self.page.restart_requests(self.children[i].name());
            if self.children[i].see_restart_requests(requests) && self.children[i].has_process() {
                info!(stage = self.children[i].name(), "restart requested");
                self.children[i].terminate(Instant::now() + self.timeouts.shutdown, true);
            }
        }
        Ok(())
    }

    /// Takes every starting stage that reports `Running` as ready.
    fn check_ready(&mut self, now: Instant) {
        for i in 0..self.children.len() {
            if !self.liveness.is_ready(&self.children[i], &self.page) {
                continue;
            }
            let mark = self.children[i].progress_mark(&self.page);
            let c = &mut self.children[i];
            let start_ms = c.became_ready(now, mark).as_millis() as u64;
            info!(stage = c.name(), pid = c.pid(), start_ms, "ready");
            self.report();
        }
    }

    /// Kills a hung stage (it is restarted when its exit is reaped) and counts the hang.
    fn hang(&mut self, i: usize, reason: HangReason) {
        let c = &mut self.children[i];
        warn!(
            stage = c.name(),
            pid = c.pid(),
            reason = reason.as_str(),
            "hung; killing it"
        );
        self.page.count_hang(c.name(), reason);
        c.kill_as_hung();
    }

    /// Tells systemd how many stages run (READY=1 the first time all do).
    fn report(&mut self) {
        let running = self.children.iter().filter(|c| c.is_running()).count();
        self.service.stages_running(running, self.children.len());
    }

    /// Stops every stage, upstream first, and marks the supervisor's own slot exited.
    fn stop_all(&mut self, why: &str) {
        info!(why, "stopping the pipeline");
        self.service.stopping(&format!("stopping: {why}"));
        stop::in_order(
            &mut self.children,
            &mut self.page,
            self.timeouts.shutdown,
            self.liveness.check_every(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_deadline() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(nearest([None, None]), None);
        assert_eq!(
            nearest([Some(t0 + ms(3)), None, Some(t0 + ms(1)), Some(t0 + ms(2))]),
            Some(t0 + ms(1))
        );
    }
}
