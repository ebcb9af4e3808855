//! Restart intensity, as in Erlang/OTP: more than `max` restarts within `period` means restarting
//! does not help, and the supervisor gives up (stops everything and exits non-zero) so that the
//! next level (systemd's `Restart=`) takes over.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Remembers the restarts of the last `period`.
#[derive(Debug)]
pub struct RestartIntensity {
    max: u32,
    period: Duration,
    recent: VecDeque<Instant>,
}

impl RestartIntensity {
    /// At most `max` restarts within `period`.
    pub fn new(max: u32, period: Duration) -> Self {
        RestartIntensity {
            max,
            period,
            recent: VecDeque::new(),
        }
    }

    /// Records a restart at `now`; returns `false` when that exceeds the intensity.
    pub fn allow(&mut self, now: Instant) -> bool {
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.period)
        {
            self.recent.pop_front();
        }
        self.recent.push_back(now);
        self.recent.len() as u32 <= self.max
    }

    /// The limit in words, for the reason of an escalation.
    pub fn describe(&self) -> String {
        format!("more than {} restarts within {} s", self.max, self.period.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_than_max_within_the_period_escalates_and_old_restarts_expire() {
        let t0 = Instant::now();
        let mut r = RestartIntensity::new(2, Duration::from_secs(10));
        assert!(r.allow(t0));
        assert!(r.allow(t0 + Duration::from_secs(1)));
        assert!(!r.allow(t0 + Duration::from_secs(2)));
        let mut r = RestartIntensity::new(2, Duration::from_secs(10));
        assert!(r.allow(t0));
        assert!(r.allow(t0 + Duration::from_secs(5)));
        assert!(r.allow(t0 + Duration::from_secs(11)), "the first one expired");
        assert!(!r.allow(t0 + Duration::from_secs(12)));
        assert_eq!(r.describe(), "more than 2 restarts within 10 s");
    }

    #[test]
    fn zero_intensity_gives_up_at_the_first_restart() {
        assert!(!RestartIntensity::new(0, Duration::from_secs(1)).allow(Instant::now()));
    }
}
