//! How long ingestd pauses once its socket is drained.
//!
//! A pause lets messages gather in the socket, so the next pass reads many per system call and
//! hands them to the raw ring in one commit; downstream stages then also wake once per batch.
//! What a wake-up costs is roughly fixed (system calls, a context switch, caches gone cold), so
//! the pause decides the CPU per message at moderate rates (docs/benchmarks.md).
//!
//! The pause is `batch_budget_us`, stretched while messages trickle in at QoS 0: aiming at
//! [`TARGET_BATCH`] messages per pass at the rate of the last pass, up to
//! [`telemetry_config::Ingestd::longest_pause`]. At QoS 1 it is never stretched: the broker sends
//! at most its in-flight window per pause, so a longer pause would lower the rate it allows, and
//! a lower rate would stretch the pause further.

use std::time::{Duration, Instant};

/// Messages per pass that a stretched pause aims at.
pub const TARGET_BATCH: u32 = 1024;

/// The pause's inputs since the last pause.
#[derive(Debug)]
pub struct Pacing {
    budget: Duration,
    longest: Duration,
    taken: u32,
    acked: bool,
    /// When the last pass ended (its pause began): the messages of this pass arrived since.
    last_drained: Instant,
}

impl Pacing {
    /// Pauses of `budget`, stretched up to `longest` at QoS 0.
    pub fn new(budget: Duration, longest: Duration, now: Instant) -> Pacing {
        Pacing {
            budget,
            longest: longest.max(budget),
            taken: 0,
            acked: false,
            last_drained: now,
        }
    }

    /// One message taken; `needs_ack` if it came at QoS 1 or 2.
    pub fn took(&mut self, needs_ack: bool) {
        self.taken = self.taken.saturating_add(1);
        self.acked |= needs_ack;
    }

    /// The socket is drained at `now`: how long to pause (zero after a pass that took no
    /// message, such as one that only sent acks). Starts the next pass's count.
    pub fn drained(&mut self, now: Instant) -> Duration {
        let span = now.saturating_duration_since(self.last_drained);
        let pause = if self.taken == 0 || self.budget.is_zero() {
            Duration::ZERO
        } else if self.acked {
            self.budget
        } else {
            // TARGET_BATCH at the rate taken / span.
            (span * TARGET_BATCH / self.taken).clamp(self.budget, self.longest)
        };
        if self.taken > 0 {
            self.last_drained = now;
        }
        self.taken = 0;
        self.acked = false;
        pause
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn pass(p: &mut Pacing, t0: Instant, at_ms: u64, messages: u32, ack: bool) -> Duration {
        for _ in 0..messages {
            p.took(ack);
        }
        p.drained(t0 + MS * at_ms as u32)
    }

    #[test]
    fn a_trickle_at_qos_0_stretches_the_pause_up_to_the_longest() {
        let t0 = Instant::now();
        let mut p = Pacing::new(2 * MS, 16 * MS, t0);
        let target = TARGET_BATCH;
        // A target's worth in 64 ms: more than the longest pause.
        assert_eq!(pass(&mut p, t0, 64, target, false), 16 * MS);
        // A target's worth in the next 8 ms: 8 ms.
        assert_eq!(pass(&mut p, t0, 72, target, false), 8 * MS);
        // Twice the target in 8 ms: 4 ms.
        assert_eq!(pass(&mut p, t0, 80, 2 * target, false), 4 * MS);
    }

    #[test]
    fn a_flood_pauses_the_budget() {
        let t0 = Instant::now();
        let mut p = Pacing::new(2 * MS, 16 * MS, t0);
        assert_eq!(pass(&mut p, t0, 2, 4 * TARGET_BATCH, false), 2 * MS);
    }

    #[test]
    fn qos_1_never_stretches() {
        let t0 = Instant::now();
        let mut p = Pacing::new(2 * MS, 16 * MS, t0);
        p.took(false);
        assert_eq!(pass(&mut p, t0, 2, 1, true), 2 * MS);
        // The next pass is judged on its own.
        assert_eq!(pass(&mut p, t0, 4, 1, false), 16 * MS);
    }

    #[test]
    fn no_message_no_pause_and_a_zero_budget_never_pauses() {
        let t0 = Instant::now();
        let mut p = Pacing::new(2 * MS, 16 * MS, t0);
        assert_eq!(pass(&mut p, t0, 5, 0, false), Duration::ZERO);
        let mut z = Pacing::new(Duration::ZERO, Duration::ZERO, t0);
        assert_eq!(pass(&mut z, t0, 5, 3, false), Duration::ZERO);
    }

    #[test]
    fn the_span_runs_from_the_last_pass_that_took_messages() {
        let t0 = Instant::now();
        let mut p = Pacing::new(2 * MS, 16 * MS, t0);
        assert_eq!(pass(&mut p, t0, 1, 2 * TARGET_BATCH, false), 2 * MS);
        // A pass of acks only (nothing taken) does not restart the span.
        assert_eq!(pass(&mut p, t0, 2, 0, false), Duration::ZERO);
        // A target's worth since t0 + 1 ms, now t0 + 5 ms: 4 ms.
        assert_eq!(pass(&mut p, t0, 5, TARGET_BATCH, false), 4 * MS);
    }
}
