//! emitd's Kafka sink, as a real process against a real Kafka-protocol broker (Tansu), read back
//! with a real consumer (librdkafka). Needs the `kafka` feature (scripts/test.sh turns it on).

#![cfg(feature = "kafka")]

mod common;

use std::collections::{HashMap, HashSet};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::kafka::{read_topic, Record};
use common::*;
use test_brokers::{free_port, wait_for, Nats, Tansu};

const PARTITIONS: i32 = 3;
/// How long a read goes on after the expected count, to see any record beyond it.
const SETTLE: Duration = Duration::from_secs(2);

/// `[emitd]` lines for `sinks` and `[emitd.kafka]` with `brokers` and `extra`.
fn kafka_config(sinks: &str, brokers: &str, topic: &str, extra: &str) -> String {
    format!("sinks = {sinks}\n[emitd.kafka]\nbrokers = [\"{brokers}\"]\ntopic = \"{topic}\"\n{extra}\n")
}

fn topic(name: &str) -> String {
    format!("t{}.{name}", std::process::id())
}

/// The records keyed by their dedup id, checking that every copy of one is identical.
fn dedup(records: &[Record]) -> HashMap<String, Record> {
    let mut by_id: HashMap<String, Record> = HashMap::new();
    for r in records {
        let id = r.headers.get("dedup_id").expect("a dedup_id header").clone();
        if let Some(first) = by_id.get(&id) {
            assert_eq!(
                (&first.key, &first.value, &first.headers, first.partition),
                (&r.key, &r.value, &r.headers, r.partition),
                "copies of {id} differ"
            );
        } else {
            by_id.insert(id, r.clone());
        }
    }
    by_id
}

#[test]
fn every_aggregate_lands_once_keyed_partitioned_in_order_with_headers() {
    let kafka = Tansu::start();
    let topic = topic("exact");
    kafka.create_topic(&topic, PARTITIONS as u32);
    let extra = kafka_config("[\"kafka\"]", &kafka.bootstrap(), &topic, "linger_ms = 1");
    let mut p = Pipeline::new("kexact", "nats://127.0.0.1:1", &extra, 1024);
    p.start_emitd();
    let aggs = aggregates(600);
    p.push(&aggs);
    let s = p.wait_released(600);
    assert_eq!(s.counter("forwarded"), Some(600));
    assert_eq!(s.counter("kafka.delivered"), Some(600));
    assert_eq!(s.counter("gauge.connected.kafka"), Some(1), "{:?}", s.counters);
    assert_eq!(s.counter("gauge.backlog.kafka"), Some(0));
    assert!(s.counter("kafka.connects").unwrap_or(0) >= 1, "{:?}", s.counters);

    let records = read_topic(&kafka.bootstrap(), &topic, PARTITIONS, 600, SETTLE);
    assert_eq!(records.len(), 600, "each aggregate exactly once");
    let got: HashSet<_> = records.iter().map(Record::agg_key).collect();
    assert_eq!(got, keys(&aggs));
    let instance = p.instance();
    let mut partition_of: HashMap<&str, i32> = HashMap::new();
    let mut last_window: HashMap<&str, u64> = HashMap::new();
    for r in &records {
        let (device, sensor, window_end) = r.agg_key();
        let agg = aggregate(&device, &sensor, 0);
        assert_eq!(r.key, emitd::sinks::kafka_record::key(&agg).unwrap());
        assert_eq!(r.key, format!("{device}/{sensor}"), "plain ids are their own key");
        assert_eq!(r.headers["instance"], instance);
        assert_eq!(r.headers["window_end_ms"], window_end.to_string());
        assert_eq!(
            r.headers["dedup_id"],
            format!("{instance}.{device}.{sensor}.{window_end}")
        );
        assert_eq!(r.json()["instance"], instance.as_str());
        assert_eq!(r.json()["last_ms"], window_end - 1, "the time of last travels too");
        // Quantiles and the histogram travel in the record's value too (every sample is 2.0).
        let (v, count) = (r.json(), r.json()["count"].as_u64().unwrap());
        let p50 = v["p50"].as_f64().unwrap();
        assert!((p50 - 2.0).abs() <= 0.0055 * 2.0, "p50 {p50}");
        let counts = &v["histogram"]["positive"]["counts"];
        assert_eq!(
            counts
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_u64().unwrap())
                .sum::<u64>(),
            count
        );
        // One partition per key, and the key's aggregates in window order within it.
        assert_eq!(
            *partition_of.entry(&r.key).or_insert(r.partition),
            r.partition,
            "{} moved",
            r.key
        );
        let last = last_window.entry(&r.key).or_insert(0);
        assert!(window_end > *last, "{} out of order: {window_end} after {last}", r.key);
        *last = window_end;
    }
    let used: HashSet<i32> = partition_of.values().copied().collect();
    assert!(used.len() > 1, "111 keys all hashed to one partition: {used:?}");
    stop(&mut p);
}

