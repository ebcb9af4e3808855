//! ingestd against a real mosquitto: messages land in the raw ring whole and in order, oversize
//! ones are counted by reason, a full ring holds QoS 1 messages (or drops and counts them, when
//! configured so), a restart into a large redelivery takes every message exactly once, a broker
//! restart is survived with no later message missed, and SIGTERM exits 0.

mod support;

use std::process::Command;
use std::time::Duration;

use records::names::{counter, drop_reason, segment, session, stage};
use records::{RawRecord, RAW_TOPIC_MAX};
use shm_ring::segment::PrefixGuard;
use shm_ring::stats::StatsReader;
use shm_ring::{Consumer, SegmentName};
use test_brokers::{wait_for, Mosquitto, Process, TempDir};

const LONG: Duration = Duration::from_secs(60);

struct Pipeline {
    _guard: PrefixGuard,
    prefix: String,
    dir: TempDir,
}

impl Pipeline {
    fn new(test: &str, raw_capacity: u64) -> Pipeline {
        let prefix = format!("test-ingestd-{test}-{}", std::process::id());
        let guard = support::raw_segments(&prefix, raw_capacity);
        Pipeline {
            _guard: guard,
            prefix,
            dir: TempDir::new("ingestd-test"),
        }
    }

    fn start(&self, broker: &Mosquitto, extra: &str) -> Process {
        let config = self.dir.path().join("telemetry.toml");
        std::fs::write(
            &config,
            format!(
                "[pipeline]\nprefix = \"{}\"\n[ingestd]\nbroker = \"{}\"\ntopics = [\"site/+/sensor/+\"]\nclient_id = \"{}\"\nreconnect_min_ms = 20\nreconnect_max_ms = 200\n{extra}",
                self.prefix,
                broker.url(),
                self.prefix
            ),
        )
        .unwrap();
        Process::spawn(
            "ingestd",
            Command::new(env!("CARGO_BIN_EXE_ingestd")).arg("--config").arg(&config),
        )
    }

    fn consumer(&self) -> Consumer<RawRecord> {
        Consumer::attach(&SegmentName::new(&self.prefix, segment::RAW).unwrap()).unwrap()
    }

    fn counter(&self, name: &str) -> u64 {
        let reader = StatsReader::open(&SegmentName::new(&self.prefix, segment::STATS).unwrap()).unwrap();
        reader
            .snapshot()
            .stage(stage::INGESTD)
            .unwrap()
            .counter(name)
            .unwrap_or(0)
    }

    fn running(&self) -> bool {
        let reader = StatsReader::open(&SegmentName::new(&self.prefix, segment::STATS).unwrap()).unwrap();
        reader.snapshot().stage(stage::INGESTD).unwrap().state == Some(shm_ring::stats::StageState::Running)
    }
}

fn drain(consumer: &mut Consumer<RawRecord>, into: &mut Vec<String>) {
    let chunk = consumer.read_chunk(usize::MAX).unwrap();
    for r in chunk.iter() {
        into.push(String::from_utf8(r.payload().to_vec()).unwrap());
    }
    chunk.commit_all();
}

#[test]
fn messages_arrive_whole_in_order_and_oversize_ones_are_counted() {
    let broker = Mosquitto::start();
    let pipeline = Pipeline::new("basic", 4096);
    let mut ingestd = pipeline.start(&broker, "max_payload = 100\n");
    wait_for("ingestd to subscribe", LONG, || pipeline.running().then_some(()));

    let lines: Vec<String> = (0..1000).map(|i| format!("message-{i:05}")).collect();
    broker.publish_lines("site/s1/sensor/temp", &lines, 1);
    broker.publish_lines("site/s1/sensor/temp", &["x".repeat(101)], 1);
    broker.publish_lines(
        &format!("site/{}/sensor/t", "s".repeat(RAW_TOPIC_MAX)),
        &["y".into()],
        1,
    );

    let mut consumer = pipeline.consumer();
    let mut got = Vec::new();
    wait_for("1000 records", LONG, || {
        drain(&mut consumer, &mut got);
        (got.len() >= 1000 && pipeline.counter(counter::RECEIVED) == 1002).then_some(())
    });
    assert_eq!(got, lines, "every message, whole and in order");
    assert_eq!(pipeline.counter(counter::FORWARDED), 1000);
    assert_eq!(pipeline.counter(drop_reason::PAYLOAD_TOO_LARGE), 1);
    assert_eq!(pipeline.counter(drop_reason::TOPIC_TOO_LONG), 1);
    assert_eq!(pipeline.counter(drop_reason::RING_FULL), 0);

    ingestd.signal(15);
    assert_eq!(ingestd.wait_exit(LONG), Some(0));
}

