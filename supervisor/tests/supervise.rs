//! The supervisor with real stage processes between a real mosquitto and a real nats-server:
//! one_for_one restarts under load with nothing lost, death with the supervisor and re-adoption
//! by the next one, restart intensity, hang detection, operator restarts, poison records, a
//! clean stop, systemd's notify protocol and the metrics endpoint.

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::Duration;

use pipeline_stats::lifecycle::{HangReason, StageLifecycle};
use pipeline_tests::{alive, expectations, loadgen, times, Collector, Expected, Pipeline, PATIENCE};
use records::names::{counter, drop_reason, segment, stage, supervisor_counter};
use shm_ring::stats::StageState;
use test_brokers::{binary, free_port, wait_for, Mosquitto, Nats, Process, TempDir};

/// ingestd keeps a persistent session, so that the broker holds messages for it while it
/// restarts: then "nothing lost" covers the MQTT side too.
const DURABLE: &str =
    "[ingestd]\nclean_start = false\nsession_expiry_s = 300\n[supervisor]\nrestart_intensity = 50\nrestart_period_s = 60\n";

/// A stage's restarts, hangs and last exit, as the supervisor wrote them.
fn life(p: &Pipeline, stage: &str) -> StageLifecycle {
    StageLifecycle::of(p.stats().stage(stage).unwrap())
}

fn kill(pid: u32, signal: i32) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
}

/// Waits for aggregates that cover every expected reading, and checks them exactly.
fn assert_all_aggregated(p: &Pipeline, collector: &Collector, expected: &Expected) {
    collector.wait_covering("aggregates covering every reading", expected);
    let dropped: u64 = p
        .stats()
        .stages
        .iter()
        .flat_map(|s| s.counters.iter())
        .filter(|(n, _)| n.starts_with("dropped.") && n.as_str() != drop_reason::DUPLICATE)
        .map(|(_, v)| v)
        .sum();
    assert_eq!(dropped, 0, "nothing dropped: {:?}", p.stats().stages);
    let fullest = collector.fullest();
    for (k, v) in expected {
        let a = &fullest[k];
        assert_eq!(a.num("count"), v["count"].as_f64().unwrap(), "{k:?}");
        assert_eq!(
            (a.num("min"), a.num("max")),
            (v["min"].as_f64().unwrap(), v["max"].as_f64().unwrap()),
            "{k:?}"
        );
    }
}

#[test]
fn each_stage_killed_under_load_restarts_alone_and_nothing_is_lost() {
    let mqtt = Mosquitto::start();
    let nats = Nats::start();
    let p = Pipeline::configure("one-for-one", &mqtt, &nats, DURABLE);
    let collector = Collector::start(&nats.url(), &p.subjects());
    let _supervisor = p.supervise(&[]);
    let mut pids = p.wait_running();

    let expect = p.file("expect.jsonl");
    let mut load = Process::spawn(
        "loadgen",
        Command::new(binary("loadgen")).args([
            "--broker",
            &mqtt.url(),
            "--devices",
            "4",
            "--sensors",
            "5",
            "--count",
            "20000",
            "--rate",
            "2000",
            "--qos",
            "1",
            "--expect",
            expect.to_str().unwrap(),
        ]),
    );
    for victim in [stage::DECODED, stage::AGGD, stage::EMITD, stage::INGESTD] {
        wait_for("messages flowing", PATIENCE, || {
            (p.counter(stage::INGESTD, counter::RECEIVED) > 0).then_some(())
        });
        kill(pids[victim], 9);
        let after = p.wait_replaced(&pids, victim);
        for (name, pid) in &pids {
            if name != victim {
                assert_eq!(after[name], *pid, "{name} kept its pid when {victim} was killed");
            }
        }
        pids = after;
    }
    assert_eq!(load.wait_exit(PATIENCE), Some(0));
    assert_all_aggregated(&p, &collector, &expectations(&expect));
    let restarts: u64 = stage::ALL.iter().map(|s| life(&p, s).restarts).sum();
    assert_eq!(restarts, 4);
}

