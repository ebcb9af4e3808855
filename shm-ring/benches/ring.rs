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
use std::io::{BufRead, BufReader, Write};
use std::mem::MaybeUninit;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use shm_ring::ring::{RingOptions, WaitStrategy};
use shm_ring::segment::PrefixGuard;
use shm_ring::{Consumer, Producer, Record, SegmentName};

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

// ---------------------------------------------------------------------------------------------
// Clocks

/// CLOCK_MONOTONIC in ns: the same clock in every process, unlike `Instant`'s origin.
#[inline(always)]
fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// User + system CPU time of this process in ns, and its voluntary and involuntary context
/// switches (sleeps, and preemptions by other work).
fn self_usage() -> (u64, u64, u64) {
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    assert_eq!(rc, 0, "getrusage failed");
    let tv = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1000;
    (
        tv(ru.ru_utime) + tv(ru.ru_stime),
        ru.ru_nvcsw as u64,
        ru.ru_nivcsw as u64,
    )
}

/// Involuntary context switches of the calling thread: how often other work preempted it.
fn thread_preemptions() -> u64 {
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    assert_eq!(rc, 0, "getrusage failed");
    ru.ru_nivcsw as u64
}

/// utime + stime of another process from /proc/<pid>/stat, in clock ticks.
fn proc_cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name start at field 3 (state); utime and stime
    // are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn clock_ticks_per_sec() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// Busy (user, nice, system, irq, softirq) and stolen time of the whole machine, in clock ticks,
/// and the number of context switches since boot.
fn machine_ticks() -> (u64, u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    let ctxt = stat
        .lines()
        .find_map(|l| l.strip_prefix("ctxt "))
        .and_then(|c| c.trim().parse().ok())
        .unwrap_or(0);
    // user nice system idle iowait irq softirq steal (guest time is included in user)
    (at(0) + at(1) + at(2) + at(5) + at(6), at(7), ctxt)
}

/// CPU time of this process and of its reaped children, in ns.
fn our_cpu_ns() -> u64 {
    let mut total = 0;
    for who in [libc::RUSAGE_SELF, libc::RUSAGE_CHILDREN] {
        // SAFETY: an all-zero rusage is a valid value of this plain C struct.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `ru` is a valid, writable rusage.
        if unsafe { libc::getrusage(who, &mut ru) } == 0 {
            let tv = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1000;
            total += tv(ru.ru_utime) + tv(ru.ru_stime);
        }
    }
    total
}

/// How busy the machine was with other work while a figure was measured: CPU used by processes
/// other than this bench and its children, and time the hypervisor stole, both in cores; and
/// context switches per second, machine-wide (the bench's own spinning sides make few, so a high
/// rate means other processes waking up, each of which can preempt a spinning side for
/// microseconds even when they use little CPU). Call `load` only after every child started since
/// `start` has been reaped.
struct LoadMeter {
    wall_ns: u64,
    busy: u64,
    steal: u64,
    ctxt: u64,
    ours_ns: u64,
}

#[derive(Clone, Copy)]
struct Load {
    other_cores: f64,
    steal_cores: f64,
    switches_per_s: f64,
}

impl LoadMeter {
    fn start() -> Self {
        let (busy, steal, ctxt) = machine_ticks();
        LoadMeter {
            wall_ns: now_ns(),
            busy,
            steal,
            ctxt,
            ours_ns: our_cpu_ns(),
        }
    }

    fn load(&self) -> Load {
        let (busy, steal, ctxt) = machine_ticks();
        let secs = (now_ns() - self.wall_ns) as f64 / 1e9;
        let tick = 1.0 / clock_ticks_per_sec() as f64;
        let ours = (our_cpu_ns() - self.ours_ns) as f64 / 1e9;
        Load {
            other_cores: (((busy - self.busy) as f64 * tick - ours) / secs).max(0.0),
            steal_cores: (steal - self.steal) as f64 * tick / secs,
            switches_per_s: (ctxt - self.ctxt) as f64 / secs,
        }
    }
}

