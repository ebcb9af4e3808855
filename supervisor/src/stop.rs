//! The ordered stop (SIGTERM to the supervisor, or escalation): upstream first, each stage
//! getting SIGTERM once the one before it has exited, so that it drains an input ring that no
//! longer grows; SIGKILL after `shutdown_timeout_ms`.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use pipeline_stats::lifecycle::ExitStatus;
use shm_ring::StageState;
use tracing::{info, warn};

use crate::events;
use crate::supervisor::Supervisor;

impl Supervisor {
    /// Stops every stage, upstream first, and marks the supervisor's own slot exited.
    pub(crate) fn stop_all(&mut self, why: &str) {
        info!(why, "stopping the pipeline");
        self.notifier.stopping(&format!("stopping: {why}"));
        self.own.set_state(StageState::Stopping);
        for i in (0..self.children.len()).rev() {
            if self.children[i].process.is_none() {
                continue;
            }
            let name = self.children[i].spec.name;
            let _ = self
                .lifecycle
                .set_state(name, StageState::Stopping, self.children[i].pid());
            self.terminate(i, false);
            let exit = self.wait_stopped(i);
            info!(stage = name, ?exit, "stopped");
            let _ = self.lifecycle.record_exit(name, exit);
            let c = &mut self.children[i];
            c.process = None;
            c.pidfd = None;
        }
        self.own.set_state(StageState::Exited);
        self.own.flush();
    }

    /// Waits for stage `i` to exit after SIGTERM, SIGKILLing it at the shutdown timeout. Sleeps
    /// on its pidfd, waking at least every check interval to keep the supervisor's heartbeat.
    fn wait_stopped(&mut self, i: usize) -> ExitStatus {
        let deadline = Instant::now() + self.limits.shutdown_timeout;
        loop {
            let c = &mut self.children[i];
            let Some(process) = c.process.as_mut() else {
                return ExitStatus::None;
            };
            if let Ok(Some(status)) = process.try_wait() {
                return ExitStatus::from_wait(status);
            }
            let now = Instant::now();
            if now >= deadline {
                warn!(
                    stage = c.spec.name,
                    "did not stop within the shutdown timeout; killing it"
                );
                let _ = process.kill();
                return process.wait().map_or(ExitStatus::None, ExitStatus::from_wait);
            }
            let nap = (deadline - now).min(self.limits.check_every);
            match &c.pidfd {
                Some(fd) => {
                    events::wait_exit(fd.as_fd(), nap);
                }
                None => std::thread::sleep(nap.min(Duration::from_millis(10))),
            }
            self.own.flush();
        }
    }
}
