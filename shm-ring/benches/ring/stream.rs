//! The parent's paced streams: one-way latency at a fixed rate, and the CPU of a waiting consumer.

use shm_ring::ring::RingOptions;
use shm_ring::{Producer, SegmentName};

use super::*;

pub(crate) struct Stream {
    pub(crate) result: HashMap<String, u64>,
    pub(crate) load: Load,
    /// The child's utime+stime over the paced part, from /proc, as a % of one core (10 ms
    /// ticks, so coarse; the child's own getrusage figure is in `result`).
    pub(crate) proc_cpu_pct: f64,
}

impl Stream {
    pub(crate) fn cpu_pct(&self) -> f64 {
        100.0 * self.result["cpu_ns"] as f64 / self.result["wall_ns"].max(1) as f64
    }
}

/// A paced stream of records to a consumer child.
pub(crate) struct StreamSpec<'a> {
    /// Part of the segment name.
    pub(crate) tag: &'a str,
    /// The consumer's wait strategy: "spin" or "default".
    pub(crate) wait: &'a str,
    /// Records per second, one per commit; 0 sends nothing for `idle`.
    pub(crate) rate: u64,
    /// Records sent first and not measured.
    pub(crate) warmup: u64,
    /// Records measured after the warm-up.
    pub(crate) count: u64,
    /// Consecutive windows the measured records are split into for per-window percentiles.
    pub(crate) windows: u64,
    pub(crate) idle: Duration,
}

/// Sends `spec.warmup + spec.count` records at `spec.rate` records/s, one per commit, each stamped
/// with its send time (or, with rate 0, nothing for `spec.idle`), then STOP, to a consumer child.
pub(crate) fn stream<T: BenchRecord>(prefix: &str, spec: &StreamSpec) -> Stream {
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

pub(crate) fn describe_stream(label: &str, s: &Stream) {
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

pub(crate) struct Latency {
    pub(crate) spin: Stream,
    pub(crate) nap: Stream,
}

pub(crate) fn latency<T: BenchRecord>(prefix: &str, cfg: &Config) -> Latency {
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
