//! `shm-ring-peer`: one end of a ring, in its own process, for the cross-process tests
//! (`tests/kill.rs`). Not part of the pipeline.
//!
//! ```text
//! shm-ring-peer produce PREFIX NAME RECORD_BYTES BATCH STOP_FILE
//! shm-ring-peer consume PREFIX NAME RECORD_BYTES BATCH OUT_FILE
//! ```
//!
//! `produce` resumes after the last record any producer published (so a killed and restarted
//! producer neither skips nor repeats a sequence number) and writes chunks of 1..=BATCH records
//! until STOP_FILE exists. `consume` checks that every record is whole, appends each chunk's
//! sequence numbers to OUT_FILE, then commits the chunk; it exits 0 on the record with sequence
//! number `u64::MAX`, and 3 on a torn record.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use shm_ring::ring::WaitStrategy;
use shm_ring::{Consumer, Producer, Record, SegmentName};

macro_rules! records {
    ($($name:ident = $bytes:literal),*) => {$(
        /// A test record: a sequence number and words derived from it, so a torn record is seen.
        #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
        #[repr(C)]
        pub struct $name {
            seq: u64,
            words: [u64; $bytes / 8 - 1],
        }
        impl Record for $name {
            const TYPE_NAME: &'static str = concat!("PeerRecord", $bytes, "/1");
        }
        impl PeerRecord for $name {
            fn make(seq: u64) -> Self {
                let mut words = [0u64; $bytes / 8 - 1];
                for (i, w) in words.iter_mut().enumerate() {
                    *w = word(seq, i);
                }
                $name { seq, words }
            }
            fn seq(&self) -> u64 {
                self.seq
            }
            fn whole(&self) -> bool {
                self.words.iter().enumerate().all(|(i, w)| *w == word(self.seq, i))
            }
        }
    )*};
}

fn word(seq: u64, i: usize) -> u64 {
    seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (i as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93)
}

trait PeerRecord: Record {
    fn make(seq: u64) -> Self;
    fn seq(&self) -> u64;
    fn whole(&self) -> bool;
}

records!(Rec64 = 64, Rec128 = 128, Rec256 = 256, Rec512 = 512);

/// The end-of-stream marker for `consume`.
const END: u64 = u64::MAX;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 6 {
        eprintln!("usage: see the module docs of shm-ring/src/bin/peer.rs");
        std::process::exit(2);
    }
    let bytes: usize = args[4].parse().unwrap_or(0);
    let code = match bytes {
        64 => run::<Rec64>(&args),
        128 => run::<Rec128>(&args),
        256 => run::<Rec256>(&args),
        512 => run::<Rec512>(&args),
        _ => {
            eprintln!("record size must be 64, 128, 256 or 512");
            2
        }
    };
    std::process::exit(code);
}

fn name(prefix: &str, name: &str) -> SegmentName {
    SegmentName::new(prefix, name).unwrap_or_else(|e| panic!("{e}"))
}

fn run<T: PeerRecord>(args: &[String]) -> i32 {
    let ring = name(&args[2], &args[3]);
    let n: u64 = args[5].parse().expect("a number");
    match args[1].as_str() {
        "produce" => produce::<T>(&ring, n as usize, Path::new(&args[6])),
        "consume" => consume::<T>(&ring, n as usize, Path::new(&args[6])),
        other => {
            eprintln!("unknown mode {other}");
            2
        }
    }
}

/// A small xorshift generator: chunk sizes only need to vary, not to be good random numbers.
fn next_rand(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn produce<T: PeerRecord>(ring: &SegmentName, batch: usize, stop: &Path) -> i32 {
    let mut producer = Producer::<T>::attach(ring).expect("attach producer");
    let mut seq = producer.last_published().map_or(0, |r| r.seq() + 1);
    let mut rng = u64::from(std::process::id()) | 1;
    let mut last_check = Instant::now();
    loop {
        if last_check.elapsed() > Duration::from_millis(5) {
            if stop.exists() {
                return 0;
            }
            last_check = Instant::now();
        }
        let want = 1 + (next_rand(&mut rng) as usize % batch);
        if producer
            .wait_for_slots(want, &WaitStrategy::default(), Duration::from_millis(20))
            .expect("wait")
            == 0
        {
            continue;
        }
        let mut chunk = producer.write_chunk(want).expect("chunk");
        for slot in chunk.iter_mut() {
            *slot = T::make(seq);
            seq += 1;
        }
        chunk.commit_all();
    }
}

fn consume<T: PeerRecord>(ring: &SegmentName, batch: usize, out: &Path) -> i32 {
    let mut consumer = Consumer::<T>::attach(ring).expect("attach consumer");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out)
        .expect("open output");
    let mut seqs: Vec<u8> = Vec::with_capacity(batch * 8);
    loop {
        if consumer
            .wait_for_records(&WaitStrategy::default(), Duration::from_secs(1))
            .expect("wait")
            == 0
        {
            continue;
        }
        let chunk = consumer.read_chunk(batch).expect("chunk");
        seqs.clear();
        let mut end = false;
        for r in chunk.iter() {
            if r.seq() == END {
                end = true;
                break;
            }
            if !r.whole() {
                eprintln!("torn record at seq {}", r.seq());
                return 3;
            }
            seqs.extend_from_slice(&r.seq().to_le_bytes());
        }
        // One write per chunk, before the commit: a kill in between yields a duplicate, never a gap.
        file.write_all(&seqs).expect("write output");
        if end {
            return 0;
        }
        chunk.commit_all();
    }
}
