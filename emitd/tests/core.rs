//! emitd in core NATS mode, as a real process against a real nats-server.

mod common;

use std::process::{Command, Stdio};

use common::*;
use records::{Aggregate, FixedText};
use test_brokers::{wait_for, Nats};

#[test]
fn publishes_every_aggregate_on_its_subject_with_every_field() {
    let nats = Nats::start();
    let mut p = Pipeline::new("fields", &nats.url(), "", 1024);
    let sub = Collector::start(&nats.url(), &format!("{}.>", p.subject_prefix));
    p.start_emitd();
    let aggs = aggregates(300);
    p.push(&aggs);
    let msgs = sub.wait_count(aggs.len());
    assert_eq!(msgs.len(), aggs.len());
    // One publisher, one subscriber: core NATS keeps the order.
    for (m, a) in msgs.iter().zip(&aggs) {
        let (device, sensor) = (a.device().text().into_owned(), a.sensor().text().into_owned());
        assert_eq!(m.subject, format!("{}.{device}.{sensor}", p.subject_prefix));
        assert_eq!(m.msg_id, None);
        let v = m.json();
        assert_eq!(v["device"], device.as_str());
        assert_eq!(v["sensor"], sensor.as_str());
        assert_eq!(v["unit"], "C");
        assert_eq!(v["instance"], p.instance().as_str());
        assert_eq!(v["window_start_ms"], a.window_start_ms);
        assert_eq!(v["window_end_ms"], a.window_end_ms);
        assert_eq!(v["count"], a.count);
        assert_eq!(v["sum"], a.sum);
        assert_eq!(v["mean"], a.mean());
        assert_eq!(v["min"], a.min);
        assert_eq!(v["max"], a.max);
        assert_eq!(v["stddev"], a.stddev());
        assert_eq!(v["last"], a.last);
        assert_eq!(v["last_ms"], a.last_ms);
    }
    let s = p.wait_released(300);
    assert_eq!(s.counter("forwarded"), Some(300));
    assert_eq!(s.counter("dropped.unsafe_subject"), Some(0));
    assert_eq!(s.counter("dropped.nats_backlog_full"), Some(0));
    wait_for("the ring gauge to show an empty ring", PATIENCE, || {
        (p.ring_gauge() == 0).then_some(())
    });
    stop(&mut p);
}