#[test]
fn both_sinks_get_the_same_aggregates() {
    let kafka = Tansu::start();
    let nats = Nats::start();
    let topic = topic("both");
    kafka.create_topic(&topic, PARTITIONS as u32);
    let extra = kafka_config("[\"nats\", \"kafka\"]", &kafka.bootstrap(), &topic, "");
    let mut p = Pipeline::new("kboth", &nats.url(), &extra, 1024);
    let sub = Collector::start(&nats.url(), &format!("{}.>", p.subject_prefix));
    p.start_emitd();
    let aggs = aggregates(500);
    p.push(&aggs);
    let s = p.wait_released(500);
    assert_eq!(s.counter("forwarded"), Some(500));
    assert_eq!(s.counter("nats.delivered"), Some(500));
    assert_eq!(s.counter("kafka.delivered"), Some(500));
    assert_eq!(s.counter("gauge.connected.nats"), Some(1), "{:?}", s.counters);
    assert_eq!(s.counter("gauge.connected.kafka"), Some(1), "{:?}", s.counters);
    let on_nats: Vec<_> = sub.wait_count(500).iter().map(key_of).collect();
    let in_kafka: Vec<_> = read_topic(&kafka.bootstrap(), &topic, PARTITIONS, 500, SETTLE)
        .iter()
        .map(Record::agg_key)
        .collect();
    assert_eq!(on_nats.len(), 500);
    assert_eq!(in_kafka.len(), 500);
    let (on_nats, in_kafka): (HashSet<_>, HashSet<_>) = (on_nats.into_iter().collect(), in_kafka.into_iter().collect());
    assert_eq!(on_nats, keys(&aggs));
    assert_eq!(in_kafka, on_nats);
    stop(&mut p);
}

#[test]
fn jetstream_and_kafka_together_each_get_everything() {
    let kafka = Tansu::start();
    let nats = Nats::start_jetstream();
    let topic = topic("jsboth");
    kafka.create_topic(&topic, PARTITIONS as u32);
    let extra = format!(
        "jetstream = true\n{}",
        kafka_config("[\"nats\", \"kafka\"]", &kafka.bootstrap(), &topic, "")
    );
    let mut p = Pipeline::new("kjsboth", &nats.url(), &extra, 1024);
    let stream = emitd::publisher::stream_name(&p.subject_prefix);
    p.start_emitd();
    let aggs = aggregates(400);
    p.push(&aggs);
    let s = p.wait_released(400);
    assert_eq!(s.counter("forwarded"), Some(400));
    assert_eq!(s.counter("nats.delivered"), Some(400));
    assert_eq!(s.counter("kafka.delivered"), Some(400));
    let in_stream: HashSet<_> = consume_all(&nats.url(), &stream).iter().map(key_of).collect();
    assert_eq!(in_stream, keys(&aggs));
    let in_kafka: HashSet<_> = read_topic(&kafka.bootstrap(), &topic, PARTITIONS, 400, SETTLE)
        .iter()
        .map(Record::agg_key)
        .collect();
    assert_eq!(in_kafka, in_stream);
    stop(&mut p);
}

#[test]
fn kafka_absent_holds_its_backlog_drops_beyond_it_and_delivers_when_it_comes() {
    let nats = Nats::start();
    let port = free_port();
    let bootstrap = format!("127.0.0.1:{port}");
    let topic = topic("absent");
    let extra = kafka_config("[\"nats\", \"kafka\"]", &bootstrap, &topic, "max_backlog = 100");
    let mut p = Pipeline::new("kabsent", &nats.url(), &extra, 1024);
    let sub = Collector::start(&nats.url(), &format!("{}.>", p.subject_prefix));
    p.start_emitd();
    let aggs = aggregates(300);
    p.push(&aggs);
    // NATS gets everything while Kafka is away: Kafka holds 100 and drops the rest (counted
    // once released: after the 100 held ones, which are first in the ring).
    assert_eq!(sub.wait_count(300).len(), 300);
    wait_for("Kafka's backlog", PATIENCE, || {
        (p.counter("gauge.backlog.kafka") == 100).then_some(())
    });
    let s = p.stats();
    assert_eq!(s.counter("gauge.connected.kafka"), Some(0), "{:?}", s.counters);
    assert_eq!(s.counter("gauge.connected.nats"), Some(1), "{:?}", s.counters);
    assert_eq!(
        s.counter("received"),
        Some(0),
        "nothing released while Kafka holds the oldest"
    );
    assert_eq!(p.ring_positions().1, 0);
    // A full sink is "away" (and drops) only after AWAY_AFTER without a broker or an ack; before
    // that it is merely slow. Give it that long, and a margin for the loop's next turn.
    std::thread::sleep(emitd::sinks::kafka::AWAY_AFTER + Duration::from_secs(1));

    let kafka = Tansu::start_on(port);
    kafka.create_topic(&topic, PARTITIONS as u32);
    let s = p.wait_released(300);
    assert_eq!(s.counter("nats.delivered"), Some(300));
    assert_eq!(s.counter("kafka.delivered"), Some(100));
    assert_eq!(s.counter("dropped.kafka_backlog_full"), Some(200));
    assert_eq!(s.counter("forwarded"), Some(100));
    let in_kafka: HashSet<_> = read_topic(&kafka.bootstrap(), &topic, PARTITIONS, 100, SETTLE)
        .iter()
        .map(Record::agg_key)
        .collect();
    assert_eq!(in_kafka, keys(&aggs[..100]), "the backlog holds the oldest ones");
    wait_for("the gauges to follow", PATIENCE, || {
        let s = p.stats();
        (s.counter("gauge.connected.kafka") == Some(1) && s.counter("gauge.backlog.kafka") == Some(0)).then_some(())
    });
    stop(&mut p);
}

