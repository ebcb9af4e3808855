//! `telemetryctl stats --json`: the same data as the table, as one JSON object per refresh (one
//! line each; `--watch --json` is newline-delimited JSON). The schema below is stable: fields
//! are only ever added, and a change of meaning bumps `schema`. Object keys are printed in
//! alphabetical order.
//!
//! ```text
//! {
//!   "schema": 1,
//!   "prefix": "telemetry",                     // the pipeline's segment prefix
//!   "page": "/dev/shm/telemetry/stats",
//!   "time_unix_ms": 1764151199000,             // wall clock of this sample
//!   "rates_interval_s": null,                  // seconds the rates span; null: no rates
//!                                              //   (one-shot, or the first --watch refresh)
//!   "settled": true,                           // counters unchanged while depths were read
//!   "stages": [{                               // ingestd, decoded, aggd, emitd, supervisor, others
//!     "name": "ingestd",
//!     "state": "running",                      // idle|starting|running|stopping|exited|backoff|unknown
//!     "pid": 1234,                             // 0: never started
//!     "started_unix_ms": 1764151100000,        // 0: never started
//!     "uptime_ms": 99000,                      // null unless starting, running or stopping
//!     "heartbeat_age_ms": 120,                 // null: never beat
//!     "restarts": 2, "hangs": 1,
//!     "last_hang": "heartbeat",                // why it was last restarted as hung: null (never),
//!                                              //   "heartbeat", "start_timeout", "no_progress"
//!     "last_exit": null,                       // or {"code": 1} or {"signal": 9}
//!     "consistent": true,                      // false: died inside a counter update
//!     "received": 1000, "forwarded": 990,      // 0 when the counter is not registered
//!     "dropped": {"ring_full": 10},            // dropped.<reason> counters, by reason
//!     "errors": {"malformed": 3},              // error.<reason> counters, by reason
//!     "counters": {"received": 1000, "...": 0},// every counter by its full name
//!     "rates": null                            // or {"<counter>": per second, ...}
//!   }],
//!   "rings": [{
//!     "name": "raw",
//!     "depth": 5,                              // null: unknown
//!     "capacity": 65536,
//!     "source": "ring",                        // "ring" (live positions), "gauge" (the depth
//!                                              //   its consumer last wrote), null (unknown)
//!     "gauge_depth": 4,                        // null: the page has no gauge for it
//!     "problem": null                          // why the ring itself could not be read
//!   }],
//!   "balance": {
//!     "ok": true,
//!     "summary": "BALANCE: ok",                // or "BALANCE: off by N at decoded; ..."
//!     "checks": [{
//!       "kind": "stage",                       // "stage" or "link"
//!       "at": "ingestd",                       // a stage, or a link such as "ingestd->decoded"
//!       "left": {"name": "received", "value": 1000},
//!       "right": [{"name": "forwarded", "value": 990}, {"name": "dropped.*", "value": 10}],
//!       "off_by": 0,                           // left - sum(right)
//!       "ok": true,
//!       "note": null,
//!       "text": "received 1000 = forwarded 990 + dropped.* 10 + error.* 0"
//!     }],
//!     "unchecked": [{"at": "aggd->emitd", "reason": "..."}]
//!   },
//!   "note": "counters and ring depths are read at slightly different moments, ..."
//! }
//! ```

use pipeline_stats::counters::{classify, ordered_stages, value, CounterKind};
use pipeline_stats::lifecycle::{ExitStatus, StageLifecycle};
use records::names::counter;
use serde_json::{json, Map, Value};

use crate::balance::Balance;
use crate::format;
use crate::rates::Rates;
use crate::sample::{page_path, Sample};
use crate::table::{uptime_ms, IN_FLIGHT_NOTE};

/// The schema version in every document.
pub const SCHEMA: u64 = 1;

fn last_exit(e: ExitStatus) -> Value {
    match e {
        ExitStatus::None => Value::Null,
        ExitStatus::Code(c) => json!({ "code": c }),
        ExitStatus::Signal(s) => json!({ "signal": s }),
    }
}

