//! `inject`: a broker-less raw-record injector for the benchmarks. It fills the pipeline's raw
//! ring directly, as ingestd would, so that decoded and aggd can be measured without MQTT.
//!
//! ```text
//! inject --config PATH [--create] [--count N | --duration-s T] [--devices 1000] [--sensors 10]
//!        [--amp 0.5] [--chunk 256] [--wait-stage aggd] [--wait-timeout-s 120] [--cpu-pids P,P,..]
//! inject --config PATH --remove
//! ```
//!
//! - `--create` (alone: and exits) creates the pipeline's segments under `[pipeline].prefix` as the supervisor
//!   does: the raw, readings and aggregates rings with the configured capacities, and the stats
//!   page with a slot for each of the four stages and the supervisor (existing segments of the
//!   right shape are re-adopted). Then decoded and aggd (and emitd if wanted) can be started by
//!   hand with the same `--config`.
//! - It then takes the raw ring's producer role (so no ingestd may run) and writes `N` records,
//!   or as many as it can in `T` seconds, in chunks of `--chunk`, as fast as the ring takes them
//!   (waiting with a short nap when it is full). Payloads are loadgen's CBOR readings (the same
//!   bytes, topics and value formula): key k = d·S + s, record i is key i % K with sequence
//!   number i / K. For up to 2^18 (key, seq % 11) pairs the records are built once and copied
//!   (the value formula repeats every 11 sequence numbers, so means are exact; only `n` repeats);
//!   for more keys each record is encoded as it is written.
//! - `--wait-stage S` then waits (at most `--wait-timeout-s`) until stage S's `received` counter
//!   in the stats page has grown by the number of records written (aggd: every reading folded).
//! - `--cpu-pids` lists processes whose user+system CPU (`/proc/PID/stat`) is reported over the
//!   same span, from just before the first record to the moment the wait ended.
//! - `--remove` removes every segment of the prefix and exits.
//!
//! The last line on stdout is
//! `inject records=… write_s=… write_rate=… done_s=… rate=… cpu_s=… per_core=… inject_cpu_s=… waited=ok|timeout|none`
//! where `rate` = records / `done_s` (first write to the waited stage having received them all),
//! and `per_core` = records / `cpu_s` (records per CPU-second of the listed processes).

use std::time::{Duration, Instant};

use loadgen::{cbor, readings};
use records::names::{counter, segment, stage};
use records::{Aggregate, ContentType, RawRecord, Reading};
use shm_ring::bytemuck::Zeroable;
use shm_ring::ring::{create, RingOptions, WaitStrategy};
use shm_ring::segment::IfExists;
use shm_ring::stats::{create_stats_page, StatsReader};
use shm_ring::{unix_ms, Producer, SegmentName};
use telemetry_config::Config;

struct Args {
    config: String,
    create: bool,
    remove: bool,
    count: u64,
    duration: Option<f64>,
    devices: u32,
    sensors: u32,
    amp: f64,
    chunk: usize,
    wait_stage: Option<String>,
    wait_timeout: f64,
    cpu_pids: Vec<u32>,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        config: String::new(),
        create: false,
        remove: false,
        count: 0,
        duration: None,
        devices: 1000,
        sensors: 10,
        amp: 0.5,
        chunk: 256,
        wait_stage: None,
        wait_timeout: 120.0,
        cpu_pids: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--create" => {
                a.create = true;
                continue;
            }
            "--remove" => {
                a.remove = true;
                continue;
            }
            "--help" | "-h" => return Err(String::new()),
            _ => {}
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |v: &str| v.parse::<f64>().map_err(|_| format!("{flag}: {v:?} is not a number"));
        match flag.as_str() {
            "--config" => a.config = value,
            "--count" => a.count = num(&value)? as u64,
            "--duration-s" => a.duration = Some(num(&value)?),
            "--devices" => a.devices = num(&value)? as u32,
            "--sensors" => a.sensors = num(&value)? as u32,
            "--amp" => a.amp = num(&value)?,
            "--chunk" => a.chunk = num(&value)? as usize,
            "--wait-stage" => a.wait_stage = Some(value),
            "--wait-timeout-s" => a.wait_timeout = num(&value)?,
            "--cpu-pids" => {
                a.cpu_pids = value
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(|s| s.parse::<u32>().map_err(|_| format!("--cpu-pids: bad pid {s:?}")))
                    .collect::<Result<_, _>>()?
            }
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if a.config.is_empty() {
        return Err("--config PATH is required".into());
    }
    if !a.remove && !a.create && a.count == 0 && a.duration.is_none() {
        return Err("need --count N or --duration-s T (or --create alone, or --remove)".into());
    }
    if a.devices == 0 || a.sensors == 0 || a.chunk == 0 {
        return Err("devices, sensors and chunk must be ≥ 1".into());
    }
    Ok(a)
}

