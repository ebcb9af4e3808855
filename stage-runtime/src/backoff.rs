//! Retry delays: capped exponential backoff with jitter. ingestd waits this long between MQTT
//! reconnects (rumqttc itself retries with no delay at all: 40–55k attempts per second against a
//! dead port, per `shared/notes/dependencies.md`), and the supervisor between restarts of a
//! stage that keeps failing.

use std::time::Duration;

/// Delays that double from `min` up to `max`, each drawn uniformly from the upper half of the
/// current step ("equal jitter"), so that many gateways restarting together spread out.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    step: Duration,
    rng: u64,
}

impl Backoff {
    /// A backoff from `min` to `max` (`min` ≤ `max`, both non-zero).
    pub fn new(min: Duration, max: Duration) -> Self {
        let seed = u64::from(std::process::id()) ^ 0x9E37_79B9_7F4A_7C15;
        Backoff {
            min,
            max: max.max(min),
            step: min,
            rng: seed | 1,
        }
    }

    /// The next delay; the step then doubles (up to `max`).
    pub fn next_delay(&mut self) -> Duration {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let half = self.step / 2;
        let extra = half.as_nanos() as u64;
        let jitter = if extra == 0 { 0 } else { self.rng % (extra + 1) };
        let delay = half + Duration::from_nanos(jitter);
        self.step = (self.step * 2).min(self.max);
        delay
    }

    /// Back to the first step, after a successful connection.
    pub fn reset(&mut self) {
        self.step = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_stay_within_the_cap_and_reset() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        let mut steps = Vec::new();
        for _ in 0..8 {
            steps.push(b.next_delay());
        }
        let caps = [100, 200, 400, 800, 1000, 1000, 1000, 1000];
        for (d, cap) in steps.iter().zip(caps) {
            let cap = Duration::from_millis(cap);
            assert!(*d >= cap / 2 && *d <= cap, "{d:?} outside [{:?}, {cap:?}]", cap / 2);
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
