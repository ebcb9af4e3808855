//! The supervisor as a systemd service ([`Service`]): what it tells systemd and when, over the
//! notify protocol (`crate::notify`): `READY=1` once, the first time every stage runs; a
//! `STATUS=` line on every other change; `WATCHDOG=1` on the watchdog's schedule while the loop
//! turns; `STOPPING=1` when it stops.

use std::time::Instant;

use tracing::info;

use crate::notify::Notifier;

/// What systemd has been told, and when the watchdog is next due.
pub struct Service {
    notifier: Notifier,
    ready_sent: bool,
    next_watchdog: Option<Instant>,
}

impl Service {
    /// Starts the watchdog's schedule at `now`, if systemd asked for one.
    pub fn new(notifier: Notifier, now: Instant) -> Service {
        Service {
            next_watchdog: notifier.watchdog_interval().map(|every| now + every),
            notifier,
            ready_sent: false,
        }
    }

    /// `STATUS=…`.
    pub fn status(&self, status: &str) {
        self.notifier.status(status);
    }

    /// `STOPPING=1` with a status line.
    pub fn stopping(&self, status: &str) {
        self.notifier.stopping(status);
    }

    /// `running` of `total` stages run: `READY=1` the first time all do, else a status line.
    pub fn stages_running(&mut self, running: usize, total: usize) {
        let status = format!("{running}/{total} stages running");
        if running == total && !self.ready_sent {
            self.notifier.ready(&status);
            self.ready_sent = true;
            info!("all stages running");
        } else {
            self.notifier.status(&status);
        }
    }

    /// When `WATCHDOG=1` is next due, if ever.
    pub fn next_watchdog(&self) -> Option<Instant> {
        self.next_watchdog
    }

    /// Sends `WATCHDOG=1` if it is due at `now`, and schedules the next one.
    pub fn on_time(&mut self, now: Instant) {
        if self.next_watchdog.is_some_and(|at| now >= at) {
            self.notifier.watchdog();
            self.next_watchdog = self.notifier.watchdog_interval().map(|every| now + every);
        }
    }
}
