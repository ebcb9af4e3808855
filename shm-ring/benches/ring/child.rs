//! The child processes: a consumer re-executed from this binary (`SHM_RING_BENCH_ROLE`), the
//! parent's handle on one (`Peer`), and what a child does for a throughput run or a paced stream.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdout, Command, Stdio};

use shm_ring::ring::WaitStrategy;
use shm_ring::{Consumer, SegmentName};

use super::*;

/// A consumer child. Killed and reaped on drop, whatever path the parent leaves by.
pub(crate) struct Peer {
    pub(crate) child: Child,
    pub(crate) out: BufReader<ChildStdout>,
}

impl Peer {
    pub(crate) fn spawn(role: &str, name: &SegmentName, bytes: usize, env: &[(&str, String)]) -> Peer {
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

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn line(&mut self) -> String {
        let mut line = String::new();
        self.out.read_line(&mut line).expect("read from child");
        line
    }

    /// True while the child has not exited.
    pub(crate) fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Reads the child's `result` line and waits for it to exit successfully.
    pub(crate) fn finish(mut self) -> HashMap<String, u64> {
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

pub(crate) fn env_var(key: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| panic!("{key} not set"))
}

pub(crate) fn env_u64(key: &str) -> u64 {
    env_var(key).parse().unwrap_or_else(|_| panic!("{key} is not a number"))
}

pub(crate) fn wait_strategy(name: &str) -> WaitStrategy {
    match name {
        "spin" => WaitStrategy::spin(),
        "default" => WaitStrategy::default(),
        other => panic!("unknown wait strategy {other}"),
    }
}

pub(crate) fn child_main(role: &str) {
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

pub(crate) fn say_ready() {
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready").expect("write ready");
    out.flush().expect("flush ready");
}

/// Throughput consumer: drains `n` records, summing their sequence numbers, and reports when it
/// saw the last one. With `iter` it walks each chunk with `ReadChunk::iter` (what the stages do;
/// it stores each record's position in the consumer's line as it goes), otherwise with
/// `ReadChunk::as_slices`.
pub(crate) fn consume_throughput<T: BenchRecord>(name: &SegmentName, n: u64, iter: bool) -> String {
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
pub(crate) fn consume_stream<T: BenchRecord>(
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
pub(crate) fn percentile(v: &[u64], p: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    let rank = (p * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}
