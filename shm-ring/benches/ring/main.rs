//! Cross-process throughput against rtrb, one-way latency and consumer CPU of `shm-ring`.
//!
//! `cargo bench -p shm-ring --bench ring` (about 55 s on a 2-vCPU VM). Without `--bench` (for
//! example under `cargo test --benches`) it runs a sub-second smoke version of every step, whose
//! figures mean nothing.
//!
//! The bench is self-contained: the parent process creates the rings and is the producer, and
//! each consumer is this same executable re-executed with `SHM_RING_BENCH_ROLE` set. A child
//! prints `ready` once it has attached and, when done, one `result key=value…` line. Children
//! are killed and reaped on every exit path of the parent (and die with it: PR_SET_PDEATHSIG);
//! segments are removed by a `PrefixGuard`, also on panic.
//!
//! Once, with 64-byte records: the CPU of a `WaitStrategy::default()` consumer over ~2 s of an
//! idle producer and over ~2 s of 10k records/s (one record per commit).
//!
//! Then for each record size (64, 128, 256, 512 bytes):
//! 1. The API's own cost: one thread writes a batch and reads it back (shm-ring and rtrb).
//! 2. Throughput: N records (the same number of bytes for every size) through a ring of
//!    `CAPACITY` slots in chunks of up to `BATCH` (`write_chunk` + `commit_all`); the consumer
//!    process drains with `read_chunk(usize::MAX)` + `commit_all` and `WaitStrategy::spin()`,
//!    summing `seq`, reading either with `as_slices` or with `iter` (which the stages use, and
//!    which stores each record's position as it goes). Against rtrb 0.4's chunk API
//!    (`write_chunk_uninit` / `read_chunk`) between two threads of one process, with the same
//!    record type, and again with the record wrapped to 64-byte alignment, since rtrb's slot array
//!    is otherwise only 8-byte aligned. Runs are interleaved; medians are reported.
//! 3. One-way latency at 100k records/s, one record per commit, stamped with CLOCK_MONOTONIC,
//!    with a spinning consumer and with `WaitStrategy::default()`: percentiles over 1.5 s of
//!    records, and the median of those of three 0.5 s windows.
//!
//! Every figure is printed with how busy the machine was meanwhile with other work (CPU of other
//! processes, time stolen by the hypervisor, context switches per second): on a 2-vCPU machine
//! a spinning side preempted by anything else stalls the measurement.
//!
//! The last lines are one machine-readable summary per record size, starting with `ring `.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use shm_ring::segment::PrefixGuard;
use shm_ring::Record;

const ROLE_ENV: &str = "SHM_RING_BENCH_ROLE";
const PREFIX_ENV: &str = "SHM_RING_BENCH_PREFIX";
const NAME_ENV: &str = "SHM_RING_BENCH_NAME";
const BYTES_ENV: &str = "SHM_RING_BENCH_BYTES";
const COUNT_ENV: &str = "SHM_RING_BENCH_COUNT";
const WAIT_ENV: &str = "SHM_RING_BENCH_WAIT";
const WARMUP_ENV: &str = "SHM_RING_BENCH_WARMUP";
const WINDOWS_ENV: &str = "SHM_RING_BENCH_WINDOWS";
const READ_ENV: &str = "SHM_RING_BENCH_READ";

/// Slots per ring, for shm-ring and rtrb alike.
const CAPACITY: usize = 4096;
/// Records per producer chunk, for shm-ring and rtrb alike.
const BATCH: usize = 256;
/// Sequence number of the record that tells a stream consumer to stop.
const STOP: u64 = u64::MAX;
/// How long a stream consumer waits per `wait_for_records` call, as a stage that also checks for
/// shutdown would.
const STREAM_WAIT_TIMEOUT: Duration = Duration::from_millis(100);
/// A child gives up (and fails) after this long without finishing.
const CHILD_DEADLINE: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// Records

/// What the bench needs of a record, in a ring of either kind.
trait Payload: Copy + Send + 'static {
    fn make(seq: u64, stamp_ns: u64) -> Self;
    fn seq(&self) -> u64;
    fn stamp_ns(&self) -> u64;
}

