//! `telemetryctl` as an operator runs it: the real binary against a stats page and rings that
//! each test creates under its own prefix (no supervisor, no stages: the test writes the counters
//! and lifecycle itself). Segments and files are removed on drop, also when a test fails; every
//! run of the binary has a generous hang guard and is killed if it overstays.

mod common;
use common::run::{run, Run, HANG_GUARD};

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pipeline_stats::lifecycle::{ExitStatus, HangReason, Lifecycle};
use records::names::{counter, drop_reason, error_reason, segment, stage};
use records::{Aggregate, ContentType, RawRecord, Reading};
use serde_json::Value;
use shm_ring::ring::{create, RingOptions};
use shm_ring::segment::PrefixGuard;
use shm_ring::stats::{create_stats_page, CounterBatch, StageState, StageWriter};
use shm_ring::{Producer, SegmentName};
use test_brokers::TempDir;

/// Heartbeat limit for `status` in tests: the heartbeats written just before are always younger.
const FRESH: &str = "600000";

const RAW_SLOTS: u64 = 16;

/// One test's pipeline segments (removed on drop) and config file.
struct Fixture {
    prefix: String,
    _guard: PrefixGuard,
    dir: TempDir,
}

impl Fixture {
    /// A stats page with the four stages and the supervisor, and the three rings.
    fn new(test: &str) -> Fixture {
        let prefix = format!("test-ctl-{test}-{}", std::process::id());
        let guard = PrefixGuard::new(&prefix);
        let _ = shm_ring::segment::remove_all(&prefix);
        let mut stages: Vec<&str> = stage::ALL.to_vec();
        stages.push(stage::SUPERVISOR);
        let f = Fixture {
            prefix,
            _guard: guard,
            dir: TempDir::new(&format!("telemetryctl-{test}")),
        };
        create_stats_page(
            &f.name(segment::STATS),
            &stages,
            &[
                (segment::RAW, RAW_SLOTS),
                (segment::READINGS, 16),
                (segment::AGGREGATES, 8),
            ],
        )
        .unwrap();
        create::<RawRecord>(&f.name(segment::RAW), &RingOptions::new(RAW_SLOTS)).unwrap();
        create::<Reading>(&f.name(segment::READINGS), &RingOptions::new(16)).unwrap();
        create::<Aggregate>(&f.name(segment::AGGREGATES), &RingOptions::new(8)).unwrap();
        std::fs::write(f.config(), format!("[pipeline]\nprefix = \"{}\"\n", f.prefix)).unwrap();
        std::fs::set_permissions(f.config(), std::fs::Permissions::from_mode(0o644)).unwrap();
        f
    }

    fn name(&self, segment: &str) -> SegmentName {
        SegmentName::new(&self.prefix, segment).unwrap()
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("telemetry.toml")
    }

    fn shm_path(&self, segment: &str) -> PathBuf {
        PathBuf::from(format!("/dev/shm/{}/{segment}", self.prefix))
    }

    /// Takes a stage's writer role. Patiently: a child that another test thread is spawning shares
    /// our descriptors (and so the role's lock) between its fork and its exec.
    fn writer(&self, stage: &str) -> StageWriter {
        stage_runtime::patiently(std::time::Duration::from_secs(10), || {
            StageWriter::attach(&self.name(segment::STATS), stage)
        })
        .unwrap()
    }

    /// Adds to a stage's counters (in one batch, as a stage does) and beats its heartbeat.
    fn count(&self, stage: &str, counters: &[(&str, u64)]) {
        let mut writer = self.writer(stage);
        let mut batch = CounterBatch::default();
        for (name, n) in counters {
            let id = writer.counter(name).unwrap();
            batch.add(id, *n);
        }
        writer.flush(&mut batch);
    }

    /// Every stage and the supervisor running, with a fresh heartbeat.
    fn all_running(&self) {
        let lifecycle = Lifecycle::open(&self.name(segment::STATS)).unwrap();
        for s in stage::ALL.iter().chain([&stage::SUPERVISOR]) {
            // Attaching beats the heartbeat.
            drop(self.writer(s));
            lifecycle.set_state(s, StageState::Running, std::process::id()).unwrap();
        }
    }