#[test]
fn stages_die_with_the_supervisor_and_the_next_one_readopts_the_rings() {
    let mqtt = Mosquitto::start();
    let nats = Nats::start();
    let p = Pipeline::configure(
        "readopt",
        &mqtt,
        &nats,
        &format!("{DURABLE}[supervisor]\nkeep_segments = true\n"),
    );
    let collector = Collector::start(&nats.url(), &p.subjects());
    let mut first = p.supervise(&[]);
    let pids = p.wait_running();

    let a = p.file("a.jsonl");
    loadgen(
        &mqtt,
        &format!("--devices 2 --sensors 3 --count 600 --qos 1 --expect {}", a.display()),
    );
    first.kill();
    wait_for("every stage to die with the supervisor", PATIENCE, || {
        pids.values().all(|pid| !alive(*pid)).then_some(())
    });

    // Published while nothing runs: the broker holds them for ingestd's persistent session.
    loadgen(&mqtt, "--devices 2 --sensors 3 --count 600 --qos 1 --client second");
    let _second = p.supervise(&[]);
    let again = p.wait_running();
    assert!(again.iter().all(|(s, pid)| *pid != pids[s]));
    collector.wait_covering("aggregates covering both batches", &times(&expectations(&a), 2.0));
    let received = p.counter(stage::INGESTD, counter::RECEIVED) - p.counter(stage::INGESTD, drop_reason::DUPLICATE);
    assert_eq!(received, 1200, "counters carried over the supervisor's restart");
}

#[test]
fn exceeding_the_restart_intensity_stops_everything_and_exits_non_zero() {
    let mqtt = Mosquitto::start();
    let nats = Nats::start();
    let bin = TempDir::new("failing-bin");
    for s in [stage::INGESTD, stage::DECODED, stage::EMITD] {
        std::os::unix::fs::symlink(binary(s), bin.path().join(s)).unwrap();
    }
    let failing = bin.path().join(stage::AGGD);
    std::fs::write(&failing, "#!/bin/sh\nexit 1\n").unwrap();
    std::fs::set_permissions(&failing, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let p = Pipeline::configure(
        "intensity",
        &mqtt,
        &nats,
        &format!(
            "[supervisor]\nrestart_intensity = 2\nrestart_period_s = 60\nbin_dir = \"{}\"\n",
            bin.path().display()
        ),
    );
    let mut supervisor = p.supervise(&[]);
    assert_eq!(supervisor.wait_exit(PATIENCE), Some(3));
    let emitd = p.stats().stage(stage::EMITD).unwrap().pid;
    assert!(emitd != 0 && !alive(emitd), "the running stages were stopped too");
    assert_eq!(life(&p, stage::AGGD).restarts, 2);
}

#[test]
fn a_stopped_stage_is_detected_as_hung_and_restarted() {
    let mqtt = Mosquitto::start();
    let nats = Nats::start();
    let p = Pipeline::configure("hang", &mqtt, &nats, "[supervisor]\nhang_timeout_ms = 1000\n");
    let _supervisor = p.supervise(&[]);
    let pids = p.wait_running();
    kill(pids[stage::DECODED], 19); // SIGSTOP
    let after = p.wait_replaced(&pids, stage::DECODED);
    assert_eq!(after[stage::INGESTD], pids[stage::INGESTD]);
    assert_eq!(life(&p, stage::DECODED).hangs, 1);
    assert_eq!(p.counter(stage::SUPERVISOR, supervisor_counter::HANGS), 1);
}

/// A stage that never reports ready: ingestd replaced by a script that records its pid and
/// sleeps. The real binaries run the other three.
#[test]
fn a_stage_stuck_starting_past_the_start_timeout_is_restarted_as_hung() {
    let mqtt = Mosquitto::start();
    let nats = Nats::start();
    let bin = TempDir::new("stuck-bin");
    for s in [stage::DECODED, stage::AGGD, stage::EMITD] {
        std::os::unix::fs::symlink(binary(s), bin.path().join(s)).unwrap();
    }
    let starts = bin.path().join("starts");
    let stuck = bin.path().join(stage::INGESTD);
    std::fs::write(
        &stuck,
        format!("#!/bin/sh\necho $$ >> {}\nexec sleep 600\n", starts.display()),
    )
    .unwrap();
    std::fs::set_permissions(&stuck, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let p = Pipeline::configure(
        "start-timeout",
        &mqtt,
        &nats,
        &format!(
            "[supervisor]\nstart_timeout_ms = 500\nrestart_intensity = 1000\nbin_dir = \"{}\"\n",
            bin.path().display()
        ),
    );
    let _supervisor = p.supervise(&[]);
    let started = |n: usize| {
        let text = std::fs::read_to_string(&starts).unwrap_or_default();
        let pids: Vec<u32> = text.lines().filter_map(|l| l.parse().ok()).collect();
        (pids.len() >= n).then_some(pids)
    };
    let pids = wait_for("the stuck stage to be started twice", PATIENCE, || started(2));
    assert!(!alive(pids[0]), "the first one was killed");
    let ingestd = life(&p, stage::INGESTD);
    assert!(ingestd.hangs >= 1 && ingestd.restarts >= ingestd.hangs, "{ingestd:?}");
    assert_eq!(ingestd.last_hang, Some(HangReason::StartTimeout));
    assert!(p.counter(stage::SUPERVISOR, supervisor_counter::HANGS) >= 1);
    let status = Command::new(binary("telemetryctl"))
        .arg("--config")
        .arg(&p.config_path)
        .arg("status")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("note: ingestd: restarted as hung") && l.contains("last: start_timeout")),
        "{text}"
    );
    // one_for_one: the stages that did start were left alone.
    let others = |s: &str| p.stats().stage(s).map(|x| (x.state, x.pid)).unwrap();
    let before: Vec<_> = [stage::DECODED, stage::AGGD, stage::EMITD].map(others).to_vec();
    assert!(
        before.iter().all(|(state, _)| *state == Some(StageState::Running)),
        "{before:?}"
    );
    wait_for("the stuck stage to be killed again", PATIENCE, || started(3));
    let after: Vec<_> = [stage::DECODED, stage::AGGD, stage::EMITD].map(others).to_vec();
    assert_eq!(before, after);
}

