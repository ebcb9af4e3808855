//! Chaos: a random stage SIGKILLed every second while QoS 1 readings stream in through a
//! persistent MQTT session. Every reading the broker acked is aggregated exactly once, nothing is
//! dropped for a full ring, and every stage ends running.
//!
//! The rate is what the debug build sustains here with the kills (`CHAOS_RATE`, readings per
//! second, default 10,000); `CHAOS_SECONDS` (default 30), `CHAOS_DEVICES` (× 10 sensors each,
//! default 100) and `CHAOS_SEED` (default: the clock) set the rest. `scripts/chaos.sh` runs it against the release build at a higher rate, several
//! times in a row. The seed is printed, so a failing schedule can be replayed.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use pipeline_tests::{alive, expectations, Collector, Pipeline, PATIENCE};
use records::names::{counter, drop_reason, stage};
use shm_ring::stats::StageState;
use test_brokers::{binary, wait_for, Mosquitto, Nats, Process};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// xorshift64: a schedule that a seed replays.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn a_random_stage_killed_every_second_loses_and_repeats_nothing() {
    let rate = env_or("CHAOS_RATE", 10_000);
    let seconds = env_or("CHAOS_SECONDS", 30);
    let devices = env_or("CHAOS_DEVICES", 100);
    let mut seed = env_or(
        "CHAOS_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    ) | 1;
    eprintln!("chaos: rate {rate}/s for {seconds} s over {devices} x 10 keys, CHAOS_SEED={seed}");

    let mqtt = Mosquitto::start();
    let nats = Nats::start();
    // The window spans the whole run, so the last aggregate of each key counts every reading.
    let p = Pipeline::configure(
        "chaos",
        &mqtt,
        &nats,
        "[aggd]\nwindow_ms = 240000\nemit_every_ms = 4000\n\
         [supervisor]\nrestart_intensity = 1000\nrestart_period_s = 60\n",
    );
    let collector = Collector::start(&nats.url(), &p.subjects());
    let _supervisor = p.supervise(&[]);
    p.wait_running();

    let expect = p.file("expect.jsonl");
    let mut load = Process::spawn(
        "loadgen",
        Command::new(binary("loadgen")).args([
            "--broker",
            &mqtt.url(),
            "--devices",
            &devices.to_string(),
            "--sensors",
            "10",
            "--rate",
            &rate.to_string(),
            "--duration-s",
            &seconds.to_string(),
            "--qos",
            "1",
            "--expect",
            expect.to_str().unwrap(),
        ]),
    );
    let start = Instant::now();
    let mut kills: BTreeMap<&str, u32> = BTreeMap::new();
    for second in 1..=seconds {
        let due = start + Duration::from_secs(second);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let victim = stage::ALL[(next(&mut seed) % 4) as usize];
        let pid = p.stats().stage(victim).map_or(0, |s| s.pid);
        if pid != 0 && alive(pid) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::SIGKILL);
            *kills.entry(victim).or_default() += 1;
        }
    }
    assert_eq!(
        load.wait_exit(PATIENCE),
        Some(0),
        "loadgen: every publish acked by the broker"
    );
    eprintln!("chaos: kills {kills:?}");

    // Every reading the broker acked reaches the windows: wait until each key's newest aggregate
    // has at least the expected count, then demand exactly that count.
    let expected = expectations(&expect);
    let total: f64 = expected.values().map(|v| v["count"].as_f64().unwrap()).sum();
    wait_for("aggregates covering every reading", PATIENCE, || {
        let fullest = collector.fullest();
        expected
            .iter()
            .all(|(k, v)| {
                fullest
                    .get(k)
                    .is_some_and(|a| a.num("count") >= v["count"].as_f64().unwrap())
            })
            .then_some(())
    });
    // One more emission, so a late duplicate would show.
    std::thread::sleep(Duration::from_secs(5));
    let fullest = collector.fullest();
    let mut wrong = Vec::new();
    for (k, v) in &expected {
        let a = &fullest[k];
        let want = (
            v["count"].as_f64().unwrap(),
            v["min"].as_f64().unwrap(),
            v["max"].as_f64().unwrap(),
        );
        let got = (a.num("count"), a.num("min"), a.num("max"));
        if got != want {
            wrong.push(format!("{k:?}: got {got:?}, want {want:?}"));
        }
    }
    let stats = p.stats();
    assert!(
        wrong.is_empty(),
        "{} of {} keys are off (seed {seed}, kills {kills:?}); first: {:?}; ingestd: {:?}",
        wrong.len(),
        expected.len(),
        &wrong[..wrong.len().min(5)],
        stats.stage(stage::INGESTD).map(|s| &s.counters)
    );
    for s in &stats.stages {
        for (name, value) in &s.counters {
            if name.starts_with("dropped.") && name.as_str() != drop_reason::DUPLICATE {
                assert_eq!(*value, 0, "{}.{name} (seed {seed})", s.name);
            }
        }
    }
    let forwarded = stats
        .stage(stage::INGESTD)
        .unwrap()
        .counter(counter::FORWARDED)
        .unwrap();
    assert_eq!(forwarded as f64, total, "ingestd forwarded each reading once");
    wait_for("every stage running", PATIENCE, || {
        let s = p.stats();
        stage::ALL
            .iter()
            .all(|n| {
                s.stage(n)
                    .is_some_and(|st| st.state == Some(StageState::Running) && alive(st.pid))
            })
            .then_some(())
    });
}
