//! The parent's throughput runs: the API's own cost in one thread, and records through a ring
//! to a consumer process, shm-ring against rtrb.

use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, Ordering};

use shm_ring::ring::RingOptions;
use shm_ring::{Consumer, Producer, SegmentName};

use super::*;

#[inline(always)]
pub(crate) fn fill<T: Payload>(slots: &mut [T], seq: &mut u64) {
    for s in slots {
        *s = T::make(*seq, 0);
        *seq += 1;
    }
}

#[inline(always)]
pub(crate) fn fill_uninit<T: Payload>(slots: &mut [MaybeUninit<T>], seq: &mut u64) {
    for s in slots {
        s.write(T::make(*seq, 0));
        *seq += 1;
    }
}

pub(crate) fn expected_sum(n: u64) -> u64 {
    n.wrapping_mul(n.wrapping_sub(1)) / 2
}

/// Records/s through a shm-ring ring to a consumer process, and how many times either side was
/// preempted meanwhile.
pub(crate) fn shm_throughput<T: BenchRecord>(prefix: &str, run: usize, n: u64, read: &str) -> (f64, u64) {
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
pub(crate) fn rtrb_throughput<T: Payload>(n: u64) -> (f64, u64, usize) {
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
pub(crate) fn shm_single_thread<T: BenchRecord>(prefix: &str, n: u64, iter: bool) -> f64 {
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

pub(crate) fn rtrb_single_thread<T: Payload>(n: u64) -> f64 {
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

pub(crate) fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

pub(crate) struct Throughput {
    pub(crate) shm: f64,
    pub(crate) shm_iter: f64,
    pub(crate) rtrb: f64,
    pub(crate) rtrb_aligned: f64,
    pub(crate) load: Load,
}

pub(crate) fn throughput<T: BenchRecord>(prefix: &str, cfg: &Config) -> Throughput {
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