#[test]
fn sigkill_under_load_loses_nothing_and_copies_carry_one_dedup_id() {
    let kafka = Tansu::start();
    let topic = topic("kill");
    kafka.create_topic(&topic, PARTITIONS as u32);
    let max_backlog = 256;
    let extra = kafka_config(
        "[\"kafka\"]",
        &kafka.bootstrap(),
        &topic,
        &format!("max_backlog = {max_backlog}"),
    );
    let mut p = Pipeline::new("kkill", "nats://127.0.0.1:1", &extra, 8192);
    p.start_emitd();
    let aggs = aggregates(6000);
    p.push(&aggs);
    let kills = 3u64;
    for round in 1..=kills {
        wait_for("records released", PATIENCE, || {
            (p.ring_positions().1 >= round * 1000).then_some(())
        });
        p.emitd().kill(); // SIGKILL, wherever it is
        p.start_emitd();
    }
    let s = p.wait_released(6000);
    assert_eq!(
        s.counter("kafka.delivered"),
        Some(6000),
        "counted once each, across the kills"
    );
    let records = read_topic(&kafka.bootstrap(), &topic, PARTITIONS, 6000, SETTLE);
    let unique = dedup(&records);
    assert_eq!(unique.len(), 6000, "every aggregate at least once");
    let got: HashSet<_> = unique.values().map(Record::agg_key).collect();
    assert_eq!(got, keys(&aggs), "after dedup, exactly the aggregates");
    let copies = records.len() - unique.len();
    assert!(
        copies as u64 <= kills * max_backlog,
        "{copies} copies: more than what {kills} kills could have held in flight"
    );
    eprintln!("{copies} copies after {kills} SIGKILLs (bound {})", kills * max_backlog);
    stop(&mut p);
}

#[test]
fn bad_kafka_config_exits_2_naming_the_key() {
    let dir = test_brokers::TempDir::new("kbadconfig");
    let secret = dir.path().join("password");
    std::fs::write(&secret, "hunter2\n").unwrap();
    let secret = secret.to_str().unwrap().to_owned();
    for (extra, key) in [
        ("sinks = [\"kafka\"]\n".to_owned(), "emitd.kafka.brokers"),
        (
            kafka_config("[\"kafka\"]", "127.0.0.1:9", "bad topic", ""),
            "emitd.kafka.topic",
        ),
        (
            kafka_config(
                "[\"kafka\"]",
                "127.0.0.1:9",
                "t",
                "sasl_mechanism = \"PLAIN\"\nsasl_username = \"u\"\nsasl_password_file = \"/nonexistent/password\"",
            ),
            "emitd.kafka.sasl_password_file",
        ),
        (
            kafka_config(
                "[\"kafka\"]",
                "127.0.0.1:9",
                "t",
                &format!("sasl_mechanism = \"PLAIN\"\nsasl_username = \"u\"\nsasl_password_file = \"{secret}\""),
            ),
            "emitd.kafka.sasl_password_file",
        ),
    ] {
        // The secret file is readable by others (0644 by default): refused too.
        let p = Pipeline::new("kbadconfig", "nats://127.0.0.1:1", &extra, 64);
        let out = Command::new(env!("CARGO_BIN_EXE_emitd"))
            .arg("--config")
            .arg(&p.config)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(key), "{key} not named: {stderr}");
        assert!(!stderr.contains("hunter2"), "the secret was shown: {stderr}");
        assert_eq!(p.stats().pid, 0, "emitd attached to the stats page");
    }
}
