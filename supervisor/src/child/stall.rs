//! Whether a stage's input has stalled: its position standing still while it has records to read
//! and room to write them.

use std::time::{Duration, Instant};

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

#[cfg(test)]
mod tests {
    use super::*;

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
