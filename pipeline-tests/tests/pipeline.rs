//! The four stages end to end, each started by hand from one config, between a real mosquitto
//! and a real nats-server: exact aggregates, malformed payloads, hostile ids, an aggd killed
//! mid-window, and two pipelines splitting one stream through a shared subscription.

use pipeline_tests::{assert_exact, expectations, field, loadgen, times, Collector, Pipeline, Published, PATIENCE};
use records::names::{counter, error_reason, stage};
use records::ExpHistogram;
use test_brokers::{wait_for, Mosquitto, Nats, TempDir};

#[test]
fn published_readings_come_out_as_exact_aggregates() {
    let mqtt = Mosquitto::start();
    let nats = Nats::start();
    let mut p = Pipeline::new("exact", &mqtt, &nats, "");
    let collector = Collector::start(&nats.url(), &p.subjects());
    p.start_all();

    let dir = TempDir::new("e2e-exact");
    let expect = dir.path().join("expect.jsonl");
    let line = loadgen(
        &mqtt,
        &format!(
            "--devices 5 --sensors 4 --count 2000 --qos 1 --conns 2 --expect {}",
            expect.display()
        ),
    );
    assert_eq!(field(&line, "sent"), 2000.0);
    let expected = expectations(&expect);
    collector.wait_covering("aggregates covering every reading", &expected);
    assert_exact(&collector.fullest(), &expected);

    // Every message is accounted for, stage by stage.
    assert_eq!(p.counter(stage::INGESTD, counter::RECEIVED), 2000);
    assert_eq!(p.counter(stage::INGESTD, counter::FORWARDED), 2000);
    assert_eq!(p.counter(stage::DECODED, counter::FORWARDED), 2000);
    assert_eq!(p.counter(stage::AGGD, counter::FORWARDED), 2000);
    for got in collector.all() {
        assert_eq!(got.text("instance"), p.prefix);
        assert_eq!(
            got.subject,
            format!("agg.{}.{}.{}", p.prefix, got.text("device"), got.text("sensor"))
        );
        assert!(got.num("window_end_ms") - got.num("window_start_ms") == 60_000.0);
    }

    // A clean stop, upstream first, exits 0 everywhere.
    for s in [stage::INGESTD, stage::DECODED, stage::AGGD, stage::EMITD] {
        assert_eq!(p.stop(s), Some(0), "{s} exit code");
    }
}

#[test]
fn malformed_payloads_are_counted_by_reason_and_the_rest_still_aggregates() {
    let mqtt = Mosquitto::start();
    let nats = Nats::start();
    let mut p = Pipeline::new("malformed", &mqtt, &nats, "");
    let collector = Collector::start(&nats.url(), &p.subjects());
    p.start_all();

    let dir = TempDir::new("e2e-malformed");
    let expect = dir.path().join("expect.jsonl");
    let line = loadgen(
        &mqtt,
        &format!(
            "--devices 4 --sensors 3 --count 3000 --qos 1 --bad 0.1 --expect {}",
            expect.display()
        ),
    );
    let bad = field(&line, "bad") as u64;
    assert!(bad > 0);
    let expected = expectations(&expect);
    collector.wait_covering("aggregates covering every reading", &expected);
    assert_exact(&collector.fullest(), &expected);

    wait_for("decoded to count everything", PATIENCE, || {
        (p.counter(stage::DECODED, counter::RECEIVED) == 3000).then_some(())
    });
    let stats = p.stats();
    let decoded = stats.stage(stage::DECODED).unwrap();
    let errors: u64 = decoded
        .counters
        .iter()
        .filter(|(n, _)| n.starts_with("error."))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(errors, bad, "every bad payload counted once: {:?}", decoded.counters);
    assert!(decoded.counter(error_reason::MALFORMED).unwrap_or(0) > 0);
    assert_eq!(decoded.counter(counter::FORWARDED), Some(3000 - bad));
    assert!(p.pid(stage::DECODED) != 0, "decoded is still running");
}

