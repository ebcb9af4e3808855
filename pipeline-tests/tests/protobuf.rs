//! Protobuf readings over MQTT, end to end between a real mosquitto and a real nats-server:
//! loadgen encodes `telemetry.v1.Reading`s with prost, once declared by the MQTT 5 content type
//! `application/x-protobuf` and once undeclared on topics listed in `[decoded] proto_topics`.
//! The aggregates on NATS are exact, zeros included (proto3 leaves a 0.0 value off the wire),
//! and every malformed protobuf payload is counted once by its reason.

use pipeline_tests::{assert_exact, expectations, field, loadgen, Collector, Pipeline, PATIENCE};
use records::names::{counter, error_reason, stage};
use test_brokers::{wait_for, Mosquitto, Nats, TempDir};

/// Runs loadgen with `flags` through a pipeline configured with `extra`, then checks the
/// aggregates and the counters.
fn protobuf_end_to_end(test: &str, extra: &str, flags: &str) {
    const COUNT: u64 = 1500;
    let mqtt = Mosquitto::start();
    let nats = Nats::start();
    let mut p = Pipeline::new(test, &mqtt, &nats, extra);
    let collector = Collector::start(&nats.url(), &p.subjects());
    p.start_all();

    let dir = TempDir::new(&format!("e2e-{test}"));
    let expect = dir.path().join("expect.jsonl");
    // Device 0, sensor 0 sends exactly 0.0 at every sequence number 5 mod 11.
    let line = loadgen(
        &mqtt,
        &format!(
            "--devices 3 --sensors 2 --count {COUNT} --qos 1 --conns 2 --bad 0.05 {flags} --expect {}",
            expect.display()
        ),
    );
    assert_eq!(field(&line, "sent"), COUNT as f64);
    let bad = field(&line, "bad") as u64;
    assert!(bad > 0);
    let expected = expectations(&expect);
    collector.wait_covering("aggregates covering every reading", &expected);
    assert_exact(&collector.fullest(), &expected);
    let zero_key = &collector.fullest()[&("dev00000".to_owned(), "sen000".to_owned())];
    assert!(zero_key.num("min") < 0.0 && zero_key.num("max") > 0.0);

    wait_for("decoded to count everything", PATIENCE, || {
        (p.counter(stage::DECODED, counter::RECEIVED) == COUNT).then_some(())
    });
    let stats = p.stats();
    let decoded = stats.stage(stage::DECODED).unwrap();
    // loadgen's bad protobuf payload is a reading cut inside its sensor string.
    assert_eq!(
        decoded.counter(error_reason::MALFORMED),
        Some(bad),
        "{:?}",
        decoded.counters
    );
    assert_eq!(decoded.counter(counter::FORWARDED), Some(COUNT - bad));
    for s in [stage::INGESTD, stage::DECODED, stage::AGGD, stage::EMITD] {
        assert_eq!(p.stop(s), Some(0), "{s} exit code");
    }
}

#[test]
fn protobuf_declared_by_the_mqtt_content_type() {
    // decoded's fallback is CBOR: only the content type can make these protobuf.
    protobuf_end_to_end("proto-ct", "[decoded]\nformat = \"cbor\"\n", "--proto");
}

#[test]
fn protobuf_chosen_by_proto_topics() {
    protobuf_end_to_end(
        "proto-topics",
        "[decoded]\nformat = \"cbor\"\nproto_topics = [\"site/+/sensor/#\"]\n",
        "--proto --no-content-type",
    );
}