/// user+system CPU seconds of `pid`, from `/proc/PID/stat` (0 if it is gone).
fn cpu_s(pid: u32) -> f64 {
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let Some(rest) = s.rfind(')').map(|i| &s[i + 2..]) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split(' ').collect();
    // After the comm field: state (field 3 of the line) is index 0 here; utime, stime are 14, 15.
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // /proc reports clock ticks of USER_HZ, which is 100 on every Linux architecture.
    let hz = 100.0;
    (t(11) + t(12)) / hz
}

fn self_cpu_s() -> f64 {
    cpu_s(std::process::id())
}

/// Builds raw records for key `k` at sequence number `seq`.
struct Encoder {
    sensors: u32,
    amp: f64,
    payload: Vec<u8>,
}

impl Encoder {
    fn fill(&mut self, slot: &mut RawRecord, k: u64, seq: u64, now_ms: u64) {
        let (d, s) = (
            (k / u64::from(self.sensors)) as u32,
            (k % u64::from(self.sensors)) as u32,
        );
        let v = readings::value(d, s, seq, self.amp);
        cbor::encode(
            &mut self.payload,
            &readings::device_id(d),
            &readings::sensor_id(s),
            v,
            readings::UNITS[(s % 5) as usize],
            seq,
        );
        slot.fill(
            readings::topic(d, s).as_bytes(),
            &self.payload,
            ContentType::Unknown,
            now_ms,
        )
        .expect("a loadgen reading fits a raw record");
    }
}

fn create_segments(config: &Config) -> Result<(), shm_ring::Error> {
    let p = &config.pipeline;
    let name = |n: &str| SegmentName::new(&p.prefix, n);
    let adopt = |cap| RingOptions::new(cap).if_exists(IfExists::Adopt);
    create::<RawRecord>(&name(segment::RAW)?, &adopt(p.raw_ring))?;
    create::<Reading>(&name(segment::READINGS)?, &adopt(p.readings_ring))?;
    create::<Aggregate>(&name(segment::AGGREGATES)?, &adopt(p.aggregates_ring))?;
    let mut stages: Vec<&str> = stage::ALL.to_vec();
    stages.push(stage::SUPERVISOR);
    let rings = [
        (segment::RAW, p.raw_ring),
        (segment::READINGS, p.readings_ring),
        (segment::AGGREGATES, p.aggregates_ring),
    ];
    create_stats_page(&name(segment::STATS)?, &stages, &rings)
}

fn received(reader: &StatsReader, stage: &str) -> Option<u64> {
    reader
        .snapshot()
        .stage(stage)
        .and_then(|s| s.counter(counter::RECEIVED))
}

