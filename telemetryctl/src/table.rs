//! The text table of `telemetryctl stats`: stages (state, pid, uptime, heartbeat, restarts and
//! hangs with the last hang's reason, last exit, received and forwarded; `-` when the counter is not registered), every counter (with its rate per second in
//! `--watch`), ring depths against capacity, and the conservation balance.

use pipeline_stats::counters::{ordered_stages, sorted_counters};
use pipeline_stats::lifecycle::StageLifecycle;
use records::names::counter;
use shm_ring::stats::StageState;

use crate::balance::Balance;
use crate::format::{self, columns, Align};
use crate::rates::Rates;
use crate::sample::{page_path, Sample};

/// The sentence under the balance that says how exact it is.
pub const IN_FLIGHT_NOTE: &str = "note: counters and ring depths are read at slightly different moments, so a running \
     pipeline may be off by the records in flight; a stopped or idle pipeline balances exactly.";

/// Whether the sample's counters moved while it was read, in words.
pub fn settled_text(settled: bool) -> &'static str {
    if settled {
        "The counters did not change while this was read."
    } else {
        "The counters were changing while this was read (records in flight)."
    }
}

/// Uptime of a stage's current process: only while it is starting, running or stopping.
pub fn uptime_ms(state: Option<StageState>, started_unix_ms: u64, now_unix_ms: u64) -> Option<u64> {
    let live = matches!(
        state,
        Some(StageState::Starting | StageState::Running | StageState::Stopping)
    );
    (live && started_unix_ms != 0).then(|| now_unix_ms.saturating_sub(started_unix_ms))
}

