//! How the stats page's counters are grouped, by `telemetryctl` and the supervisor's Prometheus
//! text alike: the stages in pipeline order, and each stage's counters by kind (`received`,
//! `forwarded`, `dropped.<reason>`, `error.<reason>`, gauges (`gauge.<name>`, values rather than
//! counts), and any other counter, such as emitd's `nats.connects` or the supervisor's
//! `poison.skipped`).

use records::names::{counter, gauge, stage};
use shm_ring::stats::{StageSnapshot, StatsSnapshot};

/// Prefix of the counters of messages a stage dropped (see `records::names::drop_reason`).
pub const DROPPED_PREFIX: &str = "dropped.";
/// Prefix of the counters of messages a stage could not use (see `records::names::error_reason`).
pub const ERROR_PREFIX: &str = "error.";

/// What a counter counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CounterKind<'a> {
    /// `received`.
    Received,
    /// `forwarded`.
    Forwarded,
    /// `dropped.<reason>`, with the reason.
    Dropped(&'a str),
    /// `error.<reason>`, with the reason.
    Error(&'a str),
    /// `gauge.<name>`, with the name: a value the stage sets, not a count.
    Gauge(&'a str),
    /// Anything else.
    Other,
}

impl CounterKind<'_> {
    fn rank(self) -> u8 {
        match self {
            CounterKind::Received => 0,
            CounterKind::Forwarded => 1,
            CounterKind::Dropped(_) => 2,
            CounterKind::Error(_) => 3,
            CounterKind::Other => 4,
            CounterKind::Gauge(_) => 5,
        }
    }
}

/// Classifies a counter by its name.
pub fn classify(name: &str) -> CounterKind<'_> {
    if name == counter::RECEIVED {
        CounterKind::Received
    } else if name == counter::FORWARDED {
        CounterKind::Forwarded
    } else if let Some(reason) = name.strip_prefix(DROPPED_PREFIX).filter(|r| !r.is_empty()) {
        CounterKind::Dropped(reason)
    } else if let Some(reason) = name.strip_prefix(ERROR_PREFIX).filter(|r| !r.is_empty()) {
        CounterKind::Error(reason)
    } else if let Some(gauge) = name.strip_prefix(gauge::PREFIX).filter(|g| !g.is_empty()) {
        CounterKind::Gauge(gauge)
    } else {
        CounterKind::Other
    }
}

/// A stage's counters for display: received, forwarded, drops, errors, others; by name within
/// each group.
pub fn sorted_counters(stage: &StageSnapshot) -> Vec<(&str, u64)> {
    let mut all: Vec<(&str, u64)> = stage.counters.iter().map(|(n, v)| (n.as_str(), *v)).collect();
    all.sort_by(|a, b| classify(a.0).rank().cmp(&classify(b.0).rank()).then(a.0.cmp(b.0)));
    all
}

/// A counter's value, 0 when the stage never registered it (a counter starts at 0).
pub fn value(stage: &StageSnapshot, name: &str) -> u64 {
    stage.counter(name).unwrap_or(0)
}

/// Sum of every counter whose name starts with `prefix`.
pub fn sum_prefix(stage: &StageSnapshot, prefix: &str) -> u64 {
    stage
        .counters
        .iter()
        .filter(|(n, _)| n.starts_with(prefix))
        .fold(0u64, |acc, (_, v)| acc.saturating_add(*v))
}

/// The stages of a snapshot in display order: ingestd, decoded, aggd, emitd (those present),
/// then the supervisor, then any other slot in page order.
pub fn ordered_stages(stats: &StatsSnapshot) -> Vec<&StageSnapshot> {
    let rank = |name: &str| {
        stage::ALL
            .iter()
            .position(|s| *s == name)
            .unwrap_or(if name == stage::SUPERVISOR {
                stage::ALL.len()
            } else {
                usize::MAX
            })
    };
    let mut stages: Vec<&StageSnapshot> = stats.stages.iter().collect();
    // Stable: slots of equal rank keep their page order.
    stages.sort_by_key(|s| rank(&s.name));
    stages
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::stage;

    #[test]
    fn counters_are_classified_by_name() {
        assert_eq!(classify("received"), CounterKind::Received);
        assert_eq!(classify("forwarded"), CounterKind::Forwarded);
        assert_eq!(classify("dropped.ring_full"), CounterKind::Dropped("ring_full"));
        assert_eq!(classify("error.malformed"), CounterKind::Error("malformed"));
        assert_eq!(classify("dropped."), CounterKind::Other);
        assert_eq!(classify("nats.connects"), CounterKind::Other);
    }

    #[test]
    fn counters_sort_by_kind_then_name() {
        let s = stage(
            "emitd",
            &[
                ("nats.connects", 1),
                ("dropped.z", 2),
                ("received", 3),
                ("dropped.a", 4),
                ("forwarded", 5),
                ("error.x", 6),
            ],
        );
        let names: Vec<&str> = sorted_counters(&s).into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "received",
                "forwarded",
                "dropped.a",
                "dropped.z",
                "error.x",
                "nats.connects"
            ]
        );
        assert_eq!(sum_prefix(&s, DROPPED_PREFIX), 6);
        assert_eq!(value(&s, "missing"), 0);
    }

    #[test]
    fn stages_come_in_pipeline_order() {
        let stats = StatsSnapshot {
            stages: ["extra", "supervisor", "emitd", "ingestd", "aggd", "decoded"]
                .iter()
                .map(|n| stage(n, &[]))
                .collect(),
            rings: vec![],
        };
        let names: Vec<&str> = ordered_stages(&stats).iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["ingestd", "decoded", "aggd", "emitd", "supervisor", "extra"]);
    }
}
