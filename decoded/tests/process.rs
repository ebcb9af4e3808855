//! The `decoded` binary as the supervisor runs it: a real process attached to rings this test
//! creates under its own prefix, fed raw records by the test (as ingestd would) and drained of
//! readings by the test (as aggd would). Checks exact values, counters by reason, backpressure,
//! exactly-once across SIGKILL and restart, SIGTERM's drain and exit code, and bad configs.
//!
//! Timeouts are hang guards only; nothing here depends on how fast the machine is. Processes,
//! files and segments are cleaned up on drop, also when an assertion fails (decoded's log is then
//! printed).

use std::fs::OpenOptions;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use decoded::format::FormatChooser;
use decoded::stage::decode_raw;
use records::names::{counter, error_reason, segment, stage};
use records::{ContentType, FixedText, RawRecord, Reading};
use shm_ring::ring::{create, RingObserver, RingOptions};
use shm_ring::segment::PrefixGuard;
use shm_ring::stats::{create_stats_page, StageState, StatsControl, StatsReader};
use shm_ring::{Consumer, Producer, SegmentName};
use telemetry_config::Decoded;
use test_brokers::{wait_for, Process, TempDir};

const DECODED: &str = env!("CARGO_BIN_EXE_decoded");
const HANG_GUARD: Duration = Duration::from_secs(60);
const RAW_CAP: u64 = 4096;
/// Smaller than decoded's batch, so a full readings ring stops it in the middle of a raw chunk.
const READINGS_CAP: u64 = 64;
/// The raw ring starts near the end of the position space, so sources cross the 2^64 wrap.
const RAW_START: u64 = u64::MAX - 300;
const SIGTERM: i32 = 15;

/// One pipeline around one decoded process. Field order is drop order: the process dies before
/// its segments are removed.
struct Scene {
    decoded: Option<Process>,
    raw: Producer<RawRecord>,
    readings: Consumer<Reading>,
    readings_name: SegmentName,
    raw_name: SegmentName,
    stats: SegmentName,
    config: PathBuf,
    log: PathBuf,
    _dir: TempDir,
    _guard: PrefixGuard,
}

impl Drop for Scene {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("---- decoded's log ----\n{log}-----------------------");
        }
    }
}

impl Scene {
    fn new(test: &str) -> Scene {
        let prefix = format!("test-decoded-{test}-{}", std::process::id());
        let guard = PrefixGuard::new(&prefix);
        let name = |s: &str| SegmentName::new(&prefix, s).unwrap();
        let (raw_name, readings_name, stats) = (name(segment::RAW), name(segment::READINGS), name(segment::STATS));
        create::<RawRecord>(&raw_name, &RingOptions::new(RAW_CAP).start_position(RAW_START)).unwrap();
        create::<Reading>(&readings_name, &RingOptions::new(READINGS_CAP)).unwrap();
        create_stats_page(
            &stats,
            &stage::ALL,
            &[(segment::RAW, RAW_CAP), (segment::READINGS, READINGS_CAP)],
        )
        .unwrap();
        let dir = TempDir::new(&prefix);
        let config = dir.path().join("telemetry.toml");
        std::fs::write(
            &config,
            format!(
                "[pipeline]\nprefix = \"{prefix}\"\nraw_ring = {RAW_CAP}\nreadings_ring = {READINGS_CAP}\n\n\
                 [wait]\nnap_us = 100\nnaps = 2\n\n\
                 [decoded]\nformat = \"auto\"\ncbor_topics = [\"cbor/#\"]\n"
            ),
        )
        .unwrap();
        Scene {
            decoded: None,
            raw: Producer::attach(&raw_name).unwrap(),
            readings: Consumer::attach(&readings_name).unwrap(),
            readings_name,
            raw_name,
            stats,
            log: dir.path().join("decoded.log"),
            config,
            _dir: dir,
            _guard: guard,
        }
    }