#[test]
fn telemetryctl_restart_changes_only_that_stages_pid() {
    let mqtt = Mosquitto::start();
    let nats = Nats::start();
    let p = Pipeline::configure("ctl-restart", &mqtt, &nats, "");
    let _supervisor = p.supervise(&[]);
    let pids = p.wait_running();
    let status = Command::new(binary("telemetryctl"))
        .arg("--config")
        .arg(&p.config_path)
        .args(["restart", "decoded"])
        .status()
        .unwrap();
    assert!(status.success());
    let after = p.wait_replaced(&pids, stage::DECODED);
    for s in [stage::INGESTD, stage::AGGD, stage::EMITD] {
        assert_eq!(after[s], pids[s], "{s}");
    }
}

#[test]
fn a_payload_that_crashes_decoded_is_quarantined_after_three_attempts() {
    let mqtt = Mosquitto::start();
    let nats = Nats::start();
    let dir = TempDir::new("poison");
    let dead_letter = dir.path().join("dead-letter.jsonl");
    let p = Pipeline::configure(
        "poison",
        &mqtt,
        &nats,
        &format!(
            "[supervisor]\npoison_attempts = 3\ndead_letter_file = \"{}\"\n",
            dead_letter.display()
        ),
    );
    let collector = Collector::start(&nats.url(), &p.subjects());
    // The fault-injection hook: decoded panics on a payload containing this text.
    let _supervisor = p.supervise(&[("TELEMETRY_FAULT_PANIC_ON", "POISON")]);
    p.wait_running();
    let lines = vec![
        r#"{"d":"dev1","s":"t","v":1.0,"u":"C","n":1}"#.to_owned(),
        r#"{"d":"POISON","s":"t","v":2.0,"u":"C","n":2}"#.to_owned(),
        r#"{"d":"dev1","s":"t","v":3.0,"u":"C","n":3}"#.to_owned(),
    ];
    mqtt.publish_lines("site/x/sensor/t", &lines, 1);
    let key = ("dev1".to_owned(), "t".to_owned());
    wait_for("the records around the poison to be aggregated", PATIENCE, || {
        collector
            .fullest()
            .get(&key)
            .filter(|a| a.num("count") == 2.0)
            .map(|_| ())
    });
    assert_eq!(p.counter(stage::SUPERVISOR, supervisor_counter::POISON_SKIPPED), 1);
    let dl = std::fs::read_to_string(&dead_letter).unwrap();
    assert_eq!(dl.lines().count(), 1);
    assert!(
        dl.contains("\"ring\":\"raw\"") && dl.contains("site/x/sensor/t"),
        "{dl}"
    );
    assert_eq!(life(&p, stage::DECODED).restarts, 3);
    let a = &collector.fullest()[&key];
    assert_eq!((a.num("min"), a.num("max")), (1.0, 3.0));
}