    /// Queues `n` records in the raw ring.
    fn queue_raw(&self, n: usize) {
        let record = RawRecord::new(b"site/1/sensor/t", b"{}", ContentType::Json, 0).unwrap();
        let mut producer = Producer::<RawRecord>::attach(&self.name(segment::RAW)).unwrap();
        assert_eq!(producer.push_slice(&vec![record; n]).unwrap(), n);
    }

    /// A pipeline whose counters balance exactly, with 3 records in the raw ring.
    fn balanced(&self) {
        self.all_running();
        self.count(
            stage::INGESTD,
            &[
                (counter::RECEIVED, 110),
                (counter::FORWARDED, 100),
                (drop_reason::RING_FULL, 7),
                (drop_reason::PAYLOAD_TOO_LARGE, 3),
            ],
        );
        self.queue_raw(3);
        self.count(
            stage::DECODED,
            &[
                (counter::RECEIVED, 97),
                (counter::FORWARDED, 90),
                (error_reason::MALFORMED, 5),
                (error_reason::MISSING_FIELD, 2),
            ],
        );
        self.count(
            stage::AGGD,
            &[
                (counter::RECEIVED, 90),
                (counter::FORWARDED, 90),
                (counter::AGGREGATES_EMITTED, 12),
            ],
        );
        self.count(
            stage::EMITD,
            &[
                (counter::RECEIVED, 12),
                (counter::FORWARDED, 11),
                (drop_reason::UNSAFE_SUBJECT, 1),
                ("nats.connects", 1),
            ],
        );
    }

    /// Runs `telemetryctl --config <this test's file> <args>`.
    fn ctl(&self, args: &[&str]) -> Run {
        let config = self.config();
        let mut all = vec!["--config", config.to_str().unwrap()];
        all.extend_from_slice(args);
        run(Command::new(env!("CARGO_BIN_EXE_telemetryctl")).args(&all))
    }
}

fn line_of<'a>(text: &'a str, start: &str, contains: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(start) && l.contains(contains))
        .unwrap_or_else(|| panic!("no line starting {start:?} with {contains:?} in\n{text}"))
}

fn stage_json<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no stage {name} in {doc}"))
}

#[test]
fn stats_table_shows_counters_depths_and_an_exact_balance() {
    let f = Fixture::new("table");
    f.balanced();
    let r = f.ctl(&["stats"]);
    assert_eq!(r.code, 0, "{r:?}");
    let out = &r.stdout;
    let ingestd = line_of(out, "ingestd ", "running");
    assert!(ingestd.contains(&std::process::id().to_string()), "{ingestd}");
    let cells: Vec<&str> = ingestd.split_whitespace().collect();
    assert_eq!(
        cells[cells.len() - 2..],
        ["110", "100"],
        "received and forwarded: {ingestd}"
    );
    for (stage, counter, value) in [
        ("ingestd", "dropped.ring_full", "7"),
        ("ingestd", "dropped.payload_too_large", "3"),
        ("decoded", "error.malformed", "5"),
        ("decoded", "error.missing_field", "2"),
        ("emitd", "dropped.unsafe_subject", "1"),
        ("emitd", "nats.connects", "1"),
    ] {
        let line = line_of(out, stage, &format!(" {counter} "));
        assert!(line.trim_end().ends_with(&format!(" {value}")), "{line}");
    }
    line_of(out, "supervisor ", "running");
    let raw = line_of(out, "raw ", "ring");
    let cells: Vec<&str> = raw.split_whitespace().collect();
    assert_eq!(&cells[..3], ["raw", "3", "16"], "{raw}");
    assert!(out.contains("\nBALANCE: ok\n"), "{r:?}");
    assert!(out.contains("read at slightly different moments"), "{r:?}");
    assert!(out.contains("a stopped or idle pipeline balances exactly"), "{r:?}");
    assert!(out.contains("totals since the page was created"), "{r:?}");
}