    /// Starts decoded and waits until it reports itself running (as the supervisor would, the
    /// test marks the slot `Starting` first).
    fn start(&mut self) {
        assert!(self.decoded.is_none());
        StatsControl::open(&self.stats)
            .unwrap()
            .stage(stage::DECODED)
            .unwrap()
            .set_state(StageState::Starting, 0);
        let log = OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let process = Process::spawn(
            "decoded",
            Command::new(DECODED)
                .arg("--config")
                .arg(&self.config)
                .env("TELEMETRY_LOG", "info")
                .stdout(Stdio::null())
                .stderr(log),
        );
        let pid = process.pid();
        self.decoded = Some(process);
        wait_for("decoded to report Running", HANG_GUARD, || {
            let snap = StatsReader::open(&self.stats).unwrap().snapshot();
            let s = snap.stage(stage::DECODED).unwrap();
            (s.state == Some(StageState::Running) && s.pid == pid).then_some(())
        });
    }

    fn kill(&mut self) {
        self.decoded.take().expect("decoded running").kill();
    }

    fn push(&mut self, records: &[RawRecord]) {
        assert_eq!(
            self.raw.push_slice(records).unwrap(),
            records.len(),
            "the raw ring has room"
        );
    }

    /// Every reading available now.
    fn take(&mut self) -> Vec<Reading> {
        let chunk = self.readings.read_chunk(usize::MAX).unwrap();
        let out = chunk.iter().copied().collect();
        chunk.commit_all();
        out
    }

    /// Readings until `n` have arrived.
    fn take_n(&mut self, n: usize) -> Vec<Reading> {
        let mut out = Vec::new();
        wait_for(&format!("{n} readings"), HANG_GUARD, || {
            out.extend(self.take());
            (out.len() >= n).then_some(())
        });
        out
    }

    fn counters(&self) -> Vec<(String, u64)> {
        let snap = StatsReader::open(&self.stats).unwrap().snapshot();
        snap.stage(stage::DECODED).unwrap().counters.clone()
    }

    fn counter(&self, name: &str) -> u64 {
        self.counters().iter().find(|(n, _)| n == name).map_or(0, |(_, v)| *v)
    }

    /// Readings published into the readings ring since it was created.
    fn published(&self) -> u64 {
        RingObserver::attach(&self.readings_name).unwrap().positions().0
    }

    /// The raw ring's read position: raw records decoded has handled and committed.
    fn raw_read_position(&self) -> u64 {
        RingObserver::attach(&self.raw_name).unwrap().positions().1
    }

    fn raw_depth(&self) -> u64 {
        RingObserver::attach(&self.raw_name).unwrap().depth().unwrap()
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn cbor<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(value, &mut out).unwrap();
    out
}

#[derive(serde::Serialize)]
struct Doc<'a, V> {
    d: &'a str,
    s: &'a str,
    v: V,
    u: &'a str,
    n: u64,
    t: u64,
}

fn raw(topic: &str, payload: &[u8], content_type: ContentType) -> RawRecord {
    RawRecord::new(topic.as_bytes(), payload, content_type, 1_700_000_000_999).unwrap()
}

fn sensor_record(seq: u64) -> RawRecord {
    let doc = Doc {
        d: "dev00001",
        s: "sen002",
        v: seq as f64 / 2.0,
        u: "C",
        n: seq,
        t: 1_700_000_000_000 + seq,
    };
    raw("site/s1/sensor/t", &cbor(&doc), ContentType::Unknown)
}