/// Builds the JSON document of one sample.
pub fn document(sample: &Sample, rates: Option<&Rates>, balance: &Balance) -> Value {
    let stages: Vec<Value> = ordered_stages(&sample.stats)
        .into_iter()
        .map(|s| {
            let (mut dropped, mut errors, mut gauges, mut counters) = (Map::new(), Map::new(), Map::new(), Map::new());
            for (name, v) in &s.counters {
                match classify(name) {
                    CounterKind::Dropped(reason) => {
                        dropped.insert(reason.to_owned(), json!(v));
                    }
                    CounterKind::Error(reason) => {
                        errors.insert(reason.to_owned(), json!(v));
                    }
                    CounterKind::Gauge(gauge) => {
                        gauges.insert(gauge.to_owned(), json!(v));
                        continue;
                    }
                    _ => {}
                }
                counters.insert(name.clone(), json!(v));
            }
            let stage_rates = rates.map(|r| {
                s.counters
                    .iter()
                    .filter_map(|(name, _)| r.get(&s.name, name).map(|v| (name.clone(), json!(v))))
                    .collect::<Map<String, Value>>()
            });
            let life = StageLifecycle::of(s);
            json!({
                "name": s.name,
                "state": format::state(s.state),
                "pid": s.pid,
                "started_unix_ms": s.started_unix_ms,
                "uptime_ms": uptime_ms(s.state, s.started_unix_ms, sample.unix_ms),
                "heartbeat_age_ms": s.heartbeat_age_ms,
                "restarts": life.restarts,
                "hangs": life.hangs,
                "last_hang": life.last_hang.map(|h| h.as_str()),
                "last_exit": last_exit(life.last_exit),
                "consistent": s.consistent,
                "received": value(s, counter::RECEIVED),
                "forwarded": value(s, counter::FORWARDED),
                "dropped": dropped,
                "errors": errors,
                "gauges": gauges,
                "counters": counters,
                "rates": stage_rates,
            })
        })
        .collect();
    let rings: Vec<Value> = sample
        .rings
        .iter()
        .map(|r| {
            let source = match (r.depth, r.live) {
                (None, _) => Value::Null,
                (Some(_), true) => json!("ring"),
                (Some(_), false) => json!("gauge"),
            };
            json!({
                "name": r.name,
                "depth": r.depth,
                "capacity": r.capacity,
                "source": source,
                "gauge_depth": r.gauge_depth,
                "problem": r.problem,
            })
        })
        .collect();
    let checks: Vec<Value> = balance
        .checks
        .iter()
        .map(|c| {
            json!({
                "kind": c.kind.as_str(),
                "at": c.at,
                "left": { "name": c.left_name, "value": c.left },
                "right": c.right.iter().map(|t| json!({ "name": t.name, "value": t.value })).collect::<Vec<_>>(),
                "off_by": c.off_by,
                "ok": c.ok(),
                "note": c.note,
                "text": c.describe(),
            })
        })
        .collect();
    let unchecked: Vec<Value> = balance
        .unchecked
        .iter()
        .map(|u| json!({ "at": u.at, "reason": u.reason }))
        .collect();
    json!({
        "schema": SCHEMA,
        "prefix": sample.prefix,
        "page": page_path(&sample.prefix),
        "time_unix_ms": sample.unix_ms,
        "rates_interval_s": rates.map(|r| r.seconds),
        "settled": sample.settled,
        "stages": stages,
        "rings": rings,
        "balance": {
            "ok": balance.ok(),
            "summary": balance.summary(),
            "checks": checks,
            "unchecked": unchecked,
        },
        "note": IN_FLIGHT_NOTE.trim_start_matches("note: "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance;
    use crate::sample::RingView;
    use pipeline_stats::fixtures::{ingestd_sample, stage};
    use shm_ring::stats::StatsSnapshot;
    use std::time::Instant;

    fn sample() -> Sample {
        let mut ingestd = ingestd_sample();
        StageLifecycle {
            last_exit: ExitStatus::Signal(9),
            hangs: 1,
            last_hang: Some(pipeline_stats::lifecycle::HangReason::StartTimeout),
            ..StageLifecycle::of(&ingestd)
        }
        .write_to(&mut ingestd);
        Sample {
            prefix: "p".into(),
            unix_ms: 1_700_000_001_000,
            at: Instant::now(),
            stats: StatsSnapshot {
                stages: vec![ingestd, stage("decoded", &[("received", 8), ("error.bad_type", 1)])],
                rings: vec![],
            },
            rings: vec![RingView {
                name: "raw".into(),
                depth: Some(0),
                capacity: 16,
                live: false,
                gauge_depth: Some(0),
                problem: Some("ring segment missing".into()),
            }],
            settled: false,
        }
    }

    #[test]
    fn the_document_follows_the_schema() {
        let s = sample();
        let b = balance::compute(&s.stats, &s.ring_depths());
        let doc = document(&s, None, &b);
        assert_eq!(doc["schema"], 1);
        assert_eq!(doc["page"], "/dev/shm/p/stats");
        assert_eq!(doc["rates_interval_s"], Value::Null);
        assert_eq!(doc["settled"], false);
        let ingestd = &doc["stages"][0];
        assert_eq!(ingestd["name"], "ingestd");
        assert_eq!(ingestd["state"], "running");
        assert_eq!(ingestd["uptime_ms"], 1000);
        assert_eq!(ingestd["received"], 10);
        assert_eq!(ingestd["dropped"]["ring_full"], 2);
        assert_eq!(ingestd["counters"]["mqtt.connects"], 1);
        assert_eq!(ingestd["last_exit"]["signal"], 9);
        assert_eq!(ingestd["rates"], Value::Null);
        let decoded = &doc["stages"][1];
        assert_eq!(decoded["forwarded"], 0);
        assert_eq!(decoded["errors"]["bad_type"], 1);
        assert_eq!(decoded["last_exit"], Value::Null);
        assert_eq!(decoded["last_hang"], Value::Null);
        assert_eq!(ingestd["last_hang"], "start_timeout");
        assert_eq!(doc["rings"][0]["source"], "gauge");
        assert_eq!(doc["rings"][0]["problem"], "ring segment missing");
        assert_eq!(doc["balance"]["ok"], false);
        assert_eq!(doc["balance"]["summary"], "BALANCE: off by 7 at decoded");
        let dec = doc["balance"]["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["at"] == "decoded")
            .unwrap();
        assert_eq!(dec["kind"], "stage");
        assert_eq!(dec["off_by"], 7);
        assert_eq!(dec["left"]["value"], 8);
        assert_eq!(dec["right"][0]["name"], "forwarded");
        // It survives a round trip through text.
        let text = doc.to_string();
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), doc);
    }

    #[test]
    fn rates_appear_per_counter() {
        let s = sample();
        let mut later = s.stats.clone();
        later.stages[0].counters[0].1 = 20;
        let r = crate::rates::compute(&s.stats, &later, std::time::Duration::from_secs(1)).unwrap();
        let b = balance::compute(&later, &s.ring_depths());
        let doc = document(&Sample { stats: later, ..s }, Some(&r), &b);
        assert_eq!(doc["rates_interval_s"], 1.0);
        assert_eq!(doc["stages"][0]["rates"]["received"], 10.0);
        assert_eq!(doc["stages"][0]["rates"]["forwarded"], 0.0);
    }
}