impl std::fmt::Display for Load {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "other load {:.2} cores, steal {:.2} cores, {:.0} context switches/s",
            self.other_cores, self.steal_cores, self.switches_per_s
        )
    }
}

/// Spins until CLOCK_MONOTONIC reaches `t`; returns the time it read last.
#[inline(always)]
fn spin_until(t: u64) -> u64 {
    loop {
        let now = now_ns();
        if now >= t {
            return now;
        }
        std::hint::spin_loop();
    }
}

// ---------------------------------------------------------------------------------------------
// Child processes

/// A consumer child. Killed and reaped on drop, whatever path the parent leaves by.
struct Peer {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Peer {
    fn spawn(role: &str, name: &SegmentName, bytes: usize, env: &[(&str, String)]) -> Peer {
        let exe = std::env::current_exe().expect("current_exe");
        let mut cmd = Command::new(exe);
        cmd.env(ROLE_ENV, role)
            .env(PREFIX_ENV, name.prefix())
            .env(NAME_ENV, name.name())
            .env(BYTES_ENV, bytes.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn consumer child");
        let out = BufReader::new(child.stdout.take().expect("child stdout"));
        let mut peer = Peer { child, out };
        let line = peer.line();
        assert_eq!(line.trim(), "ready", "child {role} did not report ready");
        peer
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.out.read_line(&mut line).expect("read from child");
        line
    }

    /// True while the child has not exited.
    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Reads the child's `result` line and waits for it to exit successfully.
    fn finish(mut self) -> HashMap<String, u64> {
        let line = self.line();
        let status = self.child.wait().expect("wait for child");
        assert!(status.success(), "consumer child failed: {status}; last line {line:?}");
        let rest = line
            .trim()
            .strip_prefix("result")
            .unwrap_or_else(|| panic!("unexpected child output {line:?}"));
        rest.split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.parse().expect("numeric result")))
            .collect()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn env_var(key: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| panic!("{key} not set"))
}

fn env_u64(key: &str) -> u64 {
    env_var(key).parse().unwrap_or_else(|_| panic!("{key} is not a number"))
}

fn wait_strategy(name: &str) -> WaitStrategy {
    match name {
        "spin" => WaitStrategy::spin(),
        "default" => WaitStrategy::default(),
        other => panic!("unknown wait strategy {other}"),
    }
}

fn child_main(role: &str) {
    // Die with the parent, even if it is killed, so no consumer is left spinning.
    // SAFETY: PR_SET_PDEATHSIG takes a signal number and has no memory-safety preconditions.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) };
    let name = SegmentName::new(&env_var(PREFIX_ENV), &env_var(NAME_ENV)).expect("segment name");
    let bytes = env_u64(BYTES_ENV) as usize;
    let result = match role {
        "throughput" => with_record!(
            bytes,
            consume_throughput(&name, env_u64(COUNT_ENV), env_var(READ_ENV) == "iter")
        ),
        "stream" => with_record!(
            bytes,
            consume_stream(
                &name,
                wait_strategy(&env_var(WAIT_ENV)),
                env_u64(WARMUP_ENV),
                env_u64(COUNT_ENV),
                env_u64(WINDOWS_ENV),
                env_var(READ_ENV) == "iter"
            )
        ),
        other => panic!("unknown role {other}"),
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "result {result}").expect("write result");
    out.flush().expect("flush result");
}

fn say_ready() {
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready").expect("write ready");
    out.flush().expect("flush ready");
}

/// Throughput consumer: drains `n` records, summing their sequence numbers, and reports when it
/// saw the last one. With `iter` it walks each chunk with `ReadChunk::iter` (what the stages do;
/// it stores each record's position in the consumer's line as it goes), otherwise with
/// `ReadChunk::as_slices`.
fn consume_throughput<T: BenchRecord>(name: &SegmentName, n: u64, iter: bool) -> String {
    let mut consumer = Consumer::<T>::attach(name).expect("attach consumer");
    let spin = WaitStrategy::spin();
    let deadline = Instant::now() + CHILD_DEADLINE;
    say_ready();
    let preempted0 = thread_preemptions();
    let (mut seen, mut sum, mut chunks) = (0u64, 0u64, 0u64);
    while seen < n {
        let chunk = consumer.read_chunk(usize::MAX).expect("read_chunk");
        if chunk.is_empty() {
            consumer
                .wait_for_records(&spin, Duration::from_secs(1))
                .expect("wait_for_records");
            assert!(
                Instant::now() < deadline,
                "throughput consumer timed out after {seen} records"
            );
            continue;
        }
        if iter {
            for r in chunk.iter() {
                sum = sum.wrapping_add(r.seq());
            }
        } else {
            let (a, b) = chunk.as_slices();
            for r in a.iter().chain(b) {
                sum = sum.wrapping_add(r.seq());
            }
        }
        seen += chunk.len() as u64;
        chunks += 1;
        chunk.commit_all();
    }
    let end_ns = now_ns();
    let preempted = thread_preemptions() - preempted0;
    format!("end_ns={end_ns} sum={sum} seen={seen} chunks={chunks} preempted={preempted}")
}

/// Stream consumer: records the one-way latency of the `count` records after the first `warmup`
/// until the STOP record, and its own CPU time from `ready` to STOP. Reports percentiles over all
/// samples and over each of `windows` consecutive windows of them.
fn consume_stream<T: BenchRecord>(
    name: &SegmentName,
    wait: WaitStrategy,
    warmup: u64,
    count: u64,
    windows: u64,
    iter: bool,
) -> String {
    let mut consumer = Consumer::<T>::attach(name).expect("attach consumer");
    // Filled (so every page is touched) before the measurement: no page fault lands in it.
    let mut lat = vec![u64::MAX; count as usize];
    let deadline = Instant::now() + CHILD_DEADLINE;
    let (mut records, mut chunks) = (0u64, 0u64);
    say_ready();
    let (usage0, wall0) = (self_usage(), now_ns());
    loop {
        let chunk = consumer.read_chunk(usize::MAX).expect("read_chunk");
        if chunk.is_empty() {
            consumer
                .wait_for_records(&wait, STREAM_WAIT_TIMEOUT)
                .expect("wait_for_records");
            assert!(
                Instant::now() < deadline,
                "stream consumer timed out after {records} records"
            );
            continue;
        }
        let t = now_ns();
        chunks += 1;
        // Handles one record; true on STOP.
        let mut handle = |r: &T| {
            if r.seq() == STOP {
                return true;
            }
            if let Some(slot) = r.seq().checked_sub(warmup).and_then(|i| lat.get_mut(i as usize)) {
                *slot = t.saturating_sub(r.stamp_ns());
            }
            records += 1;
            false
        };
        let stop = if iter {
            chunk.iter().any(&mut handle)
        } else {
            let (a, b) = chunk.as_slices();
            a.iter().chain(b).any(&mut handle)
        };
        chunk.commit_all();
        if stop {
            break;
        }
    }
    let (usage1, wall_ns) = (self_usage(), now_ns() - wall0);
    let (cpu_ns, sleeps, preempted) = (usage1.0 - usage0.0, usage1.1 - usage0.1, usage1.2 - usage0.2);
    let mut out = format!(
        "records={records} chunks={chunks} cpu_ns={cpu_ns} wall_ns={wall_ns} sleeps={sleeps} preempted={preempted}"
    );
    assert!(!lat.contains(&u64::MAX), "stream consumer missed a record");
    if count == 0 {
        return out;
    }
    let mut window_stats = Vec::new();
    for (i, w) in lat.chunks(lat.len().div_ceil(windows.max(1) as usize)).enumerate() {
        let mut w = w.to_vec();
        w.sort_unstable();
        let stats = [0.50, 0.99, 0.999].map(|p| percentile(&w, p));
        out += &format!(" w{i}_p50={} w{i}_p99={} w{i}_p999={}", stats[0], stats[1], stats[2]);
        window_stats.push(stats);
    }
    for (k, key) in ["med_p50", "med_p99", "med_p999"].iter().enumerate() {
        let mut v: Vec<u64> = window_stats.iter().map(|s| s[k]).collect();
        v.sort_unstable();
        out += &format!(" {key}={}", v[v.len() / 2]);
    }
    lat.sort_unstable();
    let over = |ns: u64| lat.len() - lat.partition_point(|&x| x <= ns);
    out += &format!(
        " windows={} samples={} p50={} p99={} p999={} max={} over_2us={} over_10us={} over_100us={} over_1ms={}",
        window_stats.len(),
        lat.len(),
        percentile(&lat, 0.50),
        percentile(&lat, 0.99),
        percentile(&lat, 0.999),
        lat.last().copied().unwrap_or(0),
        over(2_000),
        over(10_000),
        over(100_000),
        over(1_000_000),
    );
    out
}

/// The `p` quantile of sorted `v` (nearest rank), 0 for an empty slice.
fn percentile(v: &[u64], p: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    let rank = (p * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

// ---------------------------------------------------------------------------------------------
// Parent: throughput

#[inline(always)]
fn fill<T: Payload>(slots: &mut [T], seq: &mut u64) {
    for s in slots {
        *s = T::make(*seq, 0);
        *seq += 1;
    }
}

#[inline(always)]
fn fill_uninit<T: Payload>(slots: &mut [MaybeUninit<T>], seq: &mut u64) {
    for s in slots {
        s.write(T::make(*seq, 0));
        *seq += 1;
    }
}

fn expected_sum(n: u64) -> u64 {
    n.wrapping_mul(n.wrapping_sub(1)) / 2
}

/// Records/s through a shm-ring ring to a consumer process, and how many times either side was
/// preempted meanwhile.
fn shm_throughput<T: BenchRecord>(prefix: &str, run: usize, n: u64, read: &str) -> (f64, u64) {
    let name = SegmentName::new(prefix, &format!("tp{}-{run}-{read}", std::mem::size_of::<T>())).expect("name");
    shm_ring::ring::create::<T>(&name, &RingOptions::new(CAPACITY as u64)).expect("create ring");
    let mut producer = Producer::<T>::attach(&name).expect("attach producer");
    let mut peer = Peer::spawn(
        "throughput",
        &name,
        std::mem::size_of::<T>(),
        &[(COUNT_ENV, n.to_string()), (READ_ENV, read.to_owned())],
    );

    let preempted0 = thread_preemptions();
    let start_ns = now_ns();
    let mut seq = 0u64;
    let mut idle = 0u64;
    while seq < n {
        let want = BATCH.min((n - seq) as usize);
        let mut chunk = producer.write_chunk(want).expect("write_chunk");
        if chunk.is_empty() {
            std::hint::spin_loop();
            idle += 1;
            if idle.is_multiple_of(1 << 20) {
                assert!(peer.alive(), "consumer child died");
            }
            continue;
        }
        let (a, b) = chunk.as_mut_slices();
        fill(a, &mut seq);
        fill(b, &mut seq);
        chunk.commit_all();
    }
    let preempted = thread_preemptions() - preempted0;
    let result = peer.finish();
    drop(producer);
    shm_ring::segment::remove(&name).expect("remove ring");
    assert_eq!(result["seen"], n);
    assert_eq!(result["sum"], expected_sum(n), "consumer saw wrong records");
    (
        n as f64 / ((result["end_ns"] - start_ns) as f64 / 1e9),
        preempted + result["preempted"],
    )
}

/// Records/s through an rtrb ring buffer between two threads of this process, and how many times
/// either thread was preempted meanwhile. Also returns where rtrb's slot array started relative to a 64-byte cache line: rtrb allocates
/// it on the heap with the record's alignment (8 for the bench records), so the offset varies
/// from one ring to the next, and with it how many cache lines each record straddles.
fn rtrb_throughput<T: Payload>(n: u64) -> (f64, u64, usize) {
    let (mut producer, mut consumer) = rtrb::RingBuffer::<T>::new(CAPACITY);
    let line_offset = {
        let mut chunk = producer.write_chunk_uninit(1).expect("empty ring");
        chunk.as_mut_slices().0.as_ptr() as usize % 64
    };
    let ready = AtomicBool::new(false);
    std::thread::scope(|s| {
        let ready = &ready;
        let drain = s.spawn(move || {
            let preempted0 = thread_preemptions();
            ready.store(true, Ordering::Release);
            let (mut seen, mut sum) = (0u64, 0u64);
            while seen < n {
                let k = consumer.slots();
                if k == 0 {
                    std::hint::spin_loop();
                    continue;
                }
                let chunk = consumer.read_chunk(k).expect("slots() were ready");
                let (a, b) = chunk.as_slices();
                for r in a.iter().chain(b) {
                    sum = sum.wrapping_add(r.seq());
                }
                seen += k as u64;
                chunk.commit_all();
            }
            (now_ns(), sum, thread_preemptions() - preempted0)
        });
        while !ready.load(Ordering::Acquire) {
            std::hint::spin_loop();
        }
        let preempted0 = thread_preemptions();
        let start_ns = now_ns();
        let mut seq = 0u64;
        while seq < n {
            let want = BATCH.min((n - seq) as usize);
            let mut chunk = match producer.write_chunk_uninit(want) {
                Ok(chunk) => chunk,
                Err(rtrb::chunks::ChunkError::TooFewSlots(0)) => {
                    std::hint::spin_loop();
                    continue;
                }
                Err(rtrb::chunks::ChunkError::TooFewSlots(k)) => {
                    producer.write_chunk_uninit(k).expect("k slots were free")
                }
            };
            let (a, b) = chunk.as_mut_slices();
            fill_uninit(a, &mut seq);
            fill_uninit(b, &mut seq);
            // SAFETY: `fill_uninit` initialised every slot of both slices.
            unsafe { chunk.commit_all() };
        }
        let preempted = thread_preemptions() - preempted0;
        let (end_ns, sum, drain_preempted) = drain.join().expect("rtrb consumer thread");
        assert_eq!(sum, expected_sum(n), "rtrb consumer saw wrong records");
        (
            n as f64 / ((end_ns - start_ns) as f64 / 1e9),
            preempted + drain_preempted,
            line_offset,
        )
    })
}

/// ns per record for a batch written and then read back by the same thread: the cost of the API
/// itself (slot arithmetic, checks, position stores and fences), without any cross-core traffic.
fn shm_single_thread<T: BenchRecord>(prefix: &str, n: u64, iter: bool) -> f64 {
    let name = SegmentName::new(prefix, &format!("st{}", std::mem::size_of::<T>())).expect("name");
    shm_ring::ring::create::<T>(&name, &RingOptions::new(CAPACITY as u64)).expect("create ring");
    let mut producer = Producer::<T>::attach(&name).expect("attach producer");
    let mut consumer = Consumer::<T>::attach(&name).expect("attach consumer");
    let (mut seq, mut sum) = (0u64, 0u64);
    let start = now_ns();
    while seq < n {
        let mut chunk = producer.write_chunk(BATCH).expect("write_chunk");
        let (a, b) = chunk.as_mut_slices();
        fill(a, &mut seq);
        fill(b, &mut seq);
        chunk.commit_all();
        let chunk = consumer.read_chunk(usize::MAX).expect("read_chunk");
        if iter {
            for r in chunk.iter() {
                sum = sum.wrapping_add(r.seq());
            }
        } else {
            let (a, b) = chunk.as_slices();
            for r in a.iter().chain(b) {
                sum = sum.wrapping_add(r.seq());
            }
        }
        chunk.commit_all();
    }
    let ns = (now_ns() - start) as f64 / seq as f64;
    drop((producer, consumer));
    shm_ring::segment::remove(&name).expect("remove ring");
    assert_eq!(sum, expected_sum(seq));
    ns
}

fn rtrb_single_thread<T: Payload>(n: u64) -> f64 {
    let (mut producer, mut consumer) = rtrb::RingBuffer::<T>::new(CAPACITY);
    let (mut seq, mut sum) = (0u64, 0u64);
    let start = now_ns();
    while seq < n {
        let mut chunk = producer.write_chunk_uninit(BATCH).expect("ring is empty");
        let (a, b) = chunk.as_mut_slices();
        fill_uninit(a, &mut seq);
        fill_uninit(b, &mut seq);
        // SAFETY: `fill_uninit` initialised every slot of both slices.
        unsafe { chunk.commit_all() };
        let k = consumer.slots();
        let chunk = consumer.read_chunk(k).expect("slots() were ready");
        let (a, b) = chunk.as_slices();
        for r in a.iter().chain(b) {
            sum = sum.wrapping_add(r.seq());
        }
        chunk.commit_all();
    }
    let ns = (now_ns() - start) as f64 / seq as f64;
    assert_eq!(sum, expected_sum(seq));
    ns
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

struct Throughput {
    shm: f64,
    shm_iter: f64,
    rtrb: f64,
    rtrb_aligned: f64,
    load: Load,
}

fn throughput<T: BenchRecord>(prefix: &str, cfg: &Config) -> Throughput {
    let bytes = std::mem::size_of::<T>();
    let meter = LoadMeter::start();
    // A short warm-up of each (page faults, thread and process start-up paths).
    shm_throughput::<T>(prefix, 0, cfg.warmup_records, "slices");
    shm_throughput::<T>(prefix, 0, cfg.warmup_records, "iter");
    rtrb_throughput::<T>(cfg.warmup_records);
    rtrb_throughput::<LineAligned<T>>(cfg.warmup_records);
    // The same volume of bytes per run for every record size: ~0.4 s on the reference machine.
    let mut n = cfg.bytes_per_run / bytes as u64;
    let n_first = n;
    let (mut shm, mut shm_iter, mut rtrb, mut rtrb_aligned) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // Preemptions of either side in each run, in the same order.
    let mut preempted: [Vec<u64>; 4] = Default::default();
    let mut rtrb_offsets = Vec::new();
    for run in 1..=cfg.runs {
        let (rate, p) = shm_throughput::<T>(prefix, run, n, "slices");
        shm.push(rate);
        preempted[0].push(p);
        let (rate, p) = shm_throughput::<T>(prefix, run, n, "iter");
        shm_iter.push(rate);
        preempted[1].push(p);
        let (rate, p, offset) = rtrb_throughput::<T>(n);
        rtrb.push(rate);
        preempted[2].push(p);
        rtrb_offsets.push(offset);
        let (rate, p, _) = rtrb_throughput::<LineAligned<T>>(n);
        rtrb_aligned.push(rate);
        preempted[3].push(p);
        // On a machine busy with other work a run can take many times longer (a spinning side
        // that loses its CPU stalls the other); keep the whole bench within its time budget.
        let slowest = [&shm, &shm_iter, &rtrb, &rtrb_aligned]
            .iter()
            .map(|v| v[run - 1])
            .fold(f64::INFINITY, f64::min);
        if n as f64 / slowest > cfg.max_run_secs {
            n = (n / 4).max(cfg.warmup_records);
        }
    }
    // The API's own cost, in one thread.
    let n_st = cfg.single_thread_bytes / bytes as u64;
    let (mut st_shm, mut st_shm_iter, mut st_rtrb) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..cfg.runs {
        st_shm.push(shm_single_thread::<T>(prefix, n_st, false));
        st_shm_iter.push(shm_single_thread::<T>(prefix, n_st, true));
        st_rtrb.push(rtrb_single_thread::<T>(n_st));
    }
    println!(
        "# {bytes:>3} B one thread writes {BATCH} then reads them, median of {}: shm {:.2} ns/record \
         (read with iter: {:.2}), rtrb {:.2} ns/record",
        cfg.runs,
        median(&st_shm),
        median(&st_shm_iter),
        median(&st_rtrb)
    );
    let load = meter.load();
    let n = if n == n_first {
        n.to_string()
    } else {
        format!("{n_first} (cut to {n} after a slow run)")
    };
    // "rate/preemptions" for each run.
    let fmt = |v: &[f64], p: &[u64]| {
        v.iter()
            .zip(p)
            .map(|(x, p)| format!("{:.1}/{p}", x / 1e6))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "# {bytes:>3} B throughput, N={n}, {} runs interleaved (M records/s / times preempted): shm [{}]  \
         shm read with iter [{}]  \
         rtrb [{}] (its slots started {:?} B past a cache line)  rtrb line-aligned records [{}]; {load}",
        cfg.runs,
        fmt(&shm, &preempted[0]),
        fmt(&shm_iter, &preempted[1]),
        fmt(&rtrb, &preempted[2]),
        rtrb_offsets,
        fmt(&rtrb_aligned, &preempted[3]),
    );
    Throughput {
        shm: median(&shm),
        shm_iter: median(&shm_iter),
        rtrb: median(&rtrb),
        rtrb_aligned: median(&rtrb_aligned),
        load,
    }
}

// ---------------------------------------------------------------------------------------------
// Parent: paced streams (latency and CPU)

struct Stream {
    result: HashMap<String, u64>,
    load: Load,
    /// The child's utime+stime over the paced part, from /proc, as a % of one core (10 ms
    /// ticks, so coarse; the child's own getrusage figure is in `result`).
    proc_cpu_pct: f64,
}

impl Stream {
    fn cpu_pct(&self) -> f64 {
        100.0 * self.result["cpu_ns"] as f64 / self.result["wall_ns"].max(1) as f64
    }
}

/// A paced stream of records to a consumer child.
struct StreamSpec<'a> {
    /// Part of the segment name.
    tag: &'a str,
    /// The consumer's wait strategy: "spin" or "default".
    wait: &'a str,
    /// Records per second, one per commit; 0 sends nothing for `idle`.
    rate: u64,
    /// Records sent first and not measured.
    warmup: u64,
    /// Records measured after the warm-up.
    count: u64,
    /// Consecutive windows the measured records are split into for per-window percentiles.
    windows: u64,
    idle: Duration,
}

/// Sends `spec.warmup + spec.count` records at `spec.rate` records/s, one per commit, each stamped
/// with its send time (or, with rate 0, nothing for `spec.idle`), then STOP, to a consumer child.
fn stream<T: BenchRecord>(prefix: &str, spec: &StreamSpec) -> Stream {
    let bytes = std::mem::size_of::<T>();
    let meter = LoadMeter::start();
    let name = SegmentName::new(prefix, &format!("{}{bytes}", spec.tag)).expect("name");
    shm_ring::ring::create::<T>(&name, &RingOptions::new(CAPACITY as u64)).expect("create ring");
    let mut producer = Producer::<T>::attach(&name).expect("attach producer");
    let (warmup, count) = (spec.warmup, spec.count);
    let peer = Peer::spawn(
        "stream",
        &name,
        bytes,
        &[
            (WAIT_ENV, spec.wait.to_owned()),
            (WARMUP_ENV, warmup.to_string()),
            (COUNT_ENV, count.to_string()),
            (WINDOWS_ENV, spec.windows.to_string()),
            (READ_ENV, "iter".to_owned()),
        ],
    );
    let ticks0 = proc_cpu_ticks(peer.pid());
    let wall0 = now_ns();
    let mut push = |r: T| {
        let mut r = r;
        let mut full_since = None;
        loop {
            match producer.push(r) {
                Ok(()) => return,
                Err(shm_ring::ring::PushError::Full(back)) => {
                    r = back;
                    std::hint::spin_loop();
                    // A paced stream never fills the ring unless the consumer has stopped.
                    let since = *full_since.get_or_insert_with(Instant::now);
                    assert!(
                        since.elapsed() < Duration::from_secs(10),
                        "the consumer child stopped draining"
                    );
                }
                Err(shm_ring::ring::PushError::Corrupt(_, e)) => panic!("push: {e}"),
            }
        }
    };
    if let Some(period) = 1_000_000_000u64.checked_div(spec.rate) {
        let mut next = now_ns() + period;
        for seq in 0..warmup + count {
            let t = spin_until(next);
            push(T::make(seq, t));
            // Keep the rate after a stall instead of sending a burst to catch up.
            next = (next + period).max(t);
        }
    } else {
        std::thread::sleep(spec.idle);
    }
    let ticks1 = proc_cpu_ticks(peer.pid());
    let wall1 = now_ns();
    push(T::make(STOP, now_ns()));
    let result = peer.finish();
    drop(producer);
    shm_ring::segment::remove(&name).expect("remove ring");
    let proc_cpu_pct = match (ticks0, ticks1) {
        (Some(a), Some(b)) => 100.0 * (b - a) as f64 / clock_ticks_per_sec() as f64 / ((wall1 - wall0) as f64 / 1e9),
        _ => f64::NAN,
    };
    Stream {
        result,
        load: meter.load(),
        proc_cpu_pct,
    }
}

fn describe_stream(label: &str, s: &Stream) {
    let r = &s.result;
    let windows = (0..r["windows"])
        .map(|i| {
            format!(
                "{}/{}/{}",
                r[&format!("w{i}_p50")],
                r[&format!("w{i}_p99")],
                r[&format!("w{i}_p999")]
            )
        })
        .collect::<Vec<_>>()
        .join(" ");
    println!(
        "# {label}: p50/p99/p999 ns per window [{windows}] median {}/{}/{}; all {} samples {}/{}/{} max {} ns, \
         over 2 us {}, 10 us {}, 100 us {}, 1 ms {}; {:.2} records/wake-up; consumer CPU {:.2} %, \
         {} sleeps, preempted {} times; {}",
        r["med_p50"],
        r["med_p99"],
        r["med_p999"],
        r["samples"],
        r["p50"],
        r["p99"],
        r["p999"],
        r["max"],
        r["over_2us"],
        r["over_10us"],
        r["over_100us"],
        r["over_1ms"],
        r["records"] as f64 / r["chunks"].max(1) as f64,
        s.cpu_pct(),
        r["sleeps"],
        r["preempted"],
        s.load,
    );
}

struct Latency {
    spin: Stream,
    nap: Stream,
}

fn latency<T: BenchRecord>(prefix: &str, cfg: &Config) -> Latency {
    let bytes = std::mem::size_of::<T>();
    let mut spec = StreamSpec {
        tag: "lat-spin",
        wait: "spin",
        rate: 100_000,
        warmup: cfg.latency_warmup,
        count: cfg.latency_records,
        windows: cfg.latency_windows,
        idle: Duration::ZERO,
    };
    let spin = stream::<T>(prefix, &spec);
    describe_stream(&format!("{bytes:>3} B latency at 100k/s, spin   "), &spin);
    spec.tag = "lat-nap";
    spec.wait = "default";
    let nap = stream::<T>(prefix, &spec);
    describe_stream(&format!("{bytes:>3} B latency at 100k/s, default"), &nap);
    Latency { spin, nap }
}

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
