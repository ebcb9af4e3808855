//! The supervision loop: start the stages in order, restart each alone when it exits
//! (one_for_one), restart it when its heartbeat goes stale (a hang), escalate past the restart
//! intensity, restart on an operator's request, and stop everything in order on SIGTERM.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use records::names::{segment, stage, supervisor_counter};
use shm_ring::{CounterId, SegmentName, StageState, StatsReader};
use stage_runtime::{Backoff, Shutdown, StageCounters};
use telemetry_config::Config;
use tracing::{error, info, warn};

use crate::child_spec::ChildSpec;
use crate::intensity::RestartIntensity;
use crate::lifecycle::{ExitStatus, HangReason, Lifecycle};
use crate::notify::Notifier;
use crate::poison::{self, DeadLetter, PoisonWatch};
use crate::spawn::spawn_stage;

/// How often the loop looks at its children.
const TICK: Duration = Duration::from_millis(50);
/// A stage that has run this long since its last start has its restart backoff reset.
const STABLE_AFTER: Duration = Duration::from_secs(10);

/// How the supervisor ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// SIGTERM/SIGINT: every stage stopped in order.
    Stopped,
    /// The restart intensity was exceeded: everything stopped; exit non-zero.
    Escalated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Not started yet (waiting for the stages before it).
    Pending,
    /// Spawned, not yet reporting Running.
    Starting,
    /// Reporting Running.
    Running,
    /// Exited; restart due at the given time.
    RestartAt(Instant),
    /// Asked to stop (restart request or shutdown); killed at the deadline.
    Stopping { deadline: Instant, restart: bool },
}

struct Supervised {
    spec: ChildSpec,
    process: Option<Child>,
    phase: Phase,
    started: Instant,
    backoff: Backoff,
    restart_requests_seen: u64,
}

struct Ids {
    restarts: CounterId,
    hangs: CounterId,
    poison_skipped: CounterId,
    dead_letter_full: CounterId,
}

/// The supervisor.
pub struct Supervisor {
    config: Config,
    config_path: PathBuf,
    children: Vec<Supervised>,
    lifecycle: Lifecycle,
    reader: StatsReader,
    own: StageCounters,
    ids: Ids,
    intensity: RestartIntensity,
    notifier: Notifier,
    ready_sent: bool,
    last_watchdog: Instant,
    poison: PoisonWatch,
    dead_letter: DeadLetter,
}

