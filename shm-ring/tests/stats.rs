//! The stats page: counters that survive a writer's restart, snapshots that are consistent per
//! stage while a writer is busy, the manager's state and control words, and refusal of foreign
//! pages.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use shm_ring::ring::{create, RingOptions};
use shm_ring::segment::PrefixGuard;
use shm_ring::stats::{
    create_stats_page, CounterBatch, RingSnapshot, StageState, StageWriter, StatsControl, StatsReader, CONTROL_WORDS,
    MAX_COUNTERS, MAX_NAME_LEN, MAX_RINGS, MAX_STAGES,
};
use shm_ring::{Error, Record, SegmentName};

static NEXT: AtomicU32 = AtomicU32::new(0);

fn scratch(test: &str) -> (PrefixGuard, SegmentName) {
    let prefix = format!(
        "test-stats-{test}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let name = SegmentName::new(&prefix, "stats").unwrap();
    (PrefixGuard::new(&prefix), name)
}

const STAGES: [&str; 4] = ["ingestd", "decoded", "aggd", "emitd"];
const RINGS: [(&str, u64); 3] = [("raw", 1024), ("readings", 1024), ("aggregates", 256)];

#[test]
fn every_snapshot_sees_whole_batches_while_the_writer_runs() {
    let (_g, name) = scratch("seqlock");
    create_stats_page(&name, &STAGES, &RINGS).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (name, stop) = (name.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut w = StageWriter::attach(&name, "decoded").unwrap();
            let (received, forwarded, dropped) = (
                w.counter("received").unwrap(),
                w.counter("forwarded").unwrap(),
                w.counter("dropped").unwrap(),
            );
            let mut batch = CounterBatch::default();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let n = 3 + i % 97;
                batch.add(received, n);
                batch.add(forwarded, n - i % 3);
                batch.add(dropped, i % 3);
                w.flush(&mut batch);
                // A stage flushes once per batch of records, not back to back.
                for _ in 0..200 {
                    std::hint::spin_loop();
                }
            }
            i
        })
    };
    let reader = StatsReader::open(&name).unwrap();
    let mut checked = 0;
    while checked < 20_000 {
        let snap = reader.snapshot();
        let s = snap.stage("decoded").unwrap();
        if s.counters.len() < 3 {
            assert!(!writer.is_finished(), "the writer died before registering its counters");
            continue;
        }
        assert!(s.consistent);
        let (r, f, d) = (
            s.counter("received").unwrap(),
            s.counter("forwarded").unwrap(),
            s.counter("dropped").unwrap(),
        );
        assert_eq!(r, f + d, "a snapshot mixed two batches");
        checked += 1;
    }
    stop.store(true, Ordering::Relaxed);
    assert!(writer.join().unwrap() > 0);
}

#[test]
fn counters_survive_a_writer_restart_and_the_writer_role_is_exclusive() {
    let (_g, name) = scratch("restart");
    create_stats_page(&name, &STAGES, &RINGS).unwrap();
    let mut w = StageWriter::attach(&name, "ingestd").unwrap();
    let received = w.counter("received").unwrap();
    let ring_full = w.counter("dropped.ring_full").unwrap();
    let mut batch = CounterBatch::default();
    batch.add(received, 5);
    batch.add(ring_full, 2);
    w.flush(&mut batch);
    assert_eq!(batch.get(received), 0, "flush clears the batch");
    assert!(matches!(
        StageWriter::attach(&name, "ingestd"),
        Err(Error::RoleHeld { .. })
    ));
    drop(w);

    let mut w = StageWriter::attach(&name, "ingestd").unwrap();
    assert_eq!(w.counter("dropped.ring_full").unwrap(), ring_full);
    batch.add(received, 1);
    w.flush(&mut batch);
    // Creating the page again with the same layout keeps it, counters and all.
    create_stats_page(&name, &STAGES, &RINGS).unwrap();
    let snap = StatsReader::open(&name).unwrap().snapshot();
    let s = snap.stage("ingestd").unwrap();
    assert_eq!(
        s.counters,
        vec![("received".to_owned(), 6), ("dropped.ring_full".to_owned(), 2)]
    );
    assert_eq!(s.pid, std::process::id());
    assert!(s.heartbeat_age_ms.is_some());
}