#[test]
fn hostile_ids_never_change_the_subject() {
    let mqtt = Mosquitto::start();
    let nats = Nats::start();
    let mut p = Pipeline::new("hostile", &mqtt, &nats, "");
    let everything = Collector::start(&nats.url(), ">");
    p.start_all();

    let devices = ["a.b", ">", "*", "x y", "tab\tdev", "ok", "dot."];
    let lines: Vec<String> = devices
        .iter()
        .map(|d| {
            format!(
                "{{\"d\":{},\"s\":\"temp\",\"v\":1.5,\"u\":\"C\",\"n\":1}}",
                serde_json::Value::from(*d)
            )
        })
        .collect();
    mqtt.publish_lines("site/x/sensor/temp", &lines, 1);
    wait_for("the well-behaved device's aggregate", PATIENCE, || {
        everything.all().iter().any(|m| m.text("device") == "ok").then_some(())
    });
    wait_for("every reading to be handled", PATIENCE, || {
        (p.counter(stage::DECODED, counter::RECEIVED) == devices.len() as u64).then_some(())
    });
    let prefix = format!("agg.{}.", p.prefix);
    for m in everything.all() {
        // Whatever emitd does with a hostile id (escape or refuse), a published aggregate sits
        // exactly three tokens below the prefix and is never a wildcard or split subject.
        let rest = m
            .subject
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("{} outside the prefix", m.subject));
        let tokens: Vec<&str> = rest.split('.').collect();
        assert_eq!(tokens.len(), 2, "{} has extra tokens", m.subject);
        assert!(
            tokens
                .iter()
                .all(|t| !t.is_empty() && !t.contains(['*', '>', ' ', '\t'])),
            "{}",
            m.subject
        );
        assert_eq!(tokens[1], "temp");
    }
    let emitd = p.stats().stage(stage::EMITD).unwrap().clone();
    let published = emitd.counter(counter::FORWARDED).unwrap_or(0);
    let refused: u64 = emitd
        .counters
        .iter()
        .filter(|(n, _)| n.starts_with("dropped."))
        .map(|(_, v)| v)
        .sum();
    assert!(published >= 1 && refused + published >= 1);
}

#[test]
fn an_aggd_killed_mid_window_keeps_the_samples_from_before() {
    let mqtt = Mosquitto::start();
    let nats = Nats::start();
    let mut p = Pipeline::new("aggd-kill", &mqtt, &nats, "");
    let collector = Collector::start(&nats.url(), &p.subjects());
    p.start_all();

    let dir = TempDir::new("e2e-aggd-kill");
    let first = dir.path().join("first.jsonl");
    loadgen(
        &mqtt,
        &format!(
            "--devices 2 --sensors 2 --count 400 --qos 1 --expect {}",
            first.display()
        ),
    );
    wait_for("aggd to fold the first batch", PATIENCE, || {
        (p.counter(stage::AGGD, counter::FORWARDED) >= 400).then_some(())
    });
    let others = (p.pid(stage::INGESTD), p.pid(stage::DECODED), p.pid(stage::EMITD));
    p.kill(stage::AGGD);
    p.start(stage::AGGD);
    assert_eq!(
        others,
        (p.pid(stage::INGESTD), p.pid(stage::DECODED), p.pid(stage::EMITD))
    );

    // The same keys again, sequence numbers 0..100 once more: a window that kept the first
    // batch now counts 500 per key.
    loadgen(&mqtt, "--devices 2 --sensors 2 --count 400 --qos 1 --client second");
    let first = expectations(&first);
    collector.wait_covering("aggregates covering both batches", &times(&first, 2.0));
    for (k, v) in &first {
        let got = &collector.fullest()[k];
        assert_eq!(
            got.num("count"),
            2.0 * v["count"].as_f64().unwrap(),
            "{k:?}: nothing lost or doubled across the kill"
        );
    }
}

