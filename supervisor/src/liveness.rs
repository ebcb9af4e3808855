//! Liveness: is each stage ready, alive and moving? The loop asks on two occasions:
//!
//! - a stage wrote to the readiness pipe: `Supervisor::check_ready` looks at the states in the
//!   stats page and takes every stage that reports `Running` (with its own pid) as started;
//! - every check interval ([`crate::child::check_interval`]): `Supervisor::check` looks for
//!   readiness again (in case a wake-up was lost), for exits of children without a pidfd, for
//!   hangs, and for operators' restart requests.
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

use std::time::Instant;

use pipeline_stats::lifecycle::HangReason;
use shm_ring::StageState;
use tracing::{info, warn};

use crate::child::Phase;
use crate::supervisor::Supervisor;

impl Supervisor {
    /// Takes every starting stage that reports `Running` as ready.
    pub(crate) fn check_ready(&mut self, now: Instant) {
        for i in 0..self.children.len() {
            let c = &self.children[i];
            if !matches!(c.phase, Phase::Starting { .. }) {
                continue;
            }
            let Ok(slot) = self.lifecycle.slot(c.spec.name) else {
                continue;
            };
            // The pid too: the state could still be a predecessor's.
            if slot.state() == Some(StageState::Running) && slot.pid() == c.pid() {
                self.became_ready(i, now);
            }
        }
    }

    fn became_ready(&mut self, i: usize, now: Instant) {
        let mark = self.progress_mark(i);
        let c = &mut self.children[i];
        let start_ms = now.saturating_duration_since(c.run.started).as_millis() as u64;
        c.phase = Phase::Running { since: now };
        c.run.ready_at = Some(now);
        c.run.mark = mark;
        info!(stage = c.spec.name, pid = c.pid(), start_ms, "ready");
        self.report();
    }

    /// The periodic look. `Err` when reaping an exit exceeded the restart intensity.
    pub(crate) fn check(&mut self, now: Instant) -> Result<(), String> {
        self.check_ready(now);
        for i in 0..self.children.len() {
            if self.children[i].pidfd.is_none() && self.children[i].process.is_some() {
                self.reap(i)?;
            }
            if matches!(self.children[i].phase, Phase::Running { .. }) {
                if let Some(reason) = self.hung(i, now) {
                    self.hang(i, reason);
                }
            }
            self.check_restart_request(i);
        }
        Ok(())
    }

    /// Why a running stage is hung, if it is.
    fn hung(&mut self, i: usize, now: Instant) -> Option<HangReason> {
        let hang_timeout = self.limits.hang_timeout;
        let c = &mut self.children[i];
        let age_ms = self.lifecycle.slot(c.spec.name).ok()?.heartbeat_age_ms().unwrap_or(0);
        if age_ms > hang_timeout.as_millis() as u64 {
            warn!(stage = c.spec.name, heartbeat_age_ms = age_ms, "heartbeat too old");
            return Some(HangReason::Heartbeat);
        }
        if !c.spec.must_keep_moving() {
            return None;
        }
        let (Some(input), Some(output)) = (&c.input, &c.output) else {
            return None;
        };
        let (written, read) = input.positions();
        let (out_written, out_read) = output.positions();
        let room = out_written.wrapping_sub(out_read) < output.capacity();
        let stalled = c.stall.observe(now, read, written != read, room)?;
        if stalled <= hang_timeout {
            return None;
        }
        warn!(
            stage = c.spec.name,
            position = read,
            pending = written.wrapping_sub(read),
            stalled_ms = stalled.as_millis() as u64,
            "input pending and room downstream, but the position does not move"
        );
        Some(HangReason::NoProgress)
    }

    /// Kills a hung stage (it is restarted when its exit is reaped) and counts the hang.
    pub(crate) fn hang(&mut self, i: usize, reason: HangReason) {
        let name = self.children[i].spec.name;
        warn!(
            stage = name,
            pid = self.children[i].pid(),
            reason = reason.as_str(),
            "hung; killing it"
        );
        self.own.add(self.ids.hangs, 1);
        let _ = self.lifecycle.count_hang(name, reason);
        self.kill(i);
        self.children[i].phase = Phase::Killed;
    }

    /// An operator's restart request (`telemetryctl restart`): a count that grows.
    fn check_restart_request(&mut self, i: usize) {
        let name = self.children[i].spec.name;
        let requests = self.lifecycle.restart_requests(name).unwrap_or(0);
        if requests > self.children[i].restart_requests_seen {
            self.children[i].restart_requests_seen = requests;
            if self.children[i].process.is_some() {
                info!(stage = name, "restart requested");
                self.terminate(i, true);
            }
        }
    }
}