#[test]
fn help_and_version_exit_0() {
    for (flag, expect) in [("--help", "usage: ingestd --config PATH"), ("--version", "ingestd 0.")] {
        let out = Command::new(env!("CARGO_BIN_EXE_ingestd")).arg(flag).output().unwrap();
        assert!(out.status.success(), "{flag}");
        assert!(String::from_utf8_lossy(&out.stdout).contains(expect), "{flag}: {out:?}");
    }
}

#[test]
fn a_full_ring_drops_and_counts_without_blocking_the_connection() {
    let broker = Mosquitto::start();
    let pipeline = Pipeline::new("full", 16);
    let _ingestd = pipeline.start(&broker, "when_ring_full = \"drop\"\n");
    wait_for("ingestd to subscribe", LONG, || pipeline.running().then_some(()));

    let lines: Vec<String> = (0..200).map(|i| format!("m{i}")).collect();
    broker.publish_lines("site/s/sensor/a", &lines, 1);
    wait_for("200 received", LONG, || {
        (pipeline.counter(counter::RECEIVED) == 200).then_some(())
    });
    assert_eq!(pipeline.counter(counter::FORWARDED), 16);
    assert_eq!(pipeline.counter(drop_reason::RING_FULL), 184);

    // The connection was never blocked: once there is room again, new messages flow.
    let mut consumer = pipeline.consumer();
    let mut got = Vec::new();
    drain(&mut consumer, &mut got);
    assert_eq!(got, lines[..16]);
    broker.publish_lines("site/s/sensor/a", &["after".into()], 1);
    wait_for("the message after the drops", LONG, || {
        drain(&mut consumer, &mut got);
        got.last().filter(|m| *m == "after").map(|_| ())
    });
}

#[test]
fn a_full_ring_holds_qos_1_messages_until_there_is_room_and_loses_none() {
    let broker = Mosquitto::start();
    let pipeline = Pipeline::new("hold", 16);
    let _ingestd = pipeline.start(&broker, "");
    wait_for("ingestd to subscribe", LONG, || pipeline.running().then_some(()));

    let lines: Vec<String> = (0..3000).map(|i| format!("m{i:05}")).collect();
    broker.publish_lines("site/s/sensor/a", &lines, 1);
    wait_for("the ring to fill", LONG, || {
        (pipeline.counter(counter::FORWARDED) == 16).then_some(())
    });
    // Held, not dropped; and only what is settled is counted as received.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(pipeline.counter(drop_reason::RING_FULL), 0);
    assert_eq!(pipeline.counter(counter::RECEIVED), 16);

    // As the ring drains, everything arrives, in order, once.
    let mut consumer = pipeline.consumer();
    let mut got = Vec::new();
    wait_for("all 3000", LONG, || {
        drain(&mut consumer, &mut got);
        (got.len() >= lines.len()).then_some(())
    });
    assert_eq!(got, lines);
    assert_eq!(pipeline.counter(drop_reason::RING_FULL), 0);
    assert_eq!(pipeline.counter(counter::RECEIVED), 3000);
    assert_eq!(pipeline.counter(counter::FORWARDED), 3000);
}

#[test]
fn a_restart_into_a_large_redelivery_takes_every_message_once() {
    let broker = Mosquitto::start();
    let pipeline = Pipeline::new("redelivery", 65536);
    let durable = "clean_start = false\nsession_expiry_s = 600\n";
    let mut consumer = pipeline.consumer();
    let mut got = Vec::new();
    let total = 40_000;
    let lines: Vec<String> = (0..total).map(|i| format!("r{i:06}")).collect();

    // Several ingestd lifetimes, each SIGKILLed while messages stream in: the broker resends,
    // with the DUP flag, whatever it sent and saw no ack for (with mosquitto 2.0.11, far more
    // than the Receive Maximum), some of which the raw ring already holds.
    let mut ingestd = pipeline.start(&broker, durable);
    wait_for("ingestd to subscribe", LONG, || pipeline.running().then_some(()));
    std::thread::scope(|scope| {
        scope.spawn(|| broker.publish_lines("site/s/sensor/r", &lines, 1));
        for _ in 0..4 {
            let before = pipeline.counter(counter::RECEIVED);
            wait_for("some progress", LONG, || {
                let now = pipeline.counter(counter::RECEIVED);
                (now > before + 2000 || now >= total).then_some(())
            });
            ingestd.kill();
            drain(&mut consumer, &mut got);
            ingestd = pipeline.start(&broker, durable);
        }
    });
    wait_for("every message", LONG, || {
        drain(&mut consumer, &mut got);
        (got.len() >= lines.len()).then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    drain(&mut consumer, &mut got);
    let mut sorted = got.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), got.len(), "no message taken twice");
    assert_eq!(sorted, lines, "no message lost");
    assert!(
        pipeline.counter(drop_reason::DUPLICATE) > 0,
        "the kills left redeliveries to recognise"
    );
    assert_eq!(
        pipeline.counter(counter::RECEIVED),
        pipeline.counter(counter::FORWARDED) + pipeline.counter(drop_reason::DUPLICATE)
    );
}