impl Supervisor {
    /// Attaches to the stats page (which `segments::prepare` created).
    pub fn new(
        config: Config,
        config_path: PathBuf,
        specs: Vec<ChildSpec>,
        notifier: Notifier,
    ) -> Result<Self, shm_ring::Error> {
        let page = SegmentName::new(&config.pipeline.prefix, segment::STATS)?;
        let lifecycle = Lifecycle::open(&page)?;
        let reader = StatsReader::open(&page)?;
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
        let intensity = RestartIntensity::new(s.restart_intensity, Duration::from_secs(s.restart_period_s));
        let children = specs
            .into_iter()
            .map(|spec| {
                let seen = lifecycle.restart_requests(spec.name).unwrap_or(0);
                Supervised {
                    spec,
                    process: None,
                    phase: Phase::Pending,
                    started: Instant::now(),
                    backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(10)),
                    restart_requests_seen: seen,
                }
            })
            .collect();
        Ok(Supervisor {
            config,
            config_path,
            children,
            lifecycle,
            reader,
            own,
            ids,
            intensity,
            notifier,
            ready_sent: false,
            last_watchdog: Instant::now(),
            poison: PoisonWatch::new(s.poison_attempts),
            dead_letter: DeadLetter::new(&s.dead_letter_file, s.dead_letter_max_bytes),
        })
    }

    /// Runs until SIGTERM/SIGINT or escalation.
    pub fn run(&mut self, shutdown: &Shutdown) -> Outcome {
        self.notifier.status("starting stages");
        loop {
            if shutdown.requested() {
                self.stop_all("shutdown requested");
                return Outcome::Stopped;
            }
            if let Err(reason) = self.tick() {
                error!(%reason, "restart intensity exceeded; stopping the pipeline");
                self.notifier.status(&format!("giving up: {reason}"));
                self.stop_all(&reason);
                return Outcome::Escalated;
            }
            self.own.flush();
            if let Some(every) = self.notifier.watchdog_interval() {
                if self.last_watchdog.elapsed() >= every {
                    self.notifier.watchdog();
                    self.last_watchdog = Instant::now();
                }
            }
            std::thread::sleep(TICK);
        }
    }

    /// One look at every child. `Err` means the restart intensity was exceeded.
    fn tick(&mut self) -> Result<(), String> {
        let snapshot = self.reader.snapshot();
        let hang_timeout = self.config.supervisor.hang_timeout_ms;
        let now = Instant::now();
        for i in 0..self.children.len() {
            // Exits.
            let exited = match self.children[i].process.as_mut().map(Child::try_wait) {
                Some(Ok(Some(status))) => Some(status),
                _ => None,
            };
            if let Some(status) = exited {
                self.on_exit(i, status)?;
                continue;
            }
            let name = self.children[i].spec.name;
            let slot = snapshot.stage(name);
            match self.children[i].phase {
                Phase::Pending => {
                    // Start in order: every stage before this one must be Running.
                    if self.children[..i].iter().all(|c| c.phase == Phase::Running) {
                        self.start(i)?;
                    }
                }
                Phase::Starting => {
                    if slot.is_some_and(|s| s.state == Some(StageState::Running) && s.pid == self.pid(i)) {
                        info!(stage = name, pid = self.pid(i), "ready");
                        self.children[i].phase = Phase::Running;
                        self.report();
                    }
                }
                Phase::Running => {
                    let age = slot.and_then(|s| s.heartbeat_age_ms).unwrap_or(0);
                    if age > hang_timeout {
                        warn!(stage = name, heartbeat_age_ms = age, "hung; killing it");
                        self.own.add(self.ids.hangs, 1);
                        let _ = self.lifecycle.count_hang(name, HangReason::Heartbeat);
                        self.kill(i);
                        // Reaped and restarted like any other exit on the next tick.
                    } else if self.children[i].started.elapsed() > STABLE_AFTER {
                        self.children[i].backoff.reset();
                    }
                }
                Phase::RestartAt(at) if now >= at => self.start(i)?,
                Phase::RestartAt(_) => {}
                Phase::Stopping { deadline, .. } if now >= deadline => {
                    warn!(stage = name, "did not stop in time; killing it");
                    self.kill(i);
                }
                Phase::Stopping { .. } => {}
            }
            // Operator's restart requests (telemetryctl restart).
            let requests = self.lifecycle.restart_requests(name).unwrap_or(0);
            if requests > self.children[i].restart_requests_seen {
                self.children[i].restart_requests_seen = requests;
                if self.children[i].process.is_some() {
                    info!(stage = name, "restart requested");
                    self.terminate(i, true);
                }
            }
        }
        Ok(())
    }

    fn pid(&self, i: usize) -> u32 {
        self.children[i].process.as_ref().map_or(0, Child::id)
    }

    /// Spawns a stage. A stage that cannot even be spawned (missing binary, no permission)
    /// counts as a failed start, towards the restart intensity like any exit.
    fn start(&mut self, i: usize) -> Result<(), String> {
        let c = &mut self.children[i];
        // Before the spawn: a stage quick enough to report Running must not be overwritten.
        let _ = self.lifecycle.set_state(c.spec.name, StageState::Starting, 0);
        match spawn_stage(&c.spec.program, &self.config_path) {
            Ok(child) => {
                info!(stage = c.spec.name, pid = child.id(), "started");
                c.process = Some(child);
                c.phase = Phase::Starting;
                c.started = Instant::now();
            }
            Err(e) => {
                let name = c.spec.name;
                error!(stage = name, program = %c.spec.program.display(), error = %e, "cannot start");
                c.started = Instant::now();
                return self.restart_later(i, &format!("{name} cannot be started ({e})"));
            }
        }
        Ok(())
    }

    fn on_exit(&mut self, i: usize, status: std::process::ExitStatus) -> Result<(), String> {
        let name = self.children[i].spec.name;
        let exit = ExitStatus::from_wait(status);
        let _ = self.lifecycle.record_exit(name, exit);
        self.children[i].process = None;
        let requested = matches!(self.children[i].phase, Phase::Stopping { restart: true, .. });
        if requested {
            info!(stage = name, ?exit, "stopped on request; starting it again");
            self.count_restart(name);
            return self.start(i);
        }
        warn!(stage = name, ?exit, "exited");
        if exit.crashed() {
            self.check_poison(i);
        }
        self.restart_later(i, &format!("{name} exited ({exit:?})"))
    }

    /// Schedules a restart after a failure, or gives up past the restart intensity.
    fn restart_later(&mut self, i: usize, failure: &str) -> Result<(), String> {
        let name = self.children[i].spec.name;
        if !self.intensity.allow(Instant::now()) {
            return Err(format!(
                "{failure}: more than {} restarts within {} s",
                self.config.supervisor.restart_intensity, self.config.supervisor.restart_period_s
            ));
        }
        self.count_restart(name);
        // The first restart is immediate; a stage that keeps failing backs off.
        let c = &mut self.children[i];
        let delay = if c.started.elapsed() > STABLE_AFTER {
            c.backoff.reset();
            Duration::ZERO
        } else {
            c.backoff.next_delay()
        };
        c.phase = Phase::RestartAt(Instant::now() + delay);
        let _ = self.lifecycle.set_state(name, StageState::Backoff, 0);
        self.report();
        Ok(())
    }

    /// After a crash: if the stage keeps dying on the same input record, take that record out.
    fn check_poison(&mut self, i: usize) {
        let (name, Some(ring)) = (self.children[i].spec.name, self.children[i].spec.input) else {
            return;
        };
        let position = SegmentName::new(&self.config.pipeline.prefix, ring)
            .ok()
            .and_then(|n| shm_ring::RingObserver::attach(&n).ok())
            .and_then(|o| o.processing());
        if !self.poison.died(name, position) {
            return;
        }
        let position = position.expect("died() is true only for a position");
        match poison::take_out(&self.config.pipeline.prefix, ring, position, name) {
            Ok(line) => {
                error!(
                    stage = name,
                    ring, position, "skipped a poison record after repeated crashes on it"
                );
                self.own.add(self.ids.poison_skipped, 1);
                // Per ring too, so that telemetryctl's balance can account for it.
                if let Ok(id) = self.own.id(&format!("{}.{ring}", supervisor_counter::POISON_SKIPPED)) {
                    self.own.add(id, 1);
                }
                match self.dead_letter.write(&line) {
                    Ok(true) => {}
                    Ok(false) => self.own.add(self.ids.dead_letter_full, 1),
                    Err(e) => {
                        warn!(error = %e, "cannot write the dead-letter file");
                        self.own.add(self.ids.dead_letter_full, 1);
                    }
                }
            }
            Err(e) => error!(stage = name, ring, position, error = %e, "cannot take the poison record out"),
        }
    }

    fn count_restart(&mut self, name: &str) {
        self.own.add(self.ids.restarts, 1);
        let _ = self.lifecycle.count_restart(name);
    }

    fn kill(&mut self, i: usize) {
        if let Some(c) = self.children[i].process.as_mut() {
            let _ = c.kill();
        }
    }

    fn terminate(&mut self, i: usize, restart: bool) {
        let pid = self.pid(i);
        if pid != 0 {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let timeout = Duration::from_millis(self.config.supervisor.shutdown_timeout_ms);
        self.children[i].phase = Phase::Stopping {
            deadline: Instant::now() + timeout,
            restart,
        };
    }

    /// Stops the stages upstream first: each gets SIGTERM once the one before it has exited, so
    /// it drains an input ring that no longer grows; SIGKILL after the shutdown timeout.
    fn stop_all(&mut self, why: &str) {
        info!(why, "stopping the pipeline");
        self.notifier.stopping(&format!("stopping: {why}"));
        self.own.set_state(StageState::Stopping);
        for i in (0..self.children.len()).rev() {
            let name = self.children[i].spec.name;
            if self.children[i].process.is_none() {
                continue;
            }
            let _ = self.lifecycle.set_state(name, StageState::Stopping, self.pid(i));
            self.terminate(i, false);
            let timeout = Duration::from_millis(self.config.supervisor.shutdown_timeout_ms);
            let deadline = Instant::now() + timeout;
            let status = loop {
                let done = self.children[i]
                    .process
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten());
                if let Some(s) = done {
                    break s;
                }
                if Instant::now() >= deadline {
                    warn!(stage = name, "did not stop within the shutdown timeout; killing it");
                    let c = self.children[i].process.as_mut().expect("running");
                    let _ = c.kill();
                    break c.wait().expect("wait");
                }
                self.own.flush();
                std::thread::sleep(Duration::from_millis(10));
            };
            let exit = ExitStatus::from_wait(status);
            info!(stage = name, ?exit, "stopped");
            let _ = self.lifecycle.record_exit(name, exit);
            self.children[i].process = None;
        }
        self.own.set_state(StageState::Exited);
        self.own.flush();
    }

    /// Sends READY=1 the first time every stage runs, and a STATUS= line on every change.
    fn report(&mut self) {
        let states: HashMap<&str, Phase> = self.children.iter().map(|c| (c.spec.name, c.phase)).collect();
        let running = states.values().filter(|p| **p == Phase::Running).count();
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