#[test]
fn a_clean_stop_loses_nothing_and_leaves_no_segments() {
    let mqtt = Mosquitto::start();
    let nats = Nats::start();
    let p = Pipeline::configure("clean-stop", &mqtt, &nats, "");
    // The directory is there before the supervisor, as tmpfiles.d makes it at boot: a clean stop
    // empties it but keeps it, so that no other user can take the name while the pipeline is down.
    assert!(shm_ring::segment::prepare_dir(&p.prefix).unwrap(), "made here");
    let collector = Collector::start(&nats.url(), &p.subjects());
    let mut supervisor = p.supervise(&[]);
    let pids = p.wait_running();
    let expect = p.file("expect.jsonl");
    loadgen(
        &mqtt,
        &format!(
            "--devices 3 --sensors 3 --count 3000 --qos 1 --expect {}",
            expect.display()
        ),
    );
    wait_for("ingestd to take everything", PATIENCE, || {
        (p.counter(stage::INGESTD, counter::FORWARDED) == 3000).then_some(())
    });
    supervisor.signal(15);
    assert_eq!(supervisor.wait_exit(PATIENCE), Some(0));
    assert!(pids.values().all(|pid| !alive(*pid)), "every stage stopped");
    assert!(
        shm_ring::segment::list(&p.prefix).unwrap().is_empty(),
        "segments removed"
    );
    let dir = std::path::Path::new(shm_ring::segment::SHM_DIR).join(&p.prefix);
    assert!(dir.is_dir(), "a directory that was there before the start is kept");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "and left empty");
    // Everything ingestd accepted was aggregated and published before the stages exited.
    collector.wait_covering("the final aggregates", &expectations(&expect));
}

#[test]
fn systemd_hears_ready_watchdog_and_stopping() {
    let mqtt = Mosquitto::start();
    let nats = Nats::start();
    let p = Pipeline::configure("notify", &mqtt, &nats, "");
    let socket_path = p.file("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut supervisor = p.supervise(&[
        ("NOTIFY_SOCKET", socket_path.to_str().unwrap()),
        ("WATCHDOG_USEC", "1000000"),
    ]);
    let mut heard = String::new();
    let mut buf = [0u8; 4096];
    wait_for("READY=1 and WATCHDOG=1", PATIENCE, || {
        if let Ok(n) = socket.recv(&mut buf) {
            heard.push_str(&String::from_utf8_lossy(&buf[..n]));
            heard.push('\n');
        }
        (heard.contains("READY=1") && heard.contains("WATCHDOG=1")).then_some(())
    });
    assert!(heard.contains("STATUS=4/4 stages running"), "{heard}");
    let ready_at = heard.find("READY=1").unwrap();
    assert!(
        !heard[..ready_at].contains("4/4"),
        "READY=1 came with the first 4/4, not before"
    );
    supervisor.signal(15);
    wait_for("STOPPING=1", PATIENCE, || {
        if let Ok(n) = socket.recv(&mut buf) {
            heard.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        heard.contains("STOPPING=1").then_some(())
    });
    assert_eq!(supervisor.wait_exit(PATIENCE), Some(0));
    assert!(
        !std::path::Path::new(shm_ring::segment::SHM_DIR)
            .join(&p.prefix)
            .exists(),
        "the segment directory this supervisor made is removed with the segments"
    );
}

#[test]
fn the_metrics_endpoint_serves_the_counters() {
    let mqtt = Mosquitto::start();
    let nats = Nats::start();
    let port = free_port();
    let p = Pipeline::configure(
        "metrics",
        &mqtt,
        &nats,
        &format!("[supervisor]\nmetrics_listen = \"127.0.0.1:{port}\"\n"),
    );
    let _supervisor = p.supervise(&[]);
    p.wait_running();
    loadgen(&mqtt, "--devices 1 --sensors 1 --count 10 --qos 1");
    wait_for("ingestd to count", PATIENCE, || {
        (p.counter(stage::INGESTD, counter::RECEIVED) == 10).then_some(())
    });
    let body = wait_for("a metrics answer", PATIENCE, || {
        let out = pipeline_tests::scrape_metrics(port)?;
        // aggd publishes its keys gauge once it has folded the readings.
        out.contains("telemetry_aggd_keys{stage=\"aggd\"} 1\n").then_some(out)
    });
    assert!(
        body.contains("telemetry_wire_connected{stage=\"ingestd\",wire=\"mqtt\"} 1\n"),
        "{body}"
    );
    assert!(
        body.contains("telemetry_stage_received_total{stage=\"ingestd\"} 10"),
        "{body}"
    );
    assert!(
        body.contains(&format!("telemetry_ring_capacity{{ring=\"{}\"}}", segment::RAW)),
        "{body}"
    );
}