#[test]
fn decodes_every_format_and_counts_every_reason() {
    let mut scene = Scene::new("formats");
    scene.start();
    fn doc<V>(v: V, n: u64) -> Doc<'static, V> {
        Doc {
            d: "dev1",
            s: "temp",
            v,
            u: "C",
            n,
            t: 1_700_000_000_000 + n,
        }
    }
    let records = [
        // Valid: CBOR f16 (ciborium writes 21.5 as f16), declared by content type.
        raw("site/a/sensor/t", &cbor(&doc(21.5f64, 1)), ContentType::Cbor),
        // Valid: CBOR f32, f64 and integer, recognised by the first byte.
        raw(
            "site/a/sensor/t",
            &cbor(&doc(f64::from(1.1f32), 2)),
            ContentType::Unknown,
        ),
        raw("site/a/sensor/t", &cbor(&doc(0.1f64, 3)), ContentType::Unknown),
        raw("site/a/sensor/t", &cbor(&doc(-40i64, 4)), ContentType::Unknown),
        // Valid: JSON by first byte (with unknown keys), and by content type on a CBOR topic.
        raw(
            "site/b/sensor/h",
            br#" {"d":"dev2","s":"hum","v":55.25,"n":5,"x":[1,2]}"#,
            ContentType::Unknown,
        ),
        raw(
            "cbor/legacy",
            br#"{"d":"dev3","s":"p","v":-1e3,"u":"hPa","n":6}"#,
            ContentType::Json,
        ),
        // malformed: garbage; JSON on a topic listed as CBOR; CBOR declared as JSON.
        raw("site/a/sensor/t", &[0xff, 0x00, 0x13], ContentType::Unknown),
        raw("cbor/legacy", br#"{"d":"dev3","s":"p","v":1}"#, ContentType::Unknown),
        raw("site/a/sensor/t", &cbor(&doc(1.0, 100)), ContentType::Json),
        // missing_field, bad_type, non_finite, id_too_long, empty_id.
        raw("site/a/sensor/t", br#"{"d":"dev1","s":"temp"}"#, ContentType::Unknown),
        raw("site/a/sensor/t", &cbor(&doc("21.5", 101)), ContentType::Unknown),
        raw("site/a/sensor/t", &cbor(&doc(f64::NAN, 102)), ContentType::Unknown),
        raw(
            "site/a/sensor/t",
            format!(r#"{{"d":"{}","s":"t","v":1}}"#, "d".repeat(49)).as_bytes(),
            ContentType::Unknown,
        ),
        raw(
            "site/a/sensor/t",
            &cbor(&Doc { s: "", ..doc(1.0, 103) }),
            ContentType::Unknown,
        ),
    ];
    scene.push(&records);

    let readings = scene.take_n(6);
    let got: Vec<_> = readings
        .iter()
        .map(|r| {
            (
                r.device().text().into_owned(),
                r.sensor().text().into_owned(),
                r.unit().text().into_owned(),
                r.value,
                r.seq,
            )
        })
        .collect();
    let s = |x: &str| x.to_owned();
    assert_eq!(
        got,
        [
            (s("dev1"), s("temp"), s("C"), 21.5, 1),
            (s("dev1"), s("temp"), s("C"), f64::from(1.1f32), 2),
            (s("dev1"), s("temp"), s("C"), 0.1, 3),
            (s("dev1"), s("temp"), s("C"), -40.0, 4),
            (s("dev2"), s("hum"), s(""), 55.25, 5),
            (s("dev3"), s("p"), s("hPa"), -1000.0, 6),
        ]
    );
    assert_eq!(readings[0].event_ms, 1_700_000_000_001);
    assert_eq!(readings[4].event_ms, 0);
    assert!(readings.iter().all(|r| r.received_ms == 1_700_000_000_999));
    let sources: Vec<u64> = readings.iter().map(|r| r.source).collect();
    assert_eq!(sources, (0..6).map(|i| RAW_START.wrapping_add(i)).collect::<Vec<_>>());

    wait_for("every record counted", HANG_GUARD, || {
        (scene.counter(counter::RECEIVED) == records.len() as u64).then_some(())
    });
    let expected = [
        (counter::RECEIVED, 14),
        (counter::FORWARDED, 6),
        (error_reason::MALFORMED, 3),
        (error_reason::MISSING_FIELD, 1),
        (error_reason::BAD_TYPE, 1),
        (error_reason::NON_FINITE, 1),
        (error_reason::ID_TOO_LONG, 1),
        (error_reason::EMPTY_ID, 1),
    ];
    for (name, want) in expected {
        assert_eq!(scene.counter(name), want, "{name}: {:?}", scene.counters());
    }
    // Conservation: received = forwarded + error.*.
    let counters = scene.counters();
    let errors: u64 = counters
        .iter()
        .filter(|(n, _)| n.starts_with("error."))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(
        scene.counter(counter::RECEIVED),
        scene.counter(counter::FORWARDED) + errors
    );
    assert!(scene.take().is_empty());
    wait_for("the raw ring's depth reported as 0", HANG_GUARD, || {
        let snap = StatsReader::open(&scene.stats).unwrap().snapshot();
        let raw = snap.rings.iter().find(|r| r.name == segment::RAW).unwrap();
        (raw.depth == 0).then_some(())
    });
}

#[test]
fn a_killed_decoded_neither_loses_nor_repeats_readings() {
    let mut scene = Scene::new("kill");
    // 1500 records, every 50th malformed. The readings ring holds 64, fewer than decoded's batch.
    let total = 1500u64;
    let records: Vec<RawRecord> = (1..=total)
        .map(|seq| {
            if seq % 50 == 0 {
                raw("t", &[0xa3, 0x61], ContentType::Unknown)
            } else {
                sensor_record(seq)
            }
        })
        .collect();
    let valid: Vec<u64> = (1..=total).filter(|s| s % 50 != 0).collect();
    scene.push(&records);
    let mut seen: Vec<Reading> = Vec::new();

    // Killed while blocked by backpressure: decoded fills the readings ring and waits for room,
    // having committed what it handled and published its counters. Kill it there, make some
    // room as a slow aggd would, and go again.
    for round in 0..4 {
        scene.start();
        wait_for("decoded blocked on a full readings ring", HANG_GUARD, || {
            let published = scene.published();
            let raw_handled = scene.raw_read_position().wrapping_sub(RAW_START);
            let blocked = published - seen.len() as u64 == READINGS_CAP
                && scene.counter(counter::FORWARDED) == published
                && scene.counter(counter::RECEIVED) == raw_handled;
            blocked.then_some(())
        });
        assert!(scene.raw_depth() > 0, "round {round}: raw records still queued");
        scene.kill();
        let taken = scene.take();
        assert_eq!(taken.len() as u64, READINGS_CAP);
        seen.extend(taken);
    }
    // Killed at those points, the counters are exact.
    let handled = scene.raw_read_position().wrapping_sub(RAW_START);
    let errors = handled - scene.published();
    assert_eq!(scene.counter(counter::RECEIVED), handled);
    assert_eq!(scene.counter(error_reason::MALFORMED), errors, "{:?}", scene.counters());

    // Killed at arbitrary moments while readings flow: wherever a kill lands (decoding, between
    // the readings commit and the raw commit, waiting), the restart resumes exactly.
    for round in 0..8 {
        scene.start();
        let target = seen.len() + 30 + 7 * round;
        wait_for("readings to flow", HANG_GUARD, || {
            seen.extend(scene.take());
            (seen.len() >= target).then_some(())
        });
        scene.kill();
    }

    // Killed between committing readings and committing the raw records they came from: that
    // window is too narrow to hit by timing, so the test plays the dying decoded itself (it
    // forwards part of a raw chunk and never commits it), then starts the real one.
    wait_for("no decoded running and every reading taken", HANG_GUARD, || {
        seen.extend(scene.take());
        (scene.published() == seen.len() as u64).then_some(())
    });
    let expected_skip = {
        let mut consumer = Consumer::<RawRecord>::attach(&scene.raw_name).unwrap();
        let mut producer = Producer::<Reading>::attach(&scene.readings_name).unwrap();
        let chooser = FormatChooser::new(&Decoded {
            cbor_topics: vec!["cbor/#".into()],
            ..Decoded::default()
        })
        .unwrap();
        let base = consumer.position();
        let chunk = consumer.read_chunk(100).unwrap();
        assert_eq!(chunk.len(), 100, "enough raw records left");
        let mut last_source = None;
        for (i, raw) in chunk.iter().take(40).enumerate() {
            let source = base.wrapping_add(i as u64);
            if let Ok(reading) = decode_raw(raw, &chooser, source) {
                producer.push(reading).unwrap();
                last_source = Some(source);
            }
        }
        last_source.unwrap().wrapping_sub(base) + 1
    };

    scene.start();
    wait_for("every raw record handled and every reading taken", HANG_GUARD, || {
        seen.extend(scene.take());
        (scene.raw_depth() == 0 && scene.published() == seen.len() as u64).then_some(())
    });
    let seqs: Vec<u64> = seen.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, valid, "every valid record exactly once, in order");
    for r in &seen {
        assert_eq!(r.value, r.seq as f64 / 2.0);
        assert_eq!(r.source, RAW_START.wrapping_add(r.seq - 1));
    }
    // Each start said how many raw records it skipped as already forwarded.
    let log = scene.log_text();
    let skipped: Vec<u64> = log
        .split("skipped=")
        .skip(1)
        .map(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(skipped.len(), 13, "{log}");
    assert_eq!(skipped[..5], [0; 5], "nothing to skip after a kill while blocked");
    assert_eq!(skipped[12], expected_skip, "{log}");
}

#[test]
fn sigterm_drains_the_raw_ring_and_exits_0() {
    let mut scene = Scene::new("sigterm");
    scene.start();
    let total = 700u64;
    scene.push(&(1..=total).map(sensor_record).collect::<Vec<_>>());
    // decoded fills the readings ring and waits; SIGTERM arrives with most records still queued.
    wait_for("a full readings ring", HANG_GUARD, || {
        (scene.published() == READINGS_CAP).then_some(())
    });
    scene.decoded.as_ref().unwrap().signal(SIGTERM);
    let mut seen = Vec::new();
    wait_for("decoded to exit", HANG_GUARD, || {
        seen.extend(scene.take());
        (!scene.decoded.as_mut().unwrap().alive()).then_some(())
    });
    let code = scene.decoded.take().unwrap().wait_exit(HANG_GUARD);
    assert_eq!(code, Some(0));
    seen.extend(scene.take());
    assert_eq!(
        seen.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (1..=total).collect::<Vec<_>>()
    );
    assert_eq!(scene.raw_depth(), 0);
    assert_eq!(scene.counter(counter::FORWARDED), total);
    assert!(scene.log_text().contains("drained"), "{}", scene.log_text());

    // An idle decoded stops at once too.
    scene.start();
    scene.decoded.as_ref().unwrap().signal(SIGTERM);
    assert_eq!(scene.decoded.take().unwrap().wait_exit(HANG_GUARD), Some(0));
}

#[test]
fn a_bad_config_exits_2_before_touching_anything() {
    let dir = TempDir::new("test-decoded-config");
    let prefix = format!("test-decoded-config-{}", std::process::id());
    let _guard = PrefixGuard::new(&prefix);
    for (toml, expect) in [
        ("[decoded]\nformat = \"xml\"\n", "format"),
        ("[decoded]\njson_topics = [\"a/#/b\"]\n", "decoded.json_topics"),
        ("[decoded]\nnonesuch = 1\n", "nonesuch"),
    ] {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, format!("[pipeline]\nprefix = \"{prefix}\"\n{toml}")).unwrap();
        let out = Command::new(DECODED)
            .arg("--config")
            .arg(&path)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{toml}: {stderr}");
        assert!(stderr.contains("config") && stderr.contains(expect), "{toml}: {stderr}");
    }
    let out = Command::new(DECODED).arg("--nonsense").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(DECODED)
        .args(["--config", "/nonexistent/telemetry.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        shm_ring::segment::list(&prefix).unwrap().is_empty(),
        "no segment was created or opened"
    );

    // A good config whose segments do not exist is a runtime error (1), not a config error.
    let path = dir.path().join("good.toml");
    std::fs::write(&path, format!("[pipeline]\nprefix = \"{prefix}\"\n")).unwrap();
    let out = Command::new(DECODED).arg("--config").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
}