#[test]
fn two_pipelines_in_one_shared_group_split_the_stream_and_merge_exactly() {
    let mqtt = Mosquitto::start();
    let nats = Nats::start();
    let shared = "[ingestd]\nshare_group = \"e2e\"\n[aggd]\nmax_keys = 1000\nstatistics = [\"count\", \"sum\", \"min\", \"max\", \"quantiles\", \"histogram\"]\n";
    let mut a = Pipeline::new("share-a", &mqtt, &nats, shared);
    let mut b = Pipeline::new("share-b", &mqtt, &nats, shared);
    let ca = Collector::start(&nats.url(), &a.subjects());
    let cb = Collector::start(&nats.url(), &b.subjects());
    a.start_all();
    b.start_all();

    let dir = TempDir::new("e2e-share");
    let expect = dir.path().join("expect.jsonl");
    loadgen(
        &mqtt,
        &format!(
            "--devices 3 --sensors 3 --count 3000 --qos 1 --expect {}",
            expect.display()
        ),
    );
    wait_for("both pipelines to take the whole stream", PATIENCE, || {
        (a.counter(stage::AGGD, counter::FORWARDED) + b.counter(stage::AGGD, counter::FORWARDED) == 3000).then_some(())
    });
    let (na, nb) = (
        a.counter(stage::INGESTD, counter::RECEIVED),
        b.counter(stage::INGESTD, counter::RECEIVED),
    );
    assert!(na > 0 && nb > 0, "the broker split the stream ({na} / {nb})");
    assert_eq!(na + nb, 3000);

    let expected = expectations(&expect);
    let want = |c: &Pipeline| c.counter(stage::AGGD, counter::FORWARDED) as f64;
    let (wa, wb) = (want(&a), want(&b));
    wait_for("each pipeline's aggregates to cover its share", PATIENCE, || {
        let sum = |c: &Collector| c.fullest().values().map(|p| p.num("count")).sum::<f64>();
        (sum(&ca) == wa && sum(&cb) == wb).then_some(())
    });
    let (fa, fb) = (ca.fullest(), cb.fullest());
    for (key, want) in &expected {
        let parts: Vec<&Published> = [fa.get(key), fb.get(key)].into_iter().flatten().collect();
        let count: f64 = parts.iter().map(|p| p.num("count")).sum();
        let sum: f64 = parts.iter().map(|p| p.num("sum")).sum();
        let min = parts.iter().map(|p| p.num("min")).fold(f64::INFINITY, f64::min);
        let max = parts.iter().map(|p| p.num("max")).fold(f64::NEG_INFINITY, f64::max);
        assert_eq!(count, want["count"].as_f64().unwrap(), "{key:?} count");
        assert_eq!(
            (min, max),
            (want["min"].as_f64().unwrap(), want["max"].as_f64().unwrap()),
            "{key:?}"
        );
        let s = want["sum"].as_f64().unwrap();
        assert!((sum - s).abs() <= 1e-9 * s.abs().max(1.0), "{key:?} sum");
        // The partials' histograms merge into the histogram of every value sent for the key
        // (loadgen's values, recomputed here), and so give its quantiles.
        let mut merged = ExpHistogram::new(16);
        for p in &parts {
            merged.merge(&histogram_of(p));
        }
        let (d, s) = key_index(key);
        let mut whole = ExpHistogram::new(16);
        (0..count as u64).for_each(|seq| whole.fold(loadgen::readings::value(d, s, seq, 0.5)));
        assert_eq!(merged, whole, "{key:?} histogram");
        for p in &parts {
            let h = histogram_of(p);
            for (field, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99)] {
                // Within serde_json's parsing (not correctly rounded without `float_roundtrip`).
                let (got, want) = (p.num(field), h.quantile(q));
                assert!(
                    (got - want).abs() <= 1e-15 * want.abs(),
                    "{key:?} {field} {got} is its histogram's {want}"
                );
            }
        }
    }
}

/// A published histogram (OTLP's form), of 16 buckets.
fn histogram_of(p: &Published) -> ExpHistogram {
    let h = &p.body["histogram"];
    let sign = |name: &str| -> (i32, Vec<u64>) {
        let counts = h[name]["counts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_u64().unwrap())
            .collect();
        (h[name]["offset"].as_i64().unwrap() as i32, counts)
    };
    let (pos, neg) = (sign("positive"), sign("negative"));
    let scale = h["scale"].as_i64().unwrap() as i8;
    ExpHistogram::from_otlp(
        scale,
        h["zero_count"].as_u64().unwrap(),
        (pos.0, &pos.1),
        (neg.0, &neg.1),
        16,
    )
    .unwrap_or_else(|| panic!("not a histogram of 16 buckets: {h}"))
}

/// loadgen's device and sensor numbers of a key.
fn key_index((device, sensor): &(String, String)) -> (u32, u32) {
    let number = |id: &str, prefix: &str| id.strip_prefix(prefix).unwrap().parse::<u32>().unwrap();
    (number(device, "dev"), number(sensor, "sen"))
}
