//! emitd in JetStream mode, as a real process against a real nats-server with JetStream.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use async_nats::jetstream;
use common::*;
use records::FixedText;
use test_brokers::{wait_for, Nats};

/// Every aggregate is in the stream exactly once, with the Msg-Id emitd derives for it.
fn assert_exactly_once(url: &str, stream: &str, instance: &str, aggs: &[records::Aggregate]) {
    let msgs = consume_all(url, stream);
    let ids: HashSet<&str> = msgs
        .iter()
        .map(|m| m.msg_id.as_deref().expect("a Nats-Msg-Id"))
        .collect();
    assert_eq!(ids.len(), msgs.len(), "a Msg-Id was delivered twice");
    let got: HashSet<_> = msgs.iter().map(key_of).collect();
    assert_eq!(got.len(), msgs.len(), "an aggregate was delivered twice");
    assert_eq!(got, keys(aggs), "aggregates lost or unexpected");
    let want_ids: HashSet<String> = aggs.iter().map(|a| emitd::msg_id::of(instance, a).unwrap()).collect();
    assert_eq!(ids, want_ids.iter().map(String::as_str).collect());
}

#[test]
fn sigkill_and_restart_deliver_everything_once() {
    let nats = Nats::start_jetstream();
    let url = nats.url();
    let mut p = Pipeline::new("jskill", &url, "jetstream = true\nmax_backlog = 256", 8192);
    let stream = emitd::publisher::stream_name(&p.subject_prefix);
    p.start_emitd();
    let aggs = aggregates(6000);
    p.push(&aggs);
    let mut stored_not_released = 0;
    for round in 1..=3u64 {
        wait_for("messages in the stream", PATIENCE, || {
            (stream_count(&url, &stream) >= round * 1000).then_some(())
        });
        p.emitd().kill(); // SIGKILL, wherever it is
        let stored = stream_count(&url, &stream);
        let (_, released) = p.ring_positions();
        assert!(
            stored >= released,
            "released {released} aggregates but only {stored} are stored"
        );
        stored_not_released += stored - released;
        p.start_emitd();
    }
    wait_for("the whole stream", PATIENCE, || {
        (stream_count(&url, &stream) == 6000 && p.ring_positions().1 == 6000).then_some(())
    });
    assert_exactly_once(&url, &stream, &p.instance(), &aggs);
    let s = p.stats();
    assert_conserved(&s);
    eprintln!(
        "{stored_not_released} aggregates were stored but not yet released when emitd was killed \
         (published again, deduplicated); js.duplicates of the last process and its predecessors: {:?}",
        s.counter("js.duplicates")
    );
    stop(&mut p);
}

#[test]
fn a_republish_after_restart_is_deduplicated_by_msg_id() {
    let nats = Nats::start_jetstream();
    let url = nats.url();
    let mut p = Pipeline::new("jsdedup", &url, "jetstream = true", 1024);
    let stream = emitd::publisher::stream_name(&p.subject_prefix);
    let instance = p.instance();
    let aggs = aggregates(200);
    // What an emitd killed after publishing the first 50, before releasing them, leaves behind.
    // The stream exists already (emitd must use it as it is).
    let subjects = emitd::subject::SubjectWriter::new(&p.subject_prefix);
    with_client(&url, async |client| {
        let js = jetstream::new(client);
        js.create_stream(jetstream::stream::Config {
            name: stream.clone(),
            subjects: vec![format!("{}.>", p.subject_prefix)],
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await
        .unwrap();
        for a in &aggs[..50] {
            let subject = subjects.subject(a.device().bytes(), a.sensor().bytes()).unwrap();
            let publish = jetstream::message::PublishMessage::build()
                .payload("published by the previous emitd".into())
                .message_id(emitd::msg_id::of(&instance, a).unwrap());
            js.send_publish(subject, publish).await.unwrap().await.unwrap();
        }
    });
    p.push(&aggs);
    p.start_emitd();
    let s = p.wait_released(200);
    assert_eq!(s.counter("forwarded"), Some(200));
    assert_eq!(
        s.counter("js.duplicates"),
        Some(50),
        "the server should have acked 50 duplicates"
    );
    assert_eq!(stream_count(&url, &stream), 200);
    let msgs = consume_all(&url, &stream);
    let earlier = msgs
        .iter()
        .filter(|m| m.payload == b"published by the previous emitd")
        .count();
    assert_eq!(earlier, 50, "the first copy of each message must be the one kept");
    let ids: HashSet<_> = msgs.iter().map(|m| m.msg_id.clone().unwrap()).collect();
    assert_eq!(ids.len(), 200);
    stop(&mut p);
}

#[test]
fn nats_restart_mid_stream_loses_and_repeats_nothing() {
    let mut nats = Nats::start_jetstream();
    let url = nats.url();
    let mut p = Pipeline::new("jsrestart", &url, "jetstream = true\nmax_backlog = 128", 8192);
    let stream = emitd::publisher::stream_name(&p.subject_prefix);
    p.start_emitd();
    let aggs = aggregates(4000);
    p.push(&aggs[..3000]);
    wait_for("messages in the stream", PATIENCE, || {
        (stream_count(&url, &stream) >= 500).then_some(())
    });
    nats.restart();
    wait_for("emitd to reconnect", PATIENCE, || {
        (p.counter("nats.connects") >= 2).then_some(())
    });
    p.push(&aggs[3000..]);
    wait_for("the whole stream", PATIENCE, || {
        (stream_count(&url, &stream) == 4000 && p.ring_positions().1 == 4000).then_some(())
    });
    assert_exactly_once(&url, &stream, &p.instance(), &aggs);
    let s = p.stats();
    assert_conserved(&s);
    assert_eq!(s.counter("forwarded"), Some(4000));
    stop(&mut p);
}
