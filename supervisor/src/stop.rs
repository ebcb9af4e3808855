//! The ordered stop (SIGTERM to the supervisor, or escalation): upstream first, each stage
//! getting SIGTERM once the one before it has exited, so that it drains an input ring that no
//! longer grows; SIGKILL after `shutdown_timeout_ms`. The supervisor's own slot says `stopping`
//! meanwhile, with a fresh heartbeat, and `exited` at the end.

use std::time::{Duration, Instant};

use shm_ring::stats::StageState;
use tracing::info;

use crate::child::Supervised;
use crate::page::Page;

/// Stops every stage of `children` (in start order, so stopped in reverse), each within
/// `shutdown_timeout`, keeping the supervisor's heartbeat in `page` at least every
/// `heartbeat_every`.
pub fn in_order(children: &mut [Supervised], page: &mut Page, shutdown_timeout: Duration, heartbeat_every: Duration) {
    page.set_own_state(StageState::Stopping);
    for child in children.iter_mut().rev() {
        if !child.has_process() {
            continue;
        }
        let name = child.name();
        page.set_state(name, StageState::Stopping, child.pid());
        child.terminate(Instant::now() + shutdown_timeout, false);
        let exit = child.wait_stopped(Instant::now() + shutdown_timeout, heartbeat_every, || page.flush());
        info!(stage = name, ?exit, "stopped");
        page.record_exit(name, exit);
        child.forget_process();
    }
    page.set_own_state(StageState::Exited);
    page.flush();
}
