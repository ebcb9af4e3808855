//! The heartbeat while ingestd's loop waits on its socket.
//!
//! The other stages beat once per loop turn, and their loops turn at least every few hundred
//! milliseconds. ingestd's loop instead waits inside rumqttc's `poll()` for as long as the
//! broker is quiet, and cancelling that future to beat would be unsound (it can be in the middle
//! of writing an ack). So the stage beats for it ([`crate::stage`]), but only while the loop is waiting in
//! `poll()` or has made progress since the last tick: a loop stuck anywhere else stops the beat,
//! and the supervisor's hang detection still sees it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Shared between the loop and its ticker.
#[derive(Clone, Default)]
pub struct Liveness {
    waiting: Arc<AtomicBool>,
    turns: Arc<AtomicU64>,
}

impl Liveness {
    /// The loop is about to wait on the network (or a reconnect delay).
    pub fn waiting(&self) {
        self.waiting.store(true, Ordering::Relaxed);
    }

    /// The loop is working; it is healthy as long as it keeps calling [`Liveness::turned`].
    pub fn working(&self) {
        self.waiting.store(false, Ordering::Relaxed);
    }

    /// The loop finished one turn.
    pub fn turned(&self) {
        self.turns.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether the loop looks healthy since the last call (`last_turns` is the caller's memory).
    pub fn healthy(&self, last_turns: &mut u64) -> bool {
        let turns = self.turns.load(Ordering::Relaxed);
        let progressed = turns != *last_turns;
        *last_turns = turns;
        progressed || self.waiting.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthy_while_waiting_or_progressing_not_when_stuck() {
        let l = Liveness::default();
        let mut last = 0;
        l.working();
        assert!(!l.healthy(&mut last), "no turn and not waiting");
        l.turned();
        assert!(l.healthy(&mut last));
        assert!(!l.healthy(&mut last), "stuck since the last look");
        l.waiting();
        assert!(l.healthy(&mut last));
    }
}