#[test]
fn a_broker_restart_is_survived_and_no_later_message_is_missed() {
    let mut broker = Mosquitto::start();
    let pipeline = Pipeline::new("restart", 65536);
    let _ingestd = pipeline.start(&broker, "");
    wait_for("ingestd to subscribe", LONG, || pipeline.running().then_some(()));
    let mut consumer = pipeline.consumer();
    let mut got = Vec::new();

    broker.publish_lines("site/a/sensor/b", &["before".into()], 1);
    wait_for("the first message", LONG, || {
        drain(&mut consumer, &mut got);
        (!got.is_empty()).then_some(())
    });

    broker.restart();
    // The broker lost its subscriptions (no persistence): probe until ingestd has re-subscribed.
    let mut probe = 0;
    wait_for("ingestd to re-subscribe", LONG, || {
        probe += 1;
        broker.publish_lines("site/a/sensor/b", &[format!("probe-{probe}")], 1);
        std::thread::sleep(Duration::from_millis(100));
        drain(&mut consumer, &mut got);
        got.iter().any(|m| m.starts_with("probe-")).then_some(())
    });

    let after: Vec<String> = (0..2000).map(|i| format!("after-{i}")).collect();
    broker.publish_lines("site/a/sensor/b", &after, 1);
    wait_for("every message after the restart", LONG, || {
        drain(&mut consumer, &mut got);
        (got.iter().filter(|m| m.starts_with("after-")).count() >= 2000).then_some(())
    });
    let tail: Vec<&String> = got.iter().filter(|m| m.starts_with("after-")).collect();
    assert_eq!(tail.len(), 2000);
    assert!(
        tail.iter().zip(&after).all(|(a, b)| *a == b),
        "in order, none missed, none repeated"
    );
    // The restarted broker (no persistence) had no session for ingestd: counted, not silent.
    assert!(pipeline.counter(session::CONNECTS) >= 2);
    assert!(pipeline.counter(session::SESSION_LOST) >= 1);
    assert!(pipeline.counter(session::CONNECTION_ERRORS) >= 1);
}

/// A predecessor SIGKILLed after committing a batch to the raw ring but before publishing its
/// counters (a window of a few instructions) left records no counter knows about: the next
/// ingestd counts them as received and forwarded, so the ring and the stats page balance again.
#[test]
fn a_batch_its_predecessor_did_not_live_to_count_is_counted_at_start() {
    let broker = Mosquitto::start();
    let pipeline = Pipeline::new("uncounted", 1024);
    {
        // The "predecessor": three records published, no counter written.
        let mut producer =
            shm_ring::Producer::<RawRecord>::attach(&SegmentName::new(&pipeline.prefix, segment::RAW).unwrap())
                .unwrap();
        producer
            .push_slice(&[<RawRecord as bytemuck::Zeroable>::zeroed(); 3])
            .unwrap();
    }
    let _ingestd = pipeline.start(&broker, "");
    wait_for("ingestd to subscribe", LONG, || pipeline.running().then_some(()));
    assert_eq!(pipeline.counter(counter::FORWARDED), 3);
    assert_eq!(pipeline.counter(counter::RECEIVED), 3);
    // And the next ingestd, with the two in step, adds nothing.
    drop(_ingestd);
    let _next = pipeline.start(&broker, "");
    wait_for("the next ingestd to subscribe", LONG, || {
        pipeline.running().then_some(())
    });
    assert_eq!(pipeline.counter(counter::FORWARDED), 3);
}

#[test]
fn a_bad_config_exits_2_before_touching_anything() {
    let dir = TempDir::new("ingestd-bad-config");
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[ingestd]\nqos = 7\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ingestd"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ingestd.qos = 7"));
}