/// Renders a sample as the `stats` table.
pub fn render(sample: &Sample, rates: Option<&Rates>, balance: &Balance) -> String {
    let mut out = format!(
        "pipeline {}  ({})  {}\n",
        sample.prefix,
        page_path(&sample.prefix),
        format::utc(sample.unix_ms)
    );
    match rates {
        Some(r) => out.push_str(&format!("rates per second over the last {:.1}s\n", r.seconds)),
        None => out.push_str("totals since the page was created (rates: use --watch)\n"),
    }
    out.push('\n');

    let stages = ordered_stages(&sample.stats);
    let mut rows = vec![[
        "STAGE",
        "STATE",
        "PID",
        "UPTIME",
        "HEARTBEAT",
        "RESTARTS",
        "HANGS",
        "LAST EXIT",
        "RECEIVED",
        "FORWARDED",
    ]
    .map(String::from)
    .to_vec()];
    let mut inconsistent = Vec::new();
    for s in &stages {
        let mut state = format::state(s.state).to_owned();
        if !s.consistent {
            state.push('*');
            inconsistent.push(s.name.as_str());
        }
        let life = StageLifecycle::of(s);
        rows.push(vec![
            s.name.clone(),
            state,
            if s.pid == 0 { "-".into() } else { s.pid.to_string() },
            uptime_ms(s.state, s.started_unix_ms, sample.unix_ms).map_or("-".into(), format::duration_ms),
            s.heartbeat_age_ms.map_or("never".into(), format::duration_ms),
            life.restarts.to_string(),
            match life.last_hang {
                Some(h) if life.hangs > 0 => format!("{} ({})", life.hangs, h.as_str()),
                _ => life.hangs.to_string(),
            },
            format::exit_status(life.last_exit),
            s.counter(counter::RECEIVED).map_or("-".into(), |v| v.to_string()),
            s.counter(counter::FORWARDED).map_or("-".into(), |v| v.to_string()),
        ]);
    }
    use Align::{Left as L, Right as R};
    out.push_str(&columns(&rows, &[L, L, R, R, R, R, R, L, R, R]));
    for name in inconsistent {
        out.push_str(&format!(
            "* {name}: died inside a counter update; its counters may be from different batches until it restarts\n"
        ));
    }

    out.push_str("\nCOUNTERS\n");
    let mut rows = vec![vec!["STAGE".to_owned(), "COUNTER".to_owned(), "TOTAL".to_owned()]];
    if rates.is_some() {
        rows[0].push("RATE".into());
    }
    for s in &stages {
        for (name, v) in sorted_counters(s) {
            let mut row = vec![s.name.clone(), name.to_owned(), v.to_string()];
            if let Some(r) = rates {
                row.push(r.get(&s.name, name).map_or("-".into(), format::rate));
            }
            rows.push(row);
        }
    }
    if rows.len() == 1 {
        out.push_str("(no counters registered yet)\n");
    } else {
        out.push_str(&columns(&rows, &[L, L, R, R]));
    }

    out.push_str("\nRINGS\n");
    let mut rows = vec![["RING", "DEPTH", "CAPACITY", "FILL", "SOURCE"]
        .map(String::from)
        .to_vec()];
    for r in &sample.rings {
        rows.push(vec![
            r.name.clone(),
            r.depth.map_or("?".into(), |d| d.to_string()),
            r.capacity.to_string(),
            match (r.depth, r.capacity) {
                (Some(d), c) if c > 0 => format!("{:.1}%", d as f64 * 100.0 / c as f64),
                _ => "-".into(),
            },
            match &r.problem {
                None => "ring".into(),
                Some(p) if r.depth.is_some() => format!("stats page gauge ({p})"),
                Some(p) => format!("unknown ({p})"),
            },
        ]);
    }
    if rows.len() == 1 {
        out.push_str("(no rings)\n");
    } else {
        out.push_str(&columns(&rows, &[L, R, R, R, L]));
    }

    out.push('\n');
    out.push_str(&balance.summary());
    out.push('\n');
    let mut rows = Vec::new();
    for c in &balance.checks {
        rows.push(vec![
            if c.ok() { "  ok".into() } else { "  OFF".into() },
            c.at.clone(),
            c.describe(),
        ]);
    }
    for u in &balance.unchecked {
        rows.push(vec!["  --".into(), u.at.clone(), format!("not checked: {}", u.reason)]);
    }
    out.push_str(&columns(&rows, &[L, L, L]));
    out.push_str(IN_FLIGHT_NOTE);
    out.push(' ');
    out.push_str(settled_text(sample.settled));
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance;
    use crate::sample::RingView;
    use pipeline_stats::fixtures::stage;
    use pipeline_stats::lifecycle::ExitStatus;
    use shm_ring::stats::StatsSnapshot;
    use std::time::Instant;

    fn sample() -> Sample {
        let mut decoded = stage("decoded", &[("received", 10), ("forwarded", 7), ("error.malformed", 2)]);
        decoded.state = Some(StageState::Exited);
        StageLifecycle {
            restarts: 3,
            hangs: 1,
            last_exit: ExitStatus::Signal(9),
            last_hang: Some(pipeline_stats::lifecycle::HangReason::Heartbeat),
        }
        .write_to(&mut decoded);
        decoded.consistent = false;
        Sample {
            prefix: "plant".into(),
            unix_ms: 1_700_000_060_000,
            at: Instant::now(),
            stats: StatsSnapshot {
                stages: vec![
                    decoded,
                    stage(
                        "ingestd",
                        &[("received", 12), ("forwarded", 12), ("dropped.ring_full", 0)],
                    ),
                ],
                rings: vec![],
            },
            rings: vec![
                RingView {
                    name: "raw".into(),
                    depth: Some(2),
                    capacity: 8,
                    live: true,
                    gauge_depth: Some(1),
                    problem: None,
                },
                RingView {
                    name: "readings".into(),
                    depth: None,
                    capacity: 0,
                    live: false,
                    gauge_depth: None,
                    problem: Some("ring segment missing".into()),
                },
            ],
            settled: true,
        }
    }

    #[test]
    fn the_table_shows_stages_counters_rings_and_balance() {
        let s = sample();
        let b = balance::compute(&s.stats, &s.ring_depths());
        let text = render(&s, None, &b);
        assert!(
            text.starts_with("pipeline plant  (/dev/shm/plant/stats)  2023-11-14 22:14:20 UTC\n"),
            "{text}"
        );
        let lines: Vec<&str> = text.lines().collect();
        let ingestd = lines.iter().find(|l| l.starts_with("ingestd ")).unwrap();
        assert!(ingestd.contains("running"), "{ingestd}");
        assert!(ingestd.contains("1m00s"), "uptime: {ingestd}");
        let decoded = lines.iter().find(|l| l.starts_with("decoded ")).unwrap();
        assert!(decoded.contains("exited*"), "{decoded}");
        assert!(decoded.contains("signal 9 (SIGKILL)"), "{decoded}");
        assert!(decoded.contains("1 (heartbeat)"), "{decoded}");
        assert!(text.contains("* decoded: died inside a counter update"));
        let malformed = lines.iter().find(|l| l.contains("error.malformed")).unwrap();
        assert!(
            malformed.starts_with("decoded ") && malformed.ends_with(" 2"),
            "{malformed}"
        );
        assert!(text.contains("raw"), "{text}");
        assert!(text.contains("25.0%"), "{text}");
        assert!(text.contains("unknown (ring segment missing)"), "{text}");
        assert!(text.contains("BALANCE: off by 1 at decoded"), "{text}");
        assert!(text.contains("not checked"), "{text}");
        assert!(text.contains(IN_FLIGHT_NOTE));
        assert!(!text.contains("RATE"));
    }

    #[test]
    fn rates_add_a_column() {
        let s = sample();
        let mut later = s.stats.clone();
        later.stages[1].counters[0].1 = 22;
        let r = crate::rates::compute(&s.stats, &later, std::time::Duration::from_secs(2)).unwrap();
        let b = balance::compute(&later, &s.ring_depths());
        let text = render(&Sample { stats: later, ..s }, Some(&r), &b);
        assert!(text.contains("rates per second over the last 2.0s"));
        let line = text
            .lines()
            .find(|l| l.starts_with("ingestd") && l.contains(" received "))
            .unwrap();
        assert!(line.ends_with("5.0/s"), "{line}");
    }

    #[test]
    fn uptime_only_while_alive() {
        assert_eq!(uptime_ms(Some(StageState::Running), 1000, 61_000), Some(60_000));
        assert_eq!(uptime_ms(Some(StageState::Exited), 1000, 61_000), None);
        assert_eq!(uptime_ms(Some(StageState::Running), 0, 61_000), None);
    }
}
