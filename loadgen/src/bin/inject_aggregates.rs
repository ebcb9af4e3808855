//! `inject-aggregates`: fills the aggregates ring directly, as aggd would, so that emitd and its
//! sinks can be measured alone (`scripts/bench-sinks.sh`).
//!
//! ```text
//! inject-aggregates --config PATH --count N [--keys 100000] [--first-window 0] [--chunk 256]
//!                   [--wait-timeout-s 300]
//! ```
//!
//! The segments must exist (`inject --config PATH --create`) and emitd must be started on the
//! same config. It waits until emitd is attached (its pid in the stats page), then writes `N`
//! aggregates as fast as the ring takes them: aggregate i is key i % K (`dev<k>` / `temp`) with
//! window `first-window` + i / K, so every aggregate is distinct (a warm-up run before a measured
//! one gives the measured one a later `--first-window`). Then it waits until emitd's `received` counter
//! has grown by N. The last line on stdout is
//! `inject-aggregates records=… keys=… write_s=… done_s=… rate=… waited=ok|timeout`, where
//! `rate` = records / `done_s` (first write to emitd having released them all).

use std::time::{Duration, Instant};

use records::names::{counter, segment, stage};
use records::Aggregate;
use shm_ring::ring::WaitStrategy;
use shm_ring::stats::StatsReader;
use shm_ring::{Producer, SegmentName};
use telemetry_config::Config;

struct Args {
    config: String,
    count: u64,
    keys: u64,
    first_window: u64,
    chunk: usize,
    wait_timeout: f64,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        config: String::new(),
        count: 0,
        keys: 100_000,
        first_window: 0,
        chunk: 256,
        wait_timeout: 300.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            return Err(String::new());
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |v: &str| v.parse::<f64>().map_err(|_| format!("{flag}: {v:?} is not a number"));
        match flag.as_str() {
            "--config" => a.config = value,
            "--count" => a.count = num(&value)? as u64,
            "--keys" => a.keys = num(&value)? as u64,
            "--first-window" => a.first_window = num(&value)? as u64,
            "--chunk" => a.chunk = num(&value)? as usize,
            "--wait-timeout-s" => a.wait_timeout = num(&value)?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if a.config.is_empty() || a.count == 0 || a.keys == 0 || a.chunk == 0 {
        return Err("--config PATH and --count N are required; keys and chunk must be ≥ 1".into());
    }
    Ok(a)
}

fn emitd(reader: &StatsReader) -> (u32, u64) {
    let snap = reader.snapshot();
    let s = snap.stage(stage::EMITD);
    (
        s.map_or(0, |s| s.pid),
        s.and_then(|s| s.counter(counter::RECEIVED)).unwrap_or(0),
    )
}

fn run(a: &Args) -> Result<(), String> {
    let config = Config::load(std::path::Path::new(&a.config)).map_err(|e| e.to_string())?;
    let prefix = &config.pipeline.prefix;
    let name = |n: &str| SegmentName::new(prefix, n).map_err(|e| e.to_string());
    let reader = StatsReader::open(&name(segment::STATS)?).map_err(|e| format!("the stats page: {e}"))?;
    let attach_until = Instant::now() + Duration::from_secs(30);
    while emitd(&reader).0 == 0 {
        if Instant::now() > attach_until {
            return Err("emitd did not attach within 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut producer = Producer::<Aggregate>::attach(&name(segment::AGGREGATES)?)
        .map_err(|e| format!("cannot attach to the aggregates ring: {e}"))?;
    let base = emitd(&reader).1;
    let wait = WaitStrategy::batching(Duration::from_micros(50), 4);
    let start = Instant::now();
    let mut written = 0u64;
    while written < a.count {
        let want = (a.count - written).min(a.chunk as u64) as usize;
        let mut chunk = producer.write_chunk(want).map_err(|e| e.to_string())?;
        if chunk.is_empty() {
            producer
                .wait_for_slots(a.chunk.min(producer.capacity() / 2), &wait, Duration::from_millis(100))
                .map_err(|e| e.to_string())?;
            continue;
        }
        let n = chunk.len();
        for (i, slot) in (written..).zip(chunk.iter_mut()) {
            let (k, window) = (i % a.keys, a.first_window + i / a.keys);
            let mut agg = Aggregate::new(format!("dev{k:07}").as_bytes(), b"temp", b"C").ok_or("an id does not fit")?;
            agg.window_start_ms = 1_700_000_000_000 + window * 5_000;
            agg.window_end_ms = agg.window_start_ms + 60_000;
            agg.count = 12;
            agg.sum = 12.0 * 21.5;
            agg.m2 = 0.0;
            agg.min = 21.5;
            agg.max = 21.5;
            agg.last = 21.5;
            agg.last_ms = agg.window_end_ms - 1;
            *slot = agg;
        }
        chunk.commit_all();
        written += n as u64;
    }
    let write_s = start.elapsed().as_secs_f64();
    let until = Instant::now() + Duration::from_secs_f64(a.wait_timeout);
    let mut waited = "timeout";
    while Instant::now() < until {
        if emitd(&reader).1.wrapping_sub(base) >= written {
            waited = "ok";
            break;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    let done_s = start.elapsed().as_secs_f64();
    println!(
        "inject-aggregates records={written} keys={} write_s={write_s:.3} done_s={done_s:.3} rate={:.0} waited={waited}",
        a.keys,
        written as f64 / done_s.max(1e-9)
    );
    if waited == "timeout" {
        return Err("emitd did not release every aggregate in time".into());
    }
    Ok(())
}

fn main() {
    let a = match parse() {
        Ok(a) => a,
        Err(e) => {
            let doc = "usage: inject-aggregates --config PATH --count N [--keys K] [--first-window W] [--chunk C] [--wait-timeout-s T]";
            if e.is_empty() {
                println!("{doc}");
                std::process::exit(0);
            }
            eprintln!("inject-aggregates: {e}\n{doc}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&a) {
        eprintln!("inject-aggregates: {e}");
        std::process::exit(1);
    }
}