fn run(a: &Args) -> Result<(), String> {
    let config = Config::load(std::path::Path::new(&a.config)).map_err(|e| e.to_string())?;
    let prefix = config.pipeline.prefix.clone();
    if a.remove {
        let n = shm_ring::segment::remove_all(&prefix).map_err(|e| e.to_string())?;
        println!("inject removed={n} prefix={prefix}");
        return Ok(());
    }
    if a.create {
        create_segments(&config).map_err(|e| format!("cannot create the segments: {e}"))?;
        eprintln!("inject: segments of prefix {prefix} ready");
        if a.count == 0 && a.duration.is_none() {
            return Ok(());
        }
    }
    let raw = SegmentName::new(&prefix, segment::RAW).map_err(|e| e.to_string())?;
    let mut producer = Producer::<RawRecord>::attach(&raw).map_err(|e| format!("cannot attach to {raw}: {e}"))?;
    let reader = match &a.wait_stage {
        Some(_) => Some(
            StatsReader::open(&SegmentName::new(&prefix, segment::STATS).map_err(|e| e.to_string())?)
                .map_err(|e| format!("cannot read the stats page: {e}"))?,
        ),
        None => None,
    };

    let keys = u64::from(a.devices) * u64::from(a.sensors);
    let mut enc = Encoder {
        sensors: a.sensors,
        amp: a.amp,
        payload: Vec::with_capacity(128),
    };
    // Records built once: index (seq % 11) * K + k.
    let pooled = keys * 11 <= 1 << 18;
    let pool: Vec<RawRecord> = if pooled {
        let mut v = vec![RawRecord::zeroed(); (keys * 11) as usize];
        for seq in 0..11u64 {
            for k in 0..keys {
                enc.fill(&mut v[(seq * keys + k) as usize], k, seq, 0);
            }
        }
        v
    } else {
        Vec::new()
    };
    let limit = if a.count > 0 { a.count } else { u64::MAX };
    let deadline = a.duration.map(Duration::from_secs_f64);
    let wait = WaitStrategy::batching(Duration::from_micros(50), 4);

    let base = match (&reader, &a.wait_stage) {
        (Some(r), Some(s)) => received(r, s).unwrap_or(0),
        _ => 0,
    };
    let cpu0: f64 = a.cpu_pids.iter().map(|&p| cpu_s(p)).sum();
    let self0 = self_cpu_s();
    let start = Instant::now();
    let mut written = 0u64;
    let mut full_waits = 0u64;
    'outer: while written < limit {
        if let Some(d) = deadline {
            if start.elapsed() >= d {
                break;
            }
        }
        let want = (limit - written).min(a.chunk as u64) as usize;
        let now_ms = unix_ms();
        let mut chunk = producer.write_chunk(want).map_err(|e| e.to_string())?;
        if chunk.is_empty() {
            // The empty chunk's borrow of the producer ends here (non-lexical lifetimes).
            full_waits += 1;
            producer
                .wait_for_slots(a.chunk.min(producer.capacity() / 2), &wait, Duration::from_millis(100))
                .map_err(|e| e.to_string())?;
            continue 'outer;
        }
        let n = chunk.len();
        for (i, slot) in (written..).zip(chunk.iter_mut()) {
            let (k, seq) = (i % keys, i / keys);
            if pooled {
                *slot = pool[((seq % 11) * keys + k) as usize];
                slot.received_ms = now_ms;
            } else {
                enc.fill(slot, k, seq, now_ms);
            }
        }
        chunk.commit_all();
        written += n as u64;
    }
    let write_s = start.elapsed().as_secs_f64();
    let mut waited = "none";
    if let (Some(r), Some(s)) = (&reader, &a.wait_stage) {
        waited = "timeout";
        let until = Instant::now() + Duration::from_secs_f64(a.wait_timeout);
        while Instant::now() < until {
            if received(r, s).unwrap_or(0).wrapping_sub(base) >= written {
                waited = "ok";
                break;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    }
    let done_s = start.elapsed().as_secs_f64();
    let cpu = a.cpu_pids.iter().map(|&p| cpu_s(p)).sum::<f64>() - cpu0;
    let self_cpu = self_cpu_s() - self0;
    let rate = written as f64 / done_s.max(1e-9);
    let per_core = if cpu > 0.0 { written as f64 / cpu } else { 0.0 };
    println!(
        "inject records={written} keys={keys} pooled={pooled} full_waits={full_waits} write_s={write_s:.3} \
         write_rate={:.0} done_s={done_s:.3} rate={rate:.0} cpu_s={cpu:.2} per_core={per_core:.0} \
         inject_cpu_s={self_cpu:.2} waited={waited}",
        written as f64 / write_s.max(1e-9)
    );
    if waited == "timeout" {
        return Err(format!(
            "stage {} did not receive every record in time",
            a.wait_stage.as_deref().unwrap_or("")
        ));
    }
    Ok(())
}

fn main() {
    let a = match parse() {
        Ok(a) => a,
        Err(e) => {
            let doc = "usage: inject --config PATH [--create] [--count N | --duration-s T] [--devices D] \
                       [--sensors S] [--amp A] [--chunk C] [--wait-stage STAGE] [--wait-timeout-s T] \
                       [--cpu-pids P,P] | inject --config PATH --remove";
            if e.is_empty() {
                println!("{doc}");
                std::process::exit(0);
            }
            eprintln!("inject: {e}\n{doc}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&a) {
        eprintln!("inject: {e}");
        std::process::exit(1);
    }
}