#[test]
fn stats_json_has_the_documented_fields() {
    let f = Fixture::new("json");
    f.balanced();
    let r = f.ctl(&["stats", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let doc: Value = serde_json::from_str(r.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {r:?}"));
    assert_eq!(doc["schema"], 1);
    assert_eq!(doc["prefix"], f.prefix.as_str());
    assert_eq!(doc["page"], format!("/dev/shm/{}/stats", f.prefix));
    assert!(doc["time_unix_ms"].as_u64().unwrap() > 1_600_000_000_000);
    assert_eq!(doc["rates_interval_s"], Value::Null);
    assert_eq!(doc["settled"], true);
    let names: Vec<&str> = doc["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ingestd", "decoded", "aggd", "emitd", "supervisor"]);
    let ingestd = stage_json(&doc, "ingestd");
    assert_eq!(ingestd["state"], "running");
    assert_eq!(ingestd["pid"], std::process::id());
    assert!(ingestd["uptime_ms"].is_u64());
    assert!(ingestd["heartbeat_age_ms"].is_u64());
    assert!(ingestd["started_unix_ms"].as_u64().unwrap() > 0);
    assert_eq!(ingestd["restarts"], 0);
    assert_eq!(ingestd["hangs"], 0);
    assert_eq!(ingestd["last_hang"], Value::Null);
    assert_eq!(ingestd["last_exit"], Value::Null);
    assert_eq!(ingestd["consistent"], true);
    assert_eq!(ingestd["received"], 110);
    assert_eq!(ingestd["forwarded"], 100);
    assert_eq!(ingestd["dropped"]["ring_full"], 7);
    assert_eq!(ingestd["counters"]["dropped.payload_too_large"], 3);
    assert_eq!(ingestd["rates"], Value::Null);
    let decoded = stage_json(&doc, "decoded");
    assert_eq!(decoded["errors"]["malformed"], 5);
    assert_eq!(decoded["errors"]["missing_field"], 2);
    assert_eq!(stage_json(&doc, "emitd")["counters"]["nats.connects"], 1);
    let raw = &doc["rings"][0];
    assert_eq!(raw["name"], "raw");
    assert_eq!(raw["depth"], 3);
    assert_eq!(raw["capacity"], RAW_SLOTS);
    assert_eq!(raw["source"], "ring");
    assert_eq!(raw["problem"], Value::Null);
    assert_eq!(doc["rings"][1]["name"], "readings");
    assert_eq!(doc["rings"][2]["name"], "aggregates");
    let balance = &doc["balance"];
    assert_eq!(balance["ok"], true, "{balance}");
    assert_eq!(balance["summary"], "BALANCE: ok");
    let link = balance["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["at"] == "ingestd->decoded")
        .unwrap();
    assert_eq!(link["kind"], "link");
    assert_eq!(link["left"]["value"], 100);
    assert_eq!(link["right"][1]["name"], "raw depth");
    assert_eq!(link["right"][1]["value"], 3);
    assert_eq!(link["off_by"], 0);
    assert!(balance["unchecked"].as_array().unwrap().is_empty());
    assert!(doc["note"].as_str().unwrap().contains("in flight"));
}

#[test]
fn an_imbalance_is_reported_at_its_stage() {
    let f = Fixture::new("off");
    f.balanced();
    // decoded takes in two more than it accounts for.
    f.count(stage::DECODED, &[(counter::RECEIVED, 2)]);
    let r = f.ctl(&["stats"]);
    assert_eq!(r.code, 0, "{r:?}");
    // Its own equation is off, and so (the other way) is the raw link.
    assert!(
        r.stdout
            .contains("\nBALANCE: off by 2 at decoded; off by 2 at ingestd->decoded\n"),
        "{r:?}"
    );
    let detail = line_of(&r.stdout, "  OFF", "decoded");
    assert!(detail.contains("received 99 = forwarded 90"), "{detail}");
    assert!(detail.contains("(2 not accounted for)"), "{detail}");

    let r = f.ctl(&["stats", "--json"]);
    let doc: Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(doc["balance"]["ok"], false);
    let decoded = doc["balance"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["at"] == "decoded")
        .unwrap();
    assert_eq!(decoded["off_by"], 2);
    assert_eq!(decoded["ok"], false);
}

#[test]
fn watch_refreshes_with_rates_and_stops_after_count() {
    let f = Fixture::new("watch");
    f.balanced();
    let r = f.ctl(&["stats", "--watch", "--count", "2", "--interval-ms", "200", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let docs: Vec<Value> = r.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(docs.len(), 2, "{r:?}");
    assert_eq!(docs[0]["rates_interval_s"], Value::Null);
    assert!(docs[1]["rates_interval_s"].as_f64().unwrap() > 0.0);
    // Nothing moved between the two refreshes.
    assert_eq!(stage_json(&docs[1], "ingestd")["rates"]["received"], 0.0);

    let r = f.ctl(&["stats", "--watch", "--count", "2", "--interval-ms", "100"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout.matches("BALANCE: ok").count(), 2, "{r:?}");
    assert!(r.stdout.contains("rates per second over the last"), "{r:?}");
}

#[test]
fn watch_ends_cleanly_on_sigint() {
    use std::io::BufRead as _;
    let f = Fixture::new("sigint");
    f.balanced();
    let config = f.config();
    let mut child = Command::new(env!("CARGO_BIN_EXE_telemetryctl"))
        .args(["--config", config.to_str().unwrap(), "stats", "--watch", "--json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut first = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut first);
        let _ = tx.send(first);
    });
    let first = rx.recv_timeout(HANG_GUARD);
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > HANG_GUARD {
            let _ = child.kill();
            let _ = child.wait();
            panic!("telemetryctl stats --watch ignored SIGINT");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let first = first.expect("a first refresh");
    assert_eq!(serde_json::from_str::<Value>(&first).unwrap()["schema"], 1);
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn status_exit_codes() {
    let f = Fixture::new("status");
    f.all_running();
    let r = f.ctl(&["status", "--heartbeat-timeout-ms", FRESH]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.starts_with("ok: ingestd, decoded, aggd, emitd running"),
        "{r:?}"
    );

    // A stage that was restarted as hung and runs again: healthy, with a note saying why.
    let lifecycle = Lifecycle::open(&f.name(segment::STATS)).unwrap();
    lifecycle.count_hang(stage::AGGD, HangReason::NoProgress).unwrap();
    let r = f.ctl(&["status", "--heartbeat-timeout-ms", FRESH]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        line_of(&r.stdout, "note: aggd:", "").contains("restarted as hung 1 time(s); last: no_progress"),
        "{r:?}"
    );

    lifecycle.record_exit(stage::DECODED, ExitStatus::Signal(9)).unwrap();
    let r = f.ctl(&["status", "--heartbeat-timeout-ms", FRESH]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(
        r.stdout.lines().next(),
        Some("unhealthy: decoded: state exited (last exit: signal 9 (SIGKILL))"),
        "{r:?}"
    );

    // Running, but no process ever beat its heartbeat.
    let g = Fixture::new("status-nobeat");
    let lifecycle = Lifecycle::open(&g.name(segment::STATS)).unwrap();
    for s in stage::ALL {
        lifecycle.set_state(s, StageState::Running, 1).unwrap();
    }
    let r = g.ctl(&["status"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(
        r.stdout.lines().count(),
        4 + 1,
        "one line per stage and a supervisor note: {r:?}"
    );
    assert!(line_of(&r.stdout, "unhealthy: aggd", "").contains("never sent a heartbeat"));
    assert!(r.stdout.contains("note: supervisor: state idle"), "{r:?}");
}

#[test]
fn no_pipeline_is_exit_3_for_every_command() {
    let prefix = format!("test-ctl-absent-{}", std::process::id());
    let _guard = PrefixGuard::new(&prefix);
    let expected = format!("no pipeline with prefix {prefix} is running (no /dev/shm/{prefix}/stats)");
    for args in [&["stats"][..], &["stats", "--json"], &["status"], &["restart", "aggd"]] {
        let r = run(Command::new(env!("CARGO_BIN_EXE_telemetryctl"))
            .args(["--prefix", &prefix])
            .args(args));
        assert_eq!(r.code, 3, "{args:?}: {r:?}");
        assert!(r.stderr.contains(&expected), "{args:?}: {r:?}");
        assert!(r.stdout.is_empty(), "{args:?}: {r:?}");
    }
}

#[test]
fn restart_asks_for_exactly_one_stage() {
    let f = Fixture::new("restart");
    f.all_running();
    let lifecycle = Lifecycle::open(&f.name(segment::STATS)).unwrap();
    let before: Vec<u64> = stage::ALL
        .iter()
        .map(|s| lifecycle.restart_requests(s).unwrap())
        .collect();
    let r = f.ctl(&["restart", "decoded"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .contains("asked the supervisor to restart decoded (restart request #1)"),
        "{r:?}"
    );
    for (s, b) in stage::ALL.iter().zip(&before) {
        let want = if *s == stage::DECODED { b + 1 } else { *b };
        assert_eq!(lifecycle.restart_requests(s).unwrap(), want, "{s}");
    }

    let r = f.ctl(&["restart", "decodedd"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("unknown stage \"decodedd\""), "{r:?}");
    assert!(r.stderr.contains("usage:"), "{r:?}");
    assert_eq!(lifecycle.restart_requests(stage::DECODED).unwrap(), before[1] + 1);
}

/// Overwrites bytes of a segment in place, as a foreign writer or a bit flip would.
fn patch(path: &Path, offset: u64, bytes: &[u8]) {
    use std::io::{Seek, SeekFrom, Write};
    let mut file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.seek(SeekFrom::Start(offset)).unwrap();
    file.write_all(bytes).unwrap();
}

#[test]
fn another_layout_or_a_corrupt_page_is_a_clear_error() {
    let f = Fixture::new("layout");
    f.balanced();
    // The header's layout version is the u32 at offset 8.
    patch(
        &f.shm_path(segment::STATS),
        8,
        &(shm_ring::segment::LAYOUT_VERSION + 1).to_le_bytes(),
    );
    for args in [&["stats"][..], &["status"], &["restart", "emitd"]] {
        let r = f.ctl(args);
        assert_eq!(r.code, 5, "{args:?}: {r:?}");
        assert!(
            r.stderr.contains("is a stats page of another layout version"),
            "{args:?}: {r:?}"
        );
        assert!(
            r.stderr
                .contains(&format!("layout {}", shm_ring::segment::LAYOUT_VERSION + 1)),
            "{r:?}"
        );
    }

    let g = Fixture::new("corrupt");
    g.balanced();
    patch(&g.shm_path(segment::STATS), 0, b"NOTSHMRG");
    let r = g.ctl(&["stats", "--json"]);
    assert_eq!(r.code, 5, "{r:?}");
    assert!(r.stderr.contains("is corrupt or not a stats page: bad magic"), "{r:?}");
    assert!(r.stdout.is_empty(), "{r:?}");

    // A ring where the stats page should be.
    let h = Fixture::new("kind");
    shm_ring::segment::remove(&h.name(segment::STATS)).unwrap();
    create::<RawRecord>(&h.name(segment::STATS), &RingOptions::new(2)).unwrap();
    let r = h.ctl(&["status"]);
    assert_eq!(r.code, 5, "{r:?}");
    assert!(r.stderr.contains("corrupt or not a stats page"), "{r:?}");
}

#[test]
fn usage_errors_are_exit_2() {
    let bin = env!("CARGO_BIN_EXE_telemetryctl");
    for args in [
        &[][..],
        &["frobnicate"],
        &["stats", "--bogus"],
        &["stats", "--count", "1"],
        &["restart"],
    ] {
        let r = run(Command::new(bin).args(args));
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(r.stderr.starts_with("telemetryctl: "), "{args:?}: {r:?}");
        assert!(r.stderr.contains("usage: telemetryctl"), "{args:?}: {r:?}");
    }
    let r = run(Command::new(bin).args(["--prefix", "../etc", "stats"]));
    assert_eq!(r.code, 2, "{r:?}");
    let r = run(Command::new(bin).args(["--config", "/nonexistent/telemetry.toml", "stats"]));
    assert_eq!(r.code, 6, "{r:?}");
    assert!(r.stderr.contains("cannot read /nonexistent/telemetry.toml"), "{r:?}");
    let r = run(Command::new(bin).arg("--help"));
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("exit codes:"), "{r:?}");
}

/// Whether this process can run commands as uid 65534 through setpriv.
fn setpriv_works() -> bool {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn a_read_only_observer_needs_no_write_permission() {
    let f = Fixture::new("readonly");
    f.balanced();
    let root = nix::unistd::geteuid().is_root();
    let bin = env!("CARGO_BIN_EXE_telemetryctl");
    let config = f.config();
    let as_observer = |args: &[&str]| {
        let mut all = vec!["--config", config.to_str().unwrap()];
        all.extend_from_slice(args);
        if root {
            run(Command::new("setpriv")
                .args(["--reuid=65534", "--regid=65534", "--clear-groups", bin])
                .args(&all))
        } else {
            run(Command::new(bin).args(&all))
        }
    };
    if root {
        if !setpriv_works() {
            eprintln!("skipped: running as root and `setpriv --reuid=65534` is unavailable");
            return;
        }
        // As deployed: the segments belong to the pipeline's user (here root) and group-readable
        // by the operator's group (here 65534, the observer's); the observer is not the owner.
        for s in [segment::STATS, segment::RAW, segment::READINGS, segment::AGGREGATES] {
            std::os::unix::fs::chown(f.shm_path(s), Some(0), Some(65534)).unwrap();
        }
        // Their directory too (0750, the operator's group may enter), as tmpfiles.d makes it.
        std::os::unix::fs::chown(f.shm_path(""), Some(0), Some(65534)).unwrap();
        if as_observer(&["--help"]).code != 0 {
            eprintln!("skipped: uid 65534 cannot execute {bin}");
            return;
        }
    }
    // Group-readable when the observer is another user; read-only for everyone otherwise.
    let mode = if root { 0o640 } else { 0o440 };
    for s in [segment::STATS, segment::RAW, segment::READINGS, segment::AGGREGATES] {
        std::fs::set_permissions(f.shm_path(s), std::fs::Permissions::from_mode(mode)).unwrap();
    }

    let r = as_observer(&["stats"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("\nBALANCE: ok\n"), "{r:?}");
    assert!(line_of(&r.stdout, "decoded ", " error.malformed ")
        .trim_end()
        .ends_with(" 5"));
    let raw: Vec<&str> = line_of(&r.stdout, "raw ", "").split_whitespace().collect();
    assert_eq!(&raw[..3], ["raw", "3", "16"], "{r:?}");
    assert_eq!(as_observer(&["stats", "--json"]).code, 0);
    assert_eq!(as_observer(&["status", "--heartbeat-timeout-ms", FRESH]).code, 0);

    // Writing needs write permission: a clear refusal, nothing written.
    let r = as_observer(&["restart", "decoded"]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains("permission denied"), "{r:?}");
    if root {
        // Another user: refused at the directory, which a writer must own.
        assert!(r.stderr.contains("belongs to uid 0 and this is uid 65534"), "{r:?}");
        assert!(r.stderr.contains("run telemetryctl as the pipeline's user"), "{r:?}");
    } else {
        assert!(r.stderr.contains("needs write access"), "{r:?}");
    }
    assert!(r.stderr.contains(&format!("mode {mode:04o}")), "{r:?}");
    if root {
        std::fs::set_permissions(f.shm_path(segment::STATS), std::fs::Permissions::from_mode(0o640)).unwrap();
        std::os::unix::fs::chown(f.shm_path(segment::STATS), Some(0), Some(0)).unwrap();
    } else {
        std::fs::set_permissions(f.shm_path(segment::STATS), std::fs::Permissions::from_mode(0o640)).unwrap();
    }
    let lifecycle = Lifecycle::open(&f.name(segment::STATS)).unwrap();
    assert_eq!(lifecycle.restart_requests(stage::DECODED).unwrap(), 0);
}
