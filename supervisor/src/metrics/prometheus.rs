//! The stats page as Prometheus text (exposition format 0.0.4), for the supervisor's metrics
//! endpoint (`supervisor.metrics_listen`). A pure function of a snapshot and the ring depths; the
//! counters are grouped as `telemetryctl` groups them (`pipeline_stats::counters`).
//!
//! | metric | type | labels | value |
//! |---|---|---|---|
//! | `telemetry_stage_received_total` | counter | `stage` | `received` |
//! | `telemetry_stage_forwarded_total` | counter | `stage` | `forwarded` |
//! | `telemetry_stage_dropped_total` | counter | `stage`, `reason` | `dropped.<reason>` |
//! | `telemetry_stage_errors_total` | counter | `stage`, `reason` | `error.<reason>` |
//! | `telemetry_stage_events_total` | counter | `stage`, `counter` | any other counter (`nats.connects`, `poison.skipped`, …) |
//! | `telemetry_stage_restarts_total` | counter | `stage` | restarts by the supervisor |
//! | `telemetry_stage_hangs_total` | counter | `stage` | of those, for a stale heartbeat |
//! | `telemetry_stage_up` | gauge | `stage` | 1 when running, else 0 |
//! | `telemetry_stage_heartbeat_age_seconds` | gauge | `stage` | age of the last heartbeat (absent if it never beat) |
//! | `telemetry_stage_start_time_seconds` | gauge | `stage` | start of the current process, Unix time (absent if never started) |
//! | `telemetry_wire_connected` | gauge | `stage`, `wire` | `gauge.connected.<wire>`: 1 while connected |
//! | `telemetry_sink_backlog` | gauge | `stage`, `sink` | `gauge.backlog.<sink>`: records held by a sink |
//! | `telemetry_aggd_keys` | gauge | `stage` | `gauge.keys_tracked`: keys in aggd's window table |
//! | `telemetry_stage_gauge` | gauge | `stage`, `gauge` | any other `gauge.<name>` |
//! | `telemetry_ring_depth` | gauge | `ring` | records queued |
//! | `telemetry_ring_capacity` | gauge | `ring` | slots |
//!
//! `received` and `forwarded` are exported (as 0 until registered) for the four pipeline stages,
//! so their series exist from the start; for other slots (the supervisor) only when present.
//! Label values are escaped (`\\`, `\"`, `\n`). Families without samples are left out.

use std::fmt::Write as _;

use pipeline_stats::counters::{classify, ordered_stages, CounterKind};
use pipeline_stats::lifecycle::StageLifecycle;
use records::names::{counter, gauge, stage};
use shm_ring::stats::{StageState, StatsSnapshot};