#[test]
fn cbor_payloads_carry_the_same_fields() {
    let nats = Nats::start();
    let mut p = Pipeline::new("cbor", &nats.url(), "format = \"cbor\"", 64);
    let sub = Collector::start(&nats.url(), &format!("{}.>", p.subject_prefix));
    p.start_emitd();
    let a = aggregate("dev1", "temp", 7);
    p.push(&[a]);
    let m = &sub.wait_count(1)[0];
    assert_eq!(m.subject, format!("{}.dev1.temp", p.subject_prefix));
    let v: ciborium::Value = ciborium::from_reader(&m.payload[..]).unwrap();
    let map = v.as_map().unwrap();
    let get = |k: &str| {
        map.iter()
            .find(|(key, _)| key.as_text() == Some(k))
            .map(|(_, v)| v.clone())
    };
    assert_eq!(get("device").unwrap().as_text(), Some("dev1"));
    assert_eq!(get("window_end_ms").unwrap().as_integer(), Some(a.window_end_ms.into()));
    assert_eq!(get("mean").unwrap().as_float(), Some(a.mean()));
    assert_eq!(get("last_ms").unwrap().as_integer(), Some(a.last_ms.into()));
    // Every statistic: the seven, the default quantiles (p50, p90, p99) and the histogram.
    assert_eq!(map.len(), 18);
    assert_eq!(get("p99").unwrap().as_float(), Some(a.histogram.quantile(0.99)));
    let h = get("histogram").unwrap();
    let field = |k: &str| {
        h.as_map()
            .unwrap()
            .iter()
            .find(|(key, _)| key.as_text() == Some(k))
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(field("scale").as_integer(), Some(a.histogram.scale().into()));
    let positive = field("positive");
    let counts = positive
        .as_map()
        .unwrap()
        .iter()
        .find(|(k, _)| k.as_text() == Some("counts"))
        .unwrap();
    let total: u64 = counts
        .1
        .as_array()
        .unwrap()
        .iter()
        .map(|c| u64::try_from(c.as_integer().unwrap()).unwrap())
        .sum();
    assert_eq!(
        total + u64::try_from(field("zero_count").as_integer().unwrap()).unwrap(),
        a.count
    );
    stop(&mut p);
}

#[test]
fn hostile_ids_never_land_on_another_subject() {
    let nats = Nats::start();
    let mut p = Pipeline::new("hostile", &nats.url(), "", 1024);
    let prefix = p.subject_prefix.clone();
    let all = Collector::start(&nats.url(), &format!("{prefix}.>"));
    let two_tokens = Collector::start(&nats.url(), &format!("{prefix}.*.*"));
    // Where the device `a.b` or `a.*.>` would land if it were not escaped.
    let leak = Collector::start(&nats.url(), &format!("{prefix}.a.>"));
    let devices = [
        "a.b",
        "a.*.>",
        ">",
        "*",
        "with space",
        "quo\"te",
        "back\\slash",
        "tab\tx",
        "nl\r\nx",
        "%2E",
        "caf\u{e9}",
    ];
    let sensors = ["t", "x.y", ">", " ", "*"];
    let mut aggs: Vec<Aggregate> = Vec::new();
    for d in devices {
        for s in sensors {
            aggs.push(aggregate(d, s, aggs.len() as u64));
        }
    }
    // An aggregate every subscription above receives, published last: once a subscriber has
    // it, it has everything emitd published before (one connection keeps the order).
    let sentinel = aggregate("a", "end", 9999);
    // An empty id cannot be a token: dropped and counted, never published.
    let empty = Aggregate::new(b"", b"t", b"").unwrap();
    p.start_emitd();
    p.push(&aggs);
    p.push(&[empty, sentinel]);
    let n = aggs.len() + 1;
    let is_sentinel = |m: &Msg| m.subject == format!("{prefix}.a.end");
    for c in [&all, &two_tokens, &leak] {
        wait_for("the sentinel", PATIENCE, || {
            c.messages().iter().any(is_sentinel).then_some(())
        });
    }
    assert_eq!(all.count(), n, "{:?}", all.messages());
    assert_eq!(
        two_tokens.count(),
        n,
        "a message had more or fewer than two tokens: {:?}",
        all.messages()
    );
    assert_eq!(leak.count(), 1, "a hostile id leaked: {:?}", leak.messages());
    for (m, a) in all.messages().iter().zip(&aggs) {
        let tokens: Vec<&str> = m.subject[prefix.len() + 1..].split('.').collect();
        assert_eq!(tokens.len(), 2, "{}", m.subject);
        assert_eq!(
            emitd::subject::unescape(tokens[0]).unwrap(),
            a.device().bytes(),
            "{}",
            m.subject
        );
        assert_eq!(
            emitd::subject::unescape(tokens[1]).unwrap(),
            a.sensor().bytes(),
            "{}",
            m.subject
        );
        let v = m.json();
        assert_eq!(v["device"].as_str().unwrap().as_bytes(), a.device().bytes());
        assert_eq!(v["sensor"].as_str().unwrap().as_bytes(), a.sensor().bytes());
    }
    let s = p.wait_released(n as u64 + 1);
    assert_eq!(s.counter("forwarded"), Some(n as u64));
    assert_eq!(s.counter("dropped.unsafe_subject"), Some(1));
    stop(&mut p);
}

#[test]
fn nats_restart_mid_stream_drops_only_beyond_the_backlog_and_recovers() {
    let mut nats = Nats::start();
    let url = nats.url();
    let mut p = Pipeline::new("restart", &url, "max_backlog = 5", 1024);
    let mut sub = Collector::start(&url, &format!("{}.>", p.subject_prefix));
    p.start_emitd();
    // Until its first connection NATS is away for emitd too: with a backlog of 5, wait for it.
    wait_for("emitd to connect", PATIENCE, || {
        (p.counter("nats.connects") >= 1).then_some(())
    });
    let aggs = aggregates(240);

    let before = &aggs[..100];
    p.push(before);
    sub.wait_count(100);
    p.wait_released(100);

    // NATS away: the first 5 wait in the client, the other 35 are dropped and counted.
    nats.stop();
    wait_for("emitd to see the disconnect", PATIENCE, || {
        (p.counter("nats.disconnects") >= 1).then_some(())
    });
    p.push(&aggs[100..140]);
    let s = p.wait_released(140);
    assert_eq!(s.counter("forwarded"), Some(105));
    assert_eq!(s.counter("dropped.nats_backlog_full"), Some(35));

    // NATS back: emitd reconnects by itself and what comes later arrives, all of it. (The 5
    // queued during the outage are sent on reconnect, possibly before the subscriber is back:
    // core NATS does not promise them, so neither does this test.)
    nats.restart();
    sub.sync();
    wait_for("emitd to reconnect", PATIENCE, || {
        (p.counter("nats.connects") >= 2).then_some(())
    });
    let after = &aggs[140..];
    p.push(after);
    let want = keys(after);
    wait_for("every aggregate pushed after the reconnect", PATIENCE, || {
        let got: std::collections::HashSet<_> = sub.messages().iter().map(key_of).collect();
        want.is_subset(&got).then_some(())
    });
    let s = p.wait_released(240);
    assert_eq!(s.counter("forwarded"), Some(205));
    assert_eq!(s.counter("dropped.nats_backlog_full"), Some(35));
    stop(&mut p);
}

#[test]
fn sigterm_drains_the_ring_flushes_and_exits_zero() {
    let nats = Nats::start();
    let mut p = Pipeline::new("sigterm", &nats.url(), "", 4096);
    let sub = Collector::start(&nats.url(), &format!("{}.>", p.subject_prefix));
    p.start_emitd();
    let aggs = aggregates(3000);
    p.push(&aggs);
    stop(&mut p);
    assert_eq!(p.ring_positions(), (3000, 3000), "the ring was not drained");
    let s = p.stats();
    assert_conserved(&s);
    assert_eq!(s.counter("forwarded"), Some(3000));
    assert_eq!(keys(&aggs), sub.wait_count(3000).iter().map(key_of).collect());
}

#[test]
fn a_bad_config_exits_2_before_touching_anything() {
    let p = Pipeline::new("badconfig", "nats://127.0.0.1:1", "max_backlog = 0", 64);
    let out = Command::new(env!("CARGO_BIN_EXE_emitd"))
        .arg("--config")
        .arg(&p.config)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("emitd.max_backlog"), "{stderr}");
    assert_eq!(p.stats().pid, 0, "emitd attached to the stats page");
    assert_eq!(p.ring_positions(), (0, 0));
    let out = Command::new(env!("CARGO_BIN_EXE_emitd"))
        .arg("--bogus")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn keeps_running_while_nats_has_never_been_reachable() {
    // No server at all: emitd starts, queues up to max_backlog, drops and counts the rest,
    // and still exits 0 on SIGTERM.
    let port = test_brokers::free_port();
    let url = format!("nats://127.0.0.1:{port}");
    let mut p = Pipeline::with_shutdown_timeout("nonats", &url, "max_backlog = 3", 64, 1000);
    p.start_emitd();
    p.push(&aggregates(10));
    let s = p.wait_released(10);
    assert_eq!(s.counter("forwarded"), Some(3));
    assert_eq!(s.counter("dropped.nats_backlog_full"), Some(7));
    assert!(p.emitd().alive());
    stop(&mut p);
}
