//! In-process tests of rings: position arithmetic against a model, header checks against wrong,
//! corrupt, truncated, foreign and stale segments, roles, and waiting.

use std::collections::VecDeque;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use shm_ring::ring::{create, PopError, RingObserver, RingOptions, WaitStrategy};
use shm_ring::segment::{list, prepare_dir, remove_all, Created, IfExists, PrefixGuard};
use shm_ring::stats::create_stats_page;
use shm_ring::{Consumer, Error, Producer, Record, SegmentName};

#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Rec {
    seq: u64,
    value: f64,
}
impl Record for Rec {
    const TYPE_NAME: &'static str = "TestRec/1";
}

#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Other {
    seq: u64,
    value: f64,
}
impl Record for Other {
    const TYPE_NAME: &'static str = "OtherRec/1";
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A unique prefix per test case, removed (with all its segments) when dropped.
fn scratch(test: &str) -> (PrefixGuard, SegmentName) {
    let prefix = format!(
        "test-ring-{test}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let name = SegmentName::new(&prefix, "ring").unwrap();
    (PrefixGuard::new(&prefix), name)
}

fn path(name: &SegmentName) -> PathBuf {
    name.path()
}

fn rec(seq: u64) -> Rec {
    Rec {
        seq,
        value: seq as f64 * 0.5,
    }
}

#[derive(Clone, Debug)]
enum Op {
    Push(usize),
    Read { max: usize, commit: usize },
    ReattachProducer,
    ReattachConsumer,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..40).prop_map(Op::Push),
        4 => (0usize..40, 0usize..40).prop_map(|(max, commit)| Op::Read { max, commit }),
        1 => Just(Op::ReattachProducer),
        1 => Just(Op::ReattachConsumer),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any sequence of batched pushes, partial commits and re-attaches behaves like a bounded
    /// queue, including when the positions start just below u64::MAX and wrap.
    #[test]
    fn ring_matches_a_bounded_queue(cap_log in 1u32..6,
                                    start in prop_oneof![Just(0u64), Just(u64::MAX - 20), any::<u64>()],
                                    ops in proptest::collection::vec(op(), 1..80)) {
        let (_g, name) = scratch("model");
        let cap = 1u64 << cap_log;
        create::<Rec>(&name, &RingOptions::new(cap).start_position(start)).unwrap();
        let mut producer = Producer::<Rec>::attach(&name).unwrap();
        let mut consumer = Consumer::<Rec>::attach(&name).unwrap();
        let mut model = VecDeque::new();
        let mut next = 0u64;
        for op in ops {
            match op {
                Op::Push(n) => {
                    let batch: Vec<Rec> = (next..next + n as u64).map(rec).collect();
                    let took = producer.push_slice(&batch).unwrap();
                    prop_assert_eq!(took, n.min(cap as usize - model.len()));
                    for r in &batch[..took] {
                        model.push_back(*r);
                    }
                    next += took as u64;
                }
                Op::Read { max, commit } => {
                    let chunk = consumer.read_chunk(max).unwrap();
                    let got: Vec<Rec> = chunk.iter().copied().collect();
                    let want: Vec<Rec> = model.iter().take(max).copied().collect();
                    prop_assert_eq!(&got, &want);
                    let (a, b) = chunk.as_slices();
                    prop_assert_eq!(a.len() + b.len(), got.len());
                    chunk.commit(commit);
                    for _ in 0..commit.min(got.len()) {
                        model.pop_front();
                    }
                }
                Op::ReattachProducer => {
                    drop(producer);
                    producer = Producer::<Rec>::attach(&name).unwrap();
                    prop_assert_eq!(producer.last_published().map(|r| r.seq), next.checked_sub(1));
                }
                Op::ReattachConsumer => {
                    drop(consumer);
                    consumer = Consumer::<Rec>::attach(&name).unwrap();
                }
            }
            prop_assert_eq!(producer.free_slots().unwrap(), cap as usize - model.len());
            prop_assert_eq!(consumer.available().unwrap(), model.len());
            prop_assert_eq!(RingObserver::attach(&name).unwrap().depth().unwrap(), model.len() as u64);
        }
    }

    /// Random bytes written over a ring's header never crash an attach; they are refused, or
    /// (if the damage missed every checked byte) the ring still works.
    #[test]
    fn random_header_bytes_are_refused_or_harmless(offset in 0usize..128, bytes in proptest::collection::vec(any::<u8>(), 1..16)) {
        let (_g, name) = scratch("fuzz");
        create::<Rec>(&name, &RingOptions::new(8)).unwrap();
        let mut data = std::fs::read(path(&name)).unwrap();
        let end = (offset + bytes.len()).min(128);
        data[offset..end].copy_from_slice(&bytes[..end - offset]);
        std::fs::write(path(&name), &data).unwrap();
        match Producer::<Rec>::attach(&name) {
            Ok(mut p) => { p.push(rec(1)).unwrap(); }
            Err(Error::Corrupt { .. } | Error::Mismatch { .. } | Error::NotReady { .. }) => {}
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
    }
}

#[test]
fn another_record_type_is_refused_naming_both_sides() {
    let (_g, name) = scratch("mismatch");
    create::<Rec>(&name, &RingOptions::new(8)).unwrap();
    let err = Consumer::<Other>::attach(&name).err().expect("must be refused");
    let text = err.to_string();
    assert!(matches!(err, Error::Mismatch { .. }), "{text}");
    assert!(text.contains("TestRec/1") && text.contains("OtherRec/1"), "{text}");
}

#[test]
fn truncated_and_garbage_segments_are_refused_before_any_slot_is_touched() {
    let (_g, name) = scratch("truncated");
    create::<Rec>(&name, &RingOptions::new(64)).unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(path(&name)).unwrap();
    file.set_len(600).unwrap();
    let err = Producer::<Rec>::attach(&name).err().unwrap();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");

    std::fs::write(path(&name), vec![0xAB; 4096]).unwrap();
    let err = Consumer::<Rec>::attach(&name).err().unwrap();
    assert!(err.to_string().contains("bad magic"), "{err}");
    assert!(RingObserver::attach(&name).is_err());

    std::fs::write(path(&name), b"").unwrap();
    assert!(matches!(Consumer::<Rec>::attach(&name), Err(Error::NotReady { .. })));
}

#[test]
fn an_unpublished_header_is_not_ready() {
    let (_g, name) = scratch("unpublished");
    create::<Rec>(&name, &RingOptions::new(8)).unwrap();
    let mut data = std::fs::read(path(&name)).unwrap();
    data[..8].fill(0);
    std::fs::write(path(&name), &data).unwrap();
    assert!(matches!(Producer::<Rec>::attach(&name), Err(Error::NotReady { .. })));
}

#[test]
fn impossible_positions_are_reported_not_followed() {
    let (_g, name) = scratch("positions");
    create::<Rec>(&name, &RingOptions::new(8)).unwrap();
    let mut producer = Producer::<Rec>::attach(&name).unwrap();
    let mut consumer = Consumer::<Rec>::attach(&name).unwrap();
    producer.push(rec(0)).unwrap();
    // Corrupt the write position (offset 128) to run far ahead of the read position.
    let mut data = std::fs::read(path(&name)).unwrap();
    data[128..136].copy_from_slice(&1000u64.to_le_bytes());
    std::fs::write(path(&name), &data).unwrap();
    assert!(matches!(consumer.read_chunk(16), Err(Error::Corrupt { .. })));
    assert!(matches!(consumer.pop(), Err(PopError::Corrupt(_))));
    assert!(RingObserver::attach(&name).unwrap().depth().is_err());
}

#[test]
fn segments_are_created_private_and_the_stats_page_group_readable() {
    let (_g, name) = scratch("mode");
    create::<Rec>(&name, &RingOptions::new(8)).unwrap();
    assert_eq!(
        std::fs::metadata(path(&name)).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let stats = SegmentName::new(name.prefix(), "stats").unwrap();
    create_stats_page(&stats, &["a"], &[]).unwrap();
    assert_eq!(
        std::fs::metadata(path(&stats)).unwrap().permissions().mode() & 0o777,
        0o640
    );
}

#[test]
fn a_symlink_in_place_of_a_segment_is_refused() {
    let (_g, name) = scratch("symlink");
    let target = std::env::temp_dir().join(format!("shm-ring-symlink-target-{}", std::process::id()));
    std::fs::write(&target, b"").unwrap();
    prepare_dir(name.prefix()).unwrap();
    std::os::unix::fs::symlink(&target, path(&name)).unwrap();
    assert!(create::<Rec>(&name, &RingOptions::new(8)).is_err());
    assert!(Producer::<Rec>::attach(&name).is_err());
    assert_eq!(
        std::fs::metadata(&target).unwrap().len(),
        0,
        "the target was not touched"
    );
    std::fs::remove_file(&target).unwrap();
}

#[test]
fn a_segment_of_another_user_is_refused() {
    if nix::unistd::geteuid().as_raw() != 0 {
        eprintln!("skipped: needs root to give a segment to another uid");
        return;
    }
    let (_g, name) = scratch("foreign");
    create::<Rec>(&name, &RingOptions::new(8)).unwrap();
    std::os::unix::fs::chown(path(&name), Some(65534), None).unwrap();
    let err = Producer::<Rec>::attach(&name).err().unwrap();
    assert!(matches!(err, Error::ForeignOwner { owner_uid: 65534, .. }), "{err}");
    let err = create::<Rec>(&name, &RingOptions::new(8).if_exists(IfExists::Replace))
        .err()
        .unwrap();
    assert!(matches!(err, Error::ForeignOwner { .. }), "{err}");
    assert_eq!(std::fs::metadata(path(&name)).unwrap().uid(), 65534, "not replaced");
    // Nor is it read: a reader believes only a segment of its directory's owner.
    let err = RingObserver::attach(&name).err().unwrap();
    assert!(matches!(err, Error::Untrusted { .. }), "{err}");
}

#[test]
fn stale_segments_are_adopted_with_their_records_or_replaced() {
    let (_g, name) = scratch("stale");
    create::<Rec>(&name, &RingOptions::new(8)).unwrap();
    assert!(matches!(
        create::<Rec>(&name, &RingOptions::new(8)),
        Err(Error::AlreadyExists { .. })
    ));
    Producer::<Rec>::attach(&name)
        .unwrap()
        .push_slice(&[rec(1), rec(2)])
        .unwrap();

    let adopt = RingOptions::new(8).if_exists(IfExists::Adopt);
    assert_eq!(create::<Rec>(&name, &adopt).unwrap(), Created::Adopted { depth: 2 });
    assert_eq!(Consumer::<Rec>::attach(&name).unwrap().pop().unwrap(), rec(1));

    // Another capacity, another record type, or garbage: replaced, and the reason says why.
    let bigger = RingOptions::new(16).if_exists(IfExists::Adopt);
    assert!(
        matches!(create::<Rec>(&name, &bigger).unwrap(), Created::Replaced { reason } if reason.contains("capacity"))
    );
    assert!(
        matches!(create::<Other>(&name, &bigger).unwrap(), Created::Replaced { reason } if reason.contains("TestRec/1"))
    );
    std::fs::write(path(&name), vec![7u8; 100]).unwrap();
    assert!(matches!(
        create::<Other>(&name, &bigger).unwrap(),
        Created::Replaced { .. }
    ));
    assert_eq!(RingObserver::attach(&name).unwrap().depth().unwrap(), 0);
}

#[test]
fn a_ring_in_use_is_never_replaced() {
    let (_g, name) = scratch("in-use");
    create::<Rec>(&name, &RingOptions::new(8)).unwrap();
    let consumer = Consumer::<Rec>::attach(&name).unwrap();
    let replace = RingOptions::new(8).if_exists(IfExists::Replace);
    let err = create::<Rec>(&name, &replace).err().unwrap();
    assert!(matches!(err, Error::RoleHeld { role: "consumer", .. }), "{err}");
    drop(consumer);
    assert!(matches!(
        create::<Rec>(&name, &replace).unwrap(),
        Created::Replaced { .. }
    ));
    // The probe released its locks: both roles can be taken.
    let _p = Producer::<Rec>::attach(&name).unwrap();
    let _c = Consumer::<Rec>::attach(&name).unwrap();
}

#[test]
fn one_producer_and_one_consumer_at_a_time() {
    let (_g, name) = scratch("roles");
    create::<Rec>(&name, &RingOptions::new(8)).unwrap();
    let p = Producer::<Rec>::attach(&name).unwrap();
    let c = Consumer::<Rec>::attach(&name).unwrap();
    let err = Producer::<Rec>::attach(&name).err().unwrap();
    assert!(
        err.to_string().contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    assert!(matches!(
        Consumer::<Rec>::attach(&name),
        Err(Error::RoleHeld { role: "consumer", .. })
    ));
    drop((p, c));
    Producer::<Rec>::attach(&name).unwrap();
    Consumer::<Rec>::attach(&name).unwrap();
}

#[test]
fn records_read_but_not_committed_are_read_again_by_the_next_consumer() {
    let (_g, name) = scratch("uncommitted");
    create::<Rec>(&name, &RingOptions::new(8)).unwrap();
    let mut producer = Producer::<Rec>::attach(&name).unwrap();
    producer.push_slice(&[rec(1), rec(2), rec(3)]).unwrap();
    let mut consumer = Consumer::<Rec>::attach(&name).unwrap();
    let chunk = consumer.read_chunk(8).unwrap();
    assert_eq!(chunk.len(), 3);
    chunk.commit(1);
    assert_eq!(consumer.read_chunk(8).unwrap().len(), 2);
    drop(consumer); // as if killed before committing the rest
    let mut consumer = Consumer::<Rec>::attach(&name).unwrap();
    let again: Vec<u64> = consumer.read_chunk(8).unwrap().iter().map(|r| r.seq).collect();
    assert_eq!(again, [2, 3]);
}

#[test]
fn a_sleeping_consumer_is_woken_by_a_push_and_times_out_without_one() {
    let (_g, name) = scratch("wake");
    create::<Rec>(&name, &RingOptions::new(8)).unwrap();
    let mut consumer = Consumer::<Rec>::attach(&name).unwrap();
    assert_eq!(
        consumer
            .wait_for_records(&WaitStrategy::immediate(), Duration::from_millis(20))
            .unwrap(),
        0
    );
    let name2 = name.clone();
    let pusher = std::thread::spawn(move || {
        let mut producer = Producer::<Rec>::attach(&name2).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        producer.push(rec(9)).unwrap();
    });
    // A timeout far beyond any test run: only the wake-up can end this wait with a record.
    let n = consumer
        .wait_for_records(&WaitStrategy::immediate(), Duration::from_secs(3600))
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(consumer.pop().unwrap(), rec(9));
    pusher.join().unwrap();
}

#[test]
fn a_producer_waiting_for_space_is_woken_by_a_commit() {
    let (_g, name) = scratch("space");
    create::<Rec>(&name, &RingOptions::new(2)).unwrap();
    let mut producer = Producer::<Rec>::attach(&name).unwrap();
    producer.push_slice(&[rec(0), rec(1)]).unwrap();
    assert_eq!(
        producer
            .wait_for_slots(1, &WaitStrategy::default(), Duration::from_millis(5))
            .unwrap(),
        0
    );
    let name2 = name.clone();
    let popper = std::thread::spawn(move || {
        let mut consumer = Consumer::<Rec>::attach(&name2).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        consumer.pop().unwrap()
    });
    let free = producer
        .wait_for_slots(1, &WaitStrategy::immediate(), Duration::from_secs(3600))
        .unwrap();
    assert_eq!(free, 1);
    assert_eq!(popper.join().unwrap(), rec(0));
}

#[test]
fn remove_all_removes_only_its_own_prefix() {
    let (_g1, a) = scratch("prefix-a");
    let (_g2, b) = scratch("prefix-b");
    create::<Rec>(&a, &RingOptions::new(8)).unwrap();
    create::<Rec>(&SegmentName::new(a.prefix(), "second").unwrap(), &RingOptions::new(8)).unwrap();
    create::<Rec>(&b, &RingOptions::new(8)).unwrap();
    assert_eq!(list(a.prefix()).unwrap().len(), 2);
    assert_eq!(remove_all(a.prefix()).unwrap(), 2);
    assert!(list(a.prefix()).unwrap().is_empty());
    assert!(path(&b).exists());
}

#[test]
fn bad_parameters_are_clear_errors() {
    let (_g, name) = scratch("params");
    for cap in [0, 1, 3, 1000, 1 << 33] {
        let err = create::<Rec>(&name, &RingOptions::new(cap)).err().unwrap();
        assert!(err.to_string().contains("power of two"), "{err}");
    }
    assert!(matches!(Producer::<Rec>::attach(&name), Err(Error::NotFound { .. })));
}

#[test]
fn the_record_a_consumer_died_on_is_named_and_can_be_replaced_in_place() {
    let (_g, name) = scratch("poison");
    create::<Rec>(&name, &RingOptions::new(8).start_position(u64::MAX - 2)).unwrap();
    let mut producer = Producer::<Rec>::attach(&name).unwrap();
    producer.push_slice(&[rec(0), rec(1), rec(2), rec(3), rec(4)]).unwrap();
    {
        let mut consumer = Consumer::<Rec>::attach(&name).unwrap();
        let chunk = consumer.read_chunk(8).unwrap();
        // Handles records 0..=3 and "dies" on record 3 (never commits).
        for r in chunk.iter() {
            if r.seq == 3 {
                break;
            }
        }
    }
    let observer = RingObserver::attach(&name).unwrap();
    let poison = observer.processing().expect("a record was being handled");
    assert_eq!(poison, (u64::MAX - 2).wrapping_add(3), "crosses the wrap at 2^64");
    let mut consumer = Consumer::<Rec>::attach(&name).unwrap();
    assert_eq!(consumer.replace_at(poison, rec(99)).unwrap(), rec(3));
    let now: Vec<u64> = consumer.read_chunk(8).unwrap().iter().map(|r| r.seq).collect();
    assert_eq!(now, [0, 1, 2, 99, 4]);
    assert!(
        consumer
            .replace_at(consumer.position().wrapping_add(5), rec(1))
            .is_err(),
        "not a ready record"
    );
}
