//! Crash semantics with real processes: a producer and a consumer run as separate
//! `shm-ring-peer` processes and are killed with SIGKILL at random moments, many times. Every
//! sequence number must arrive, in order, whole, and only as often as the documented duplicate
//! bound allows.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use shm_ring::ring::{create, RingObserver, RingOptions};
use shm_ring::segment::PrefixGuard;
use shm_ring::{Producer, Record, SegmentName};

const PEER: &str = env!("CARGO_BIN_EXE_shm-ring-peer");
const BATCH: usize = 64;
const CAPACITY: u64 = 256;

/// Mirrors `PeerRecord128` in `src/bin/peer.rs`; only used here to send the end marker.
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Rec128 {
    seq: u64,
    words: [u64; 15],
}
impl Record for Rec128 {
    const TYPE_NAME: &'static str = "PeerRecord128/1";
}

/// Owns the test's children, files and segments, and cleans all of them up on drop, including
/// when an assertion fails.
struct Scene {
    prefix: String,
    ring: SegmentName,
    dir: PathBuf,
    producer: Option<Child>,
    consumer: Option<Child>,
    _guard: PrefixGuard,
}

impl Scene {
    fn new(test: &str) -> Scene {
        let prefix = format!("test-kill-{test}-{}", std::process::id());
        let guard = PrefixGuard::new(&prefix);
        let ring = SegmentName::new(&prefix, "ring").unwrap();
        create::<Rec128>(&ring, &RingOptions::new(CAPACITY).start_position(u64::MAX - 1000)).unwrap();
        let dir = std::env::temp_dir().join(&prefix);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scene {
            prefix,
            ring,
            dir,
            producer: None,
            consumer: None,
            _guard: guard,
        }
    }

    fn spawn(&self, mode: &str, file: &Path) -> Child {
        Command::new(PEER)
            .args([mode, &self.prefix, "ring", "128", &BATCH.to_string()])
            .arg(file)
            .spawn()
            .expect("spawn shm-ring-peer")
    }

    /// Starts a producer and returns once it has attached, so that a kill that follows lands
    /// while it works rather than while it starts.
    fn start_producer(&mut self) {
        let before = self.attaches().0;
        self.producer = Some(self.spawn("produce", &self.dir.join("stop")));
        self.wait_attached(|a| a.0 > before);
    }

    /// Starts a consumer and returns once it has attached.
    fn start_consumer(&mut self) {
        let before = self.attaches().1;
        self.consumer = Some(self.spawn("consume", &self.dir.join("seqs")));
        self.wait_attached(|a| a.1 > before);
    }

    fn attaches(&self) -> (u32, u32) {
        RingObserver::attach(&self.ring).unwrap().attaches()
    }