/// A record that can also travel through a shm-ring ring.
trait BenchRecord: Record + Payload {}
impl<T: Record + Payload> BenchRecord for T {}

/// A record placed on its own cache line(s). Used only with rtrb, whose slot array is otherwise
/// aligned only to 8 bytes (see `rtrb_throughput`), to show what that misalignment costs it.
#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct LineAligned<T>(T);

impl<T: Payload> Payload for LineAligned<T> {
    #[inline(always)]
    fn make(seq: u64, stamp_ns: u64) -> Self {
        LineAligned(T::make(seq, stamp_ns))
    }
    #[inline(always)]
    fn seq(&self) -> u64 {
        self.0.seq()
    }
    #[inline(always)]
    fn stamp_ns(&self) -> u64 {
        self.0.stamp_ns()
    }
}

macro_rules! bench_records {
    ($($name:ident = $bytes:literal),* $(,)?) => {$(
        /// A benchmark record: sequence number, send time, and padding up to the size.
        #[repr(C)]
        #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
        struct $name {
            seq: u64,
            stamp_ns: u64,
            pad: [u64; $bytes / 8 - 2],
        }
        const _: () = assert!(std::mem::size_of::<$name>() == $bytes);
        impl Record for $name {
            const TYPE_NAME: &'static str = concat!("BenchRecord", $bytes, "/1");
        }
        impl Payload for $name {
            #[inline(always)]
            fn make(seq: u64, stamp_ns: u64) -> Self {
                $name { seq, stamp_ns, pad: [seq; $bytes / 8 - 2] }
            }
            #[inline(always)]
            fn seq(&self) -> u64 {
                self.seq
            }
            #[inline(always)]
            fn stamp_ns(&self) -> u64 {
                self.stamp_ns
            }
        }
    )*};
}

bench_records!(
    BenchRecord64 = 64,
    BenchRecord128 = 128,
    BenchRecord256 = 256,
    BenchRecord512 = 512
);

const SIZES: [usize; 4] = [64, 128, 256, 512];

/// Calls `$f::<RecordType>($args)` for the record type of `$bytes` bytes.
macro_rules! with_record {
    ($bytes:expr, $f:ident($($args:expr),*)) => {
        match $bytes {
            64 => $f::<BenchRecord64>($($args),*),
            128 => $f::<BenchRecord128>($($args),*),
            256 => $f::<BenchRecord256>($($args),*),
            512 => $f::<BenchRecord512>($($args),*),
            other => panic!("no bench record of {other} bytes"),
        }
    };
}

// The modules come after the record macros, which they use.
mod child;
mod clocks;
mod stream;
mod throughput;

use child::*;
use clocks::*;
use stream::*;
use throughput::*;

// ---------------------------------------------------------------------------------------------
// Parent: main

struct Config {
    runs: usize,
    warmup_records: u64,
    bytes_per_run: u64,
    single_thread_bytes: u64,
    max_run_secs: f64,
    latency_warmup: u64,
    latency_records: u64,
    latency_windows: u64,
    cpu_secs: f64,
}

const FULL: Config = Config {
    runs: 5,
    warmup_records: 1_000_000,
    bytes_per_run: 5_000_000_000,
    single_thread_bytes: 1_000_000_000,
    max_run_secs: 1.5,
    latency_warmup: 20_000,
    latency_records: 150_000,
    latency_windows: 3,
    cpu_secs: 2.0,
};

/// For `cargo test --benches`: every step, a few milliseconds each.
const SMOKE: Config = Config {
    runs: 1,
    warmup_records: 10_000,
    bytes_per_run: 2_000_000,
    single_thread_bytes: 2_000_000,
    max_run_secs: 1.5,
    latency_warmup: 100,
    latency_records: 600,
    latency_windows: 3,
    cpu_secs: 0.05,
};

fn machine() {
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_default();
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    println!("# machine: {cpus} CPUs, {model}; loadavg {}", loadavg.trim());
    println!("# capacity {CAPACITY} slots, producer batch {BATCH}, consumer read_chunk(usize::MAX)");
}