#[test]
fn a_writer_killed_inside_a_flush_is_reported_then_repaired_by_its_successor() {
    let (_g, name) = scratch("torn");
    create_stats_page(&name, &STAGES, &RINGS).unwrap();
    let mut w = StageWriter::attach(&name, "aggd").unwrap();
    let c = w.counter("received").unwrap();
    let mut batch = CounterBatch::default();
    batch.add(c, 3);
    w.flush(&mut batch);
    drop(w);
    // Leave the seqlock odd, as a writer killed between its two stores would. The aggd slot is
    // the third stage slot; its seq word is the slot's first word.
    let path = name.path();
    let mut bytes = std::fs::read(&path).unwrap();
    let slot_size = (bytes.len() - 128 - MAX_RINGS * 128) / MAX_STAGES;
    let at = 128 + MAX_RINGS * 128 + 2 * slot_size;
    let seq = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
    bytes[at..at + 8].copy_from_slice(&(seq + 1).to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();

    let reader = StatsReader::open(&name).unwrap();
    let s = reader.snapshot().stage("aggd").unwrap().clone();
    assert!(!s.consistent);
    assert_eq!(s.counter("received"), Some(3), "each counter is still readable");
    let _w = StageWriter::attach(&name, "aggd").unwrap();
    assert!(reader.snapshot().stage("aggd").unwrap().consistent);
}

#[test]
fn control_words_state_and_ring_gauges_are_visible_to_readers() {
    let (_g, name) = scratch("control");
    create_stats_page(&name, &STAGES, &RINGS).unwrap();
    let control = StatsControl::open(&name).unwrap();
    control.stage("emitd").unwrap().set_state(StageState::Running, 4242);
    let decoded = control.stage("decoded").unwrap();
    decoded.word(0).store(7, Ordering::Relaxed);
    decoded.word(CONTROL_WORDS - 1).fetch_add(2, Ordering::Relaxed);
    assert!(control.stage("nonesuch").is_err());
    assert_eq!(decoded.heartbeat_age_ms(), None, "never beat");
    let mut w = StageWriter::attach(&name, "decoded").unwrap();
    w.set_ring_depth("raw", 17);
    let received = w.counter("received").unwrap();
    let mut batch = CounterBatch::default();
    batch.add(received, 5);
    w.flush(&mut batch);
    assert_eq!(decoded.counter("received"), Some(5));
    assert_eq!(decoded.counter("nonesuch"), None);
    let snap = StatsReader::open(&name).unwrap().snapshot();
    let emitd = snap.stage("emitd").unwrap();
    assert_eq!((emitd.state, emitd.pid), (Some(StageState::Running), 4242));
    assert_eq!(emitd.control, [0; CONTROL_WORDS]);
    let d = snap.stage("decoded").unwrap();
    assert_eq!((d.control[0], d.control[CONTROL_WORDS - 1]), (7, 2));
    assert_eq!(
        snap.rings[0],
        RingSnapshot {
            name: "raw".into(),
            depth: 17,
            capacity: 1024
        }
    );
    assert_eq!(snap.stages.len(), 4);
    assert!(decoded.heartbeat_age_ms().unwrap() < 60_000);
    assert_eq!(decoded.pid(), std::process::id(), "the stage wrote its pid on attach");
    w.set_state(StageState::Running);
    assert_eq!(decoded.state(), Some(StageState::Running));
    // The stage's writer and the manager's words do not touch each other's fields.
    assert_eq!(decoded.word(0).load(Ordering::Relaxed), 7);
}

#[test]
fn a_page_with_other_names_is_replaced_and_a_foreign_one_refused() {
    let (_g, name) = scratch("replace");
    create_stats_page(&name, &STAGES, &RINGS).unwrap();
    {
        let mut w = StageWriter::attach(&name, "emitd").unwrap();
        let c = w.counter("published").unwrap();
        let mut b = CounterBatch::default();
        b.add(c, 1);
        w.flush(&mut b);
    }
    create_stats_page(&name, &["only"], &[]).unwrap();
    let snap = StatsReader::open(&name).unwrap().snapshot();
    assert_eq!(snap.stages.len(), 1);
    assert!(snap.stage("emitd").is_none());

    let path = name.path();
    std::fs::write(&path, vec![0x5A; 4096]).unwrap();
    let err = StatsReader::open(&name).err().unwrap();
    assert!(err.to_string().contains("corrupt or foreign"), "{err}");
    // A ring is not a stats page.
    #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    #[repr(C)]
    struct R(u64);
    impl Record for R {
        const TYPE_NAME: &'static str = "R/1";
    }
    let ring = SegmentName::new(name.prefix(), "ring").unwrap();
    create::<R>(&ring, &RingOptions::new(8)).unwrap();
    assert!(StatsReader::open(&ring).is_err());
}

#[test]
fn bad_names_are_clear_errors() {
    let (_g, name) = scratch("names");
    let long = "x".repeat(MAX_NAME_LEN + 1);
    assert!(create_stats_page(&name, &[long.as_str()], &[]).is_err());
    assert!(create_stats_page(&name, &["a"; MAX_STAGES + 1], &[]).is_err());
    create_stats_page(&name, &["a"], &[]).unwrap();
    let mut w = StageWriter::attach(&name, "a").unwrap();
    assert!(w.counter("").is_err());
    for i in 0..MAX_COUNTERS {
        w.counter(&format!("c{i}")).unwrap();
    }
    assert!(w.counter("one-too-many").is_err());
    assert!(StageWriter::attach(&name, "b").is_err());
}