    fn wait_attached(&self, done: impl Fn((u32, u32)) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done(self.attaches()) {
            assert!(Instant::now() < deadline, "peer did not attach");
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// SIGKILL and reap; a child that already exited is just reaped.
    fn kill(child: &mut Option<Child>) {
        if let Some(mut c) = child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the producer cleanly, sends the end marker, and waits for the consumer to finish.
    /// Returns the number of records produced.
    fn finish(&mut self) -> u64 {
        std::fs::write(self.dir.join("stop"), b"").unwrap();
        let status = self.producer.take().unwrap().wait().unwrap();
        assert!(status.success(), "producer failed: {status}");
        let mut p = Producer::<Rec128>::attach(&self.ring).expect("producer role is free once it exited");
        let produced = p.last_published().map_or(0, |r| r.seq + 1);
        let end = Rec128 {
            seq: u64::MAX,
            words: [0; 15],
        };
        while p.push(end).is_err() {
            std::thread::sleep(Duration::from_millis(1));
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut c = self.consumer.take().unwrap();
        let status = loop {
            if let Some(s) = c.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "consumer did not finish");
            std::thread::sleep(Duration::from_millis(5));
        };
        assert!(status.success(), "consumer failed (3 = torn record): {status}");
        produced
    }

    fn seqs(&self) -> Vec<u64> {
        let bytes = std::fs::read(self.dir.join("seqs")).unwrap();
        bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }
}

impl Drop for Scene {
    fn drop(&mut self) {
        Scene::kill(&mut self.producer);
        Scene::kill(&mut self.consumer);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Random delays come from a seeded generator; the seed is printed so a failure can be replayed.
struct Delays(u64);
impl Delays {
    fn new() -> Self {
        let seed = std::env::var("KILL_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("KILL_SEED={seed}");
        Delays(seed)
    }
    fn next(&mut self) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        Duration::from_micros(self.0 % 4000)
    }
}

/// Checks the consumer's log: every number from 0 to `produced` appears, in order, except that
/// after a consumer restart the log may go back by at most one chunk (`BATCH`), which is the
/// documented duplicate bound. Returns the number of duplicates.
fn check_log(seqs: &[u64], produced: u64, consumer_kills: usize) -> usize {
    let mut next = 0u64; // lowest number not yet seen
    let mut duplicates = 0;
    let mut rewinds = 0;
    let mut prev: Option<u64> = None;
    for &s in seqs {
        if let Some(p) = prev {
            if s != p + 1 {
                assert!(s <= p, "gap: {s} followed {p}");
                assert!(
                    p + 1 - s <= BATCH as u64,
                    "rewound {} records, more than one chunk",
                    p + 1 - s
                );
                rewinds += 1;
            }
        } else {
            assert_eq!(s, 0, "the log must start at 0");
        }
        if s < next {
            duplicates += 1;
        } else {
            assert_eq!(s, next, "gap before {s}");
            next = s + 1;
        }
        prev = Some(s);
    }
    assert_eq!(next, produced, "records produced but never consumed");
    assert!(
        rewinds <= consumer_kills,
        "{rewinds} rewinds but only {consumer_kills} consumer kills"
    );
    duplicates
}

const KILLS: usize = 40;

#[test]
fn producer_killed_at_random_moments_loses_and_repeats_nothing() {
    let mut scene = Scene::new("producer");
    let mut delays = Delays::new();
    scene.start_consumer();
    scene.start_producer();
    for _ in 0..KILLS {
        std::thread::sleep(delays.next());
        Scene::kill(&mut scene.producer);
        scene.start_producer();
    }
    std::thread::sleep(delays.next());
    let produced = scene.finish();
    let seqs = scene.seqs();
    assert!(produced > 0);
    // The consumer was never killed, and a restarted producer resumes after the last record it
    // published: exactly once.
    assert_eq!(check_log(&seqs, produced, 0), 0);
    eprintln!("{produced} records, {KILLS} producer kills");
}

#[test]
fn consumer_killed_at_random_moments_rereads_at_most_one_chunk() {
    let mut scene = Scene::new("consumer");
    let mut delays = Delays::new();
    scene.start_consumer();
    scene.start_producer();
    for _ in 0..KILLS {
        std::thread::sleep(delays.next());
        Scene::kill(&mut scene.consumer);
        scene.start_consumer();
    }
    std::thread::sleep(delays.next());
    let produced = scene.finish();
    let duplicates = check_log(&scene.seqs(), produced, KILLS);
    eprintln!("{produced} records, {KILLS} consumer kills, {duplicates} duplicates");
    assert!(duplicates <= KILLS * BATCH);
}

#[test]
fn both_killed_alternately_lose_nothing() {
    let mut scene = Scene::new("both");
    let mut delays = Delays::new();
    scene.start_consumer();
    scene.start_producer();
    for i in 0..KILLS {
        std::thread::sleep(delays.next());
        if i % 2 == 0 {
            Scene::kill(&mut scene.producer);
            scene.start_producer();
        } else {
            Scene::kill(&mut scene.consumer);
            scene.start_consumer();
        }
    }
    std::thread::sleep(delays.next());
    let produced = scene.finish();
    let duplicates = check_log(&scene.seqs(), produced, KILLS / 2);
    eprintln!("{produced} records, {KILLS} kills, {duplicates} duplicates");
}

#[test]
fn a_failing_test_still_removes_its_segments() {
    let prefix = format!("test-kill-panic-{}", std::process::id());
    let name = SegmentName::new(&prefix, "ring").unwrap();
    let result = std::panic::catch_unwind(|| {
        let _guard = PrefixGuard::new(&prefix);
        create::<Rec128>(&name, &RingOptions::new(8)).unwrap();
        assert!(name.path().exists());
        panic!("a test failing while it holds a segment");
    });
    assert!(result.is_err());
    assert!(!name.path().exists());
}