/// Escapes a label value: backslash, double quote and line feed.
pub fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// One metric family being written.
struct Family<'a> {
    name: &'a str,
    kind: &'a str,
    help: &'a str,
    samples: Vec<(Vec<(&'a str, String)>, String)>,
}

impl<'a> Family<'a> {
    fn new(name: &'a str, kind: &'a str, help: &'a str) -> Self {
        Family {
            name,
            kind,
            help,
            samples: Vec::new(),
        }
    }

    fn add(&mut self, labels: Vec<(&'a str, String)>, value: impl ToString) {
        self.samples.push((labels, value.to_string()));
    }

    fn write(&self, out: &mut String) {
        if self.samples.is_empty() {
            return;
        }
        // HELP text escapes backslash and line feed; ours has neither, but stay correct.
        let help = self.help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(out, "# HELP {} {help}", self.name);
        let _ = writeln!(out, "# TYPE {} {}", self.name, self.kind);
        for (labels, value) in &self.samples {
            out.push_str(self.name);
            if !labels.is_empty() {
                let l: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
                    .collect();
                let _ = write!(out, "{{{}}}", l.join(","));
            }
            let _ = writeln!(out, " {value}");
        }
    }
}

/// Seconds from milliseconds, as Prometheus wants them.
fn seconds(ms: u64) -> String {
    format!("{}", ms as f64 / 1000.0)
}

/// Renders a snapshot and the rings `(name, depth, capacity)` as Prometheus text.
pub fn render_prometheus<S: AsRef<str>>(snapshot: &StatsSnapshot, rings: &[(S, u64, u64)]) -> String {
    let mut received = Family::new(
        "telemetry_stage_received_total",
        "counter",
        "Messages or records a stage took in.",
    );
    let mut forwarded = Family::new(
        "telemetry_stage_forwarded_total",
        "counter",
        "Records a stage handed on (to the next ring, a window, or NATS).",
    );
    let mut dropped = Family::new(
        "telemetry_stage_dropped_total",
        "counter",
        "Messages a stage dropped, by reason.",
    );
    let mut errors = Family::new(
        "telemetry_stage_errors_total",
        "counter",
        "Messages a stage could not use, by reason.",
    );
    let mut events = Family::new(
        "telemetry_stage_events_total",
        "counter",
        "Other counters of a stage, by counter name.",
    );
    let mut restarts = Family::new(
        "telemetry_stage_restarts_total",
        "counter",
        "Restarts of a stage by the supervisor.",
    );
    let mut hangs = Family::new(
        "telemetry_stage_hangs_total",
        "counter",
        "Restarts of a stage because its heartbeat went stale.",
    );
    let mut up = Family::new("telemetry_stage_up", "gauge", "1 when the stage is running, else 0.");
    let mut heartbeat = Family::new(
        "telemetry_stage_heartbeat_age_seconds",
        "gauge",
        "Seconds since the stage's last heartbeat.",
    );
    let mut start = Family::new(
        "telemetry_stage_start_time_seconds",
        "gauge",
        "Start time of the stage's current process, seconds since the Unix epoch.",
    );
    let mut connected = Family::new(
        "telemetry_wire_connected",
        "gauge",
        "1 while the stage's connection on a wire (mqtt, nats, ...) is accepted by its server, else 0.",
    );
    let mut backlog = Family::new(
        "telemetry_sink_backlog",
        "gauge",
        "Records a sink holds: taken from the ring, not yet delivered.",
    );
    let mut keys = Family::new(
        "telemetry_aggd_keys",
        "gauge",
        "Keys (device, sensor) in aggd's window table.",
    );
    let mut other_gauges = Family::new(
        "telemetry_stage_gauge",
        "gauge",
        "Other values a stage reports, by name.",
    );
    let mut depth = Family::new("telemetry_ring_depth", "gauge", "Records queued in a ring.");
    let mut capacity = Family::new("telemetry_ring_capacity", "gauge", "Slots of a ring.");

    for s in ordered_stages(snapshot) {
        let name = s.name.as_str();
        let st = || vec![("stage", name.to_owned())];
        let pipeline_stage = stage::ALL.contains(&name);
        if pipeline_stage || s.counter(counter::RECEIVED).is_some() {
            received.add(st(), s.counter(counter::RECEIVED).unwrap_or(0));
        }
        if pipeline_stage || s.counter(counter::FORWARDED).is_some() {
            forwarded.add(st(), s.counter(counter::FORWARDED).unwrap_or(0));
        }
        for (c, v) in &s.counters {
            match classify(c) {
                CounterKind::Received | CounterKind::Forwarded => {}
                CounterKind::Dropped(reason) => dropped.add(vec![("stage", name.into()), ("reason", reason.into())], v),
                CounterKind::Error(reason) => errors.add(vec![("stage", name.into()), ("reason", reason.into())], v),
                CounterKind::Other => events.add(vec![("stage", name.into()), ("counter", c.clone())], v),
                CounterKind::Gauge(_) => {
                    if let Some(wire) = c.strip_prefix(gauge::CONNECTED_PREFIX) {
                        connected.add(vec![("stage", name.into()), ("wire", wire.into())], v);
                    } else if let Some(sink) = c.strip_prefix(gauge::BACKLOG_PREFIX) {
                        backlog.add(vec![("stage", name.into()), ("sink", sink.into())], v);
                    } else if c == gauge::KEYS_TRACKED {
                        keys.add(st(), v);
                    } else {
                        let g = c.strip_prefix(gauge::PREFIX).unwrap_or(c);
                        other_gauges.add(vec![("stage", name.into()), ("gauge", g.into())], v);
                    }
                }
            }
        }
        let life = StageLifecycle::of(s);
        restarts.add(st(), life.restarts);
        hangs.add(st(), life.hangs);
        up.add(st(), u8::from(s.state == Some(StageState::Running)));
        if let Some(age) = s.heartbeat_age_ms {
            heartbeat.add(st(), seconds(age));
        }
        if s.started_unix_ms != 0 {
            start.add(st(), seconds(s.started_unix_ms));
        }
    }
    for (name, d, c) in rings {
        depth.add(vec![("ring", name.as_ref().to_owned())], d);
        capacity.add(vec![("ring", name.as_ref().to_owned())], c);
    }

    let mut out = String::new();
    for f in [
        &received,
        &forwarded,
        &dropped,
        &errors,
        &events,
        &restarts,
        &hangs,
        &up,
        &heartbeat,
        &start,
        &connected,
        &backlog,
        &keys,
        &other_gauges,
        &depth,
        &capacity,
    ] {
        f.write(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline_stats::fixtures::{ingestd_sample, stage};

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape_label("line\nbreak"), "line\\nbreak");
        assert_eq!(escape_label("plain.name"), "plain.name");
    }

    #[test]
    fn the_exposition_format() {
        let mut ingestd = ingestd_sample();
        StageLifecycle {
            restarts: 3,
            hangs: 1,
            last_exit: pipeline_stats::lifecycle::ExitStatus::None,
            last_hang: None,
        }
        .write_to(&mut ingestd);
        ingestd.heartbeat_age_ms = Some(1500);
        let mut decoded = stage("decoded", &[("error.bad\"type", 4)]);
        decoded.state = Some(StageState::Exited);
        decoded.heartbeat_age_ms = None;
        decoded.started_unix_ms = 0;
        let supervisor = stage("supervisor", &[("poison.skipped", 0)]);
        let snap = StatsSnapshot {
            stages: vec![supervisor, decoded, ingestd],
            rings: vec![],
        };
        let text = render_prometheus(&snap, &[("raw", 5, 1024), ("readings", 0, 2048)]);
        let expected = "\
# HELP telemetry_stage_received_total Messages or records a stage took in.
# TYPE telemetry_stage_received_total counter
telemetry_stage_received_total{stage=\"ingestd\"} 10
telemetry_stage_received_total{stage=\"decoded\"} 0
# HELP telemetry_stage_forwarded_total Records a stage handed on (to the next ring, a window, or NATS).
# TYPE telemetry_stage_forwarded_total counter
telemetry_stage_forwarded_total{stage=\"ingestd\"} 8
telemetry_stage_forwarded_total{stage=\"decoded\"} 0
# HELP telemetry_stage_dropped_total Messages a stage dropped, by reason.
# TYPE telemetry_stage_dropped_total counter
telemetry_stage_dropped_total{stage=\"ingestd\",reason=\"ring_full\"} 2
# HELP telemetry_stage_errors_total Messages a stage could not use, by reason.
# TYPE telemetry_stage_errors_total counter
telemetry_stage_errors_total{stage=\"decoded\",reason=\"bad\\\"type\"} 4
# HELP telemetry_stage_events_total Other counters of a stage, by counter name.
# TYPE telemetry_stage_events_total counter
telemetry_stage_events_total{stage=\"ingestd\",counter=\"mqtt.connects\"} 1
telemetry_stage_events_total{stage=\"supervisor\",counter=\"poison.skipped\"} 0
# HELP telemetry_stage_restarts_total Restarts of a stage by the supervisor.
# TYPE telemetry_stage_restarts_total counter
telemetry_stage_restarts_total{stage=\"ingestd\"} 3
telemetry_stage_restarts_total{stage=\"decoded\"} 0
telemetry_stage_restarts_total{stage=\"supervisor\"} 0
# HELP telemetry_stage_hangs_total Restarts of a stage because its heartbeat went stale.
# TYPE telemetry_stage_hangs_total counter
telemetry_stage_hangs_total{stage=\"ingestd\"} 1
telemetry_stage_hangs_total{stage=\"decoded\"} 0
telemetry_stage_hangs_total{stage=\"supervisor\"} 0
# HELP telemetry_stage_up 1 when the stage is running, else 0.
# TYPE telemetry_stage_up gauge
telemetry_stage_up{stage=\"ingestd\"} 1
telemetry_stage_up{stage=\"decoded\"} 0
telemetry_stage_up{stage=\"supervisor\"} 1
# HELP telemetry_stage_heartbeat_age_seconds Seconds since the stage's last heartbeat.
# TYPE telemetry_stage_heartbeat_age_seconds gauge
telemetry_stage_heartbeat_age_seconds{stage=\"ingestd\"} 1.5
telemetry_stage_heartbeat_age_seconds{stage=\"supervisor\"} 0.005
# HELP telemetry_stage_start_time_seconds Start time of the stage's current process, seconds since the Unix epoch.
# TYPE telemetry_stage_start_time_seconds gauge
telemetry_stage_start_time_seconds{stage=\"ingestd\"} 1700000000
telemetry_stage_start_time_seconds{stage=\"supervisor\"} 1700000000
# HELP telemetry_ring_depth Records queued in a ring.
# TYPE telemetry_ring_depth gauge
telemetry_ring_depth{ring=\"raw\"} 5
telemetry_ring_depth{ring=\"readings\"} 0
# HELP telemetry_ring_capacity Slots of a ring.
# TYPE telemetry_ring_capacity gauge
telemetry_ring_capacity{ring=\"raw\"} 1024
telemetry_ring_capacity{ring=\"readings\"} 2048
";
        assert_eq!(text, expected);
    }

    #[test]
    fn gauges_are_families_of_their_own_and_not_counters() {
        let snap = StatsSnapshot {
            stages: vec![
                stage("ingestd", &[("gauge.connected.mqtt", 1)]),
                stage("aggd", &[("gauge.keys_tracked", 12)]),
                stage(
                    "emitd",
                    &[("gauge.connected.nats", 0), ("gauge.backlog.nats", 5), ("gauge.odd", 2)],
                ),
            ],
            rings: vec![],
        };
        let text = render_prometheus(&snap, &[] as &[(&str, u64, u64)]);
        for line in [
            "# TYPE telemetry_wire_connected gauge",
            "telemetry_wire_connected{stage=\"ingestd\",wire=\"mqtt\"} 1",
            "telemetry_wire_connected{stage=\"emitd\",wire=\"nats\"} 0",
            "telemetry_sink_backlog{stage=\"emitd\",sink=\"nats\"} 5",
            "telemetry_aggd_keys{stage=\"aggd\"} 12",
            "telemetry_stage_gauge{stage=\"emitd\",gauge=\"odd\"} 2",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        assert!(!text.contains("counter=\"gauge."), "{text}");
    }

    #[test]
    fn owned_ring_names_are_accepted() {
        let rings: Vec<(String, u64, u64)> = vec![("aggregates".into(), 1, 8)];
        let snap = StatsSnapshot {
            stages: vec![],
            rings: vec![],
        };
        let text = render_prometheus(&snap, &rings);
        assert!(
            text.ends_with("telemetry_ring_capacity{ring=\"aggregates\"} 8\n"),
            "{text}"
        );
    }

    #[test]
    fn every_sample_line_is_well_formed() {
        let snap = StatsSnapshot {
            stages: vec![stage("emitd", &[("dropped.x\\y\nz", 1)])],
            rings: vec![],
        };
        let text = render_prometheus(&snap, &[] as &[(&str, u64, u64)]);
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (series, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
            let name_end = series.find('{').unwrap_or(series.len());
            assert!(series[..name_end]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_'));
        }
        assert!(text.contains(r#"reason="x\\y\nz""#), "{text}");
        // Every family appears once, HELP before TYPE before its samples.
        let types: Vec<&str> = text.lines().filter(|l| l.starts_with("# TYPE")).collect();
        let mut unique = types.clone();
        unique.dedup();
        assert_eq!(types, unique);
    }
}
