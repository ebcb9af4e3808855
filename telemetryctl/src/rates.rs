//! Rates per second, from two snapshots of the stats page taken some time apart (one `--watch`
//! refresh to the next). One-shot `telemetryctl stats` shows totals only.
//!
//! A counter registered between the two snapshots started at 0. A counter that went down (the
//! page was replaced, for example by a supervisor of another release) has no rate.

use std::time::Duration;

use pipeline_stats::counters::{classify, CounterKind};
use shm_ring::stats::StatsSnapshot;

/// Per-second rates of every counter present in the later snapshot (gauges have none).
#[derive(Clone, Debug, PartialEq)]
pub struct Rates {
    /// Seconds between the two snapshots.
    pub seconds: f64,
    /// `(stage, counter, per second)`.
    pub values: Vec<(String, String, f64)>,
}

impl Rates {
    /// The rate of one counter, if known.
    pub fn get(&self, stage: &str, counter: &str) -> Option<f64> {
        self.values
            .iter()
            .find(|(s, c, _)| s == stage && c == counter)
            .map(|(_, _, r)| *r)
    }
}

/// Rates between `prev` and `cur`, taken `elapsed` apart; `None` if no time passed.
pub fn compute(prev: &StatsSnapshot, cur: &StatsSnapshot, elapsed: Duration) -> Option<Rates> {
    let seconds = elapsed.as_secs_f64();
    if seconds <= 0.0 {
        return None;
    }
    let mut values = Vec::new();
    for stage in &cur.stages {
        let before = prev.stage(&stage.name);
        for (name, now) in &stage.counters {
            if matches!(classify(name), CounterKind::Gauge(_)) {
                continue; // a value, not a count: it has no rate
            }
            let then = before.and_then(|b| b.counter(name)).unwrap_or(0);
            if let Some(delta) = now.checked_sub(then) {
                values.push((stage.name.clone(), name.clone(), delta as f64 / seconds));
            }
        }
    }
    Some(Rates { seconds, values })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline_stats::fixtures::stage;

    fn stats(stages: Vec<shm_ring::stats::StageSnapshot>) -> StatsSnapshot {
        StatsSnapshot { stages, rings: vec![] }
    }

    #[test]
    fn rates_are_deltas_per_second() {
        let a = stats(vec![stage("ingestd", &[("received", 100), ("forwarded", 100)])]);
        let b = stats(vec![
            stage(
                "ingestd",
                &[("received", 300), ("forwarded", 200), ("dropped.ring_full", 10)],
            ),
            stage("decoded", &[("received", 4)]),
        ]);
        let r = compute(&a, &b, Duration::from_millis(2000)).unwrap();
        assert_eq!(r.seconds, 2.0);
        assert_eq!(r.get("ingestd", "received"), Some(100.0));
        assert_eq!(r.get("ingestd", "forwarded"), Some(50.0));
        assert_eq!(r.get("ingestd", "dropped.ring_full"), Some(5.0));
        assert_eq!(r.get("decoded", "received"), Some(2.0));
        assert_eq!(r.get("aggd", "received"), None);
    }

    #[test]
    fn gauges_have_no_rate() {
        let a = stats(vec![stage("emitd", &[("gauge.backlog.nats", 100)])]);
        let b = stats(vec![stage("emitd", &[("gauge.backlog.nats", 300)])]);
        let r = compute(&a, &b, Duration::from_millis(1000)).unwrap();
        assert_eq!(r.get("emitd", "gauge.backlog.nats"), None);
    }

    #[test]
    fn a_counter_that_went_down_has_no_rate() {
        let a = stats(vec![stage("ingestd", &[("received", 100)])]);
        let b = stats(vec![stage("ingestd", &[("received", 5)])]);
        let r = compute(&a, &b, Duration::from_secs(1)).unwrap();
        assert_eq!(r.get("ingestd", "received"), None);
        assert!(compute(&a, &b, Duration::ZERO).is_none());
    }
}