fn main() {
    if let Ok(role) = std::env::var(ROLE_ENV) {
        child_main(&role);
        return;
    }
    let full = std::env::args_os().any(|a| a == "--bench");
    let cfg = if full { &FULL } else { &SMOKE };
    let started = Instant::now();
    let prefix = format!("bench-ring-{}", std::process::id());
    let _guard = PrefixGuard::new(&prefix);
    machine();
    if !full {
        println!("# smoke run (pass --bench, as `cargo bench` does, for the real measurement)");
    }

    // CPU of an idle and a lightly loaded default consumer, once, with 64-byte records.
    let mut spec = StreamSpec {
        tag: "cpu-idle",
        wait: "default",
        rate: 0,
        warmup: 0,
        count: 0,
        windows: 1,
        idle: Duration::from_secs_f64(cfg.cpu_secs),
    };
    let idle_stream = stream::<BenchRecord64>(&prefix, &spec);
    println!(
        "#  64 B consumer CPU, WaitStrategy::default(), idle producer: {:.3} % of a core over {:.2} s \
         ({:.1} % from /proc ticks); {}",
        idle_stream.cpu_pct(),
        idle_stream.result["wall_ns"] as f64 / 1e9,
        idle_stream.proc_cpu_pct,
        idle_stream.load,
    );
    spec.tag = "cpu-10k";
    spec.rate = 10_000;
    spec.warmup = 1_000;
    spec.count = (10_000.0 * cfg.cpu_secs) as u64;
    let ten_k = stream::<BenchRecord64>(&prefix, &spec);
    println!(
        "#  64 B consumer CPU, WaitStrategy::default(), 10k records/s: {:.2} % of a core over {:.2} s \
         ({:.1} % from /proc ticks)",
        ten_k.cpu_pct(),
        ten_k.result["wall_ns"] as f64 / 1e9,
        ten_k.proc_cpu_pct,
    );
    describe_stream(" 64 B latency at 10k/s, default", &ten_k);

    let mut lines = Vec::new();
    for bytes in SIZES {
        let tp = with_record!(bytes, throughput(&prefix, cfg));
        let lat = with_record!(bytes, latency(&prefix, cfg));
        lines.push(format!(
            "ring record_bytes={bytes} shm_mrec_s={:.1} rtrb_mrec_s={:.1} ratio={:.2} p50_ns={} p99_ns={} p999_ns={} \
             nap_p50_ns={} nap_p99_ns={} idle_cpu_pct={:.3} cpu_10k_pct={:.2} \
             rtrb_aligned_mrec_s={:.1} ratio_aligned={:.2} shm_iter_mrec_s={:.1} ratio_iter={:.2} p99_all_ns={} p999_all_ns={} nap_p99_all_ns={} \
             spin_preempted={} other_load_cores={:.2} switches_per_s={:.0}",
            tp.shm / 1e6,
            tp.rtrb / 1e6,
            tp.shm / tp.rtrb,
            lat.spin.result["med_p50"],
            lat.spin.result["med_p99"],
            lat.spin.result["med_p999"],
            lat.nap.result["med_p50"],
            lat.nap.result["med_p99"],
            idle_stream.cpu_pct(),
            ten_k.cpu_pct(),
            tp.rtrb_aligned / 1e6,
            tp.shm / tp.rtrb_aligned,
            tp.shm_iter / 1e6,
            tp.shm_iter / tp.rtrb,
            lat.spin.result["p99"],
            lat.spin.result["p999"],
            lat.nap.result["p99"],
            lat.spin.result["preempted"],
            [tp.load, lat.spin.load, lat.nap.load, idle_stream.load, ten_k.load]
                .iter()
                .map(|l| l.other_cores)
                .fold(0.0, f64::max),
            [tp.load, lat.spin.load]
                .iter()
                .map(|l| l.switches_per_s)
                .fold(0.0, f64::max),
        ));
    }
    println!("# total {:.1} s", started.elapsed().as_secs_f64());
    for line in lines {
        println!("{line}");
    }
}
