//! `restart-latency`: how long the supervisor takes to bring a SIGKILLed stage back, for the
//! benchmarks (`scripts/bench-restart.sh`).
//!
//! ```text
//! restart-latency --config PATH --stage ingestd [--kills 100] [--interval-ms 1000]
//! ```
//!
//! For each kill it waits until the stage runs (state `running` in the stats page, with a live
//! pid), sends SIGKILL, and measures the time until the stats page shows a *new* pid in state
//! `running`, polling the page every 200 µs. Kills are `--interval-ms` apart (at least). The last
//! line on stdout is `restart stage=… kills=… p50_ms=… p90_ms=… p99_ms=… max_ms=… timeouts=…`.

use std::time::{Duration, Instant};

use records::names::segment;
use shm_ring::stats::{StageState, StatsReader};
use shm_ring::SegmentName;
use telemetry_config::Config;

struct Args {
    config: String,
    stage: String,
    kills: usize,
    interval: Duration,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        config: String::new(),
        stage: String::new(),
        kills: 100,
        interval: Duration::from_millis(1000),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |v: &str| v.parse::<u64>().map_err(|_| format!("{flag}: {v:?} is not a number"));
        match flag.as_str() {
            "--config" => a.config = value,
            "--stage" => a.stage = value,
            "--kills" => a.kills = num(&value)? as usize,
            "--interval-ms" => a.interval = Duration::from_millis(num(&value)?),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if a.config.is_empty() || a.stage.is_empty() {
        return Err("usage: restart-latency --config PATH --stage NAME [--kills N] [--interval-ms MS]".into());
    }
    Ok(a)
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rsplit(')').next().is_some_and(|r| !r.trim_start().starts_with('Z')))
        .unwrap_or(false)
}

/// The stage's pid while it runs, if it does.
fn running(reader: &StatsReader, stage: &str) -> Option<u32> {
    let snap = reader.snapshot();
    let s = snap.stage(stage)?;
    (s.state == Some(StageState::Running) && s.pid != 0 && alive(s.pid)).then_some(s.pid)
}

fn wait_running(reader: &StatsReader, stage: &str, not: u32, limit: Duration) -> Option<u32> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(pid) = running(reader, stage).filter(|p| *p != not) {
            return Some(pid);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let args = parse().unwrap_or_else(|e| {
        eprintln!("restart-latency: {e}");
        std::process::exit(2)
    });
    let text = std::fs::read_to_string(&args.config).unwrap_or_else(|e| {
        eprintln!("restart-latency: {}: {e}", args.config);
        std::process::exit(2)
    });
    let config = Config::from_toml(&text).unwrap_or_else(|e| {
        eprintln!("restart-latency: {e}");
        std::process::exit(2)
    });
    let page = SegmentName::new(&config.pipeline.prefix, segment::STATS).expect("segment name");
    let reader = StatsReader::open(&page).unwrap_or_else(|e| {
        eprintln!("restart-latency: {e}");
        std::process::exit(1)
    });
    let mut ms = Vec::with_capacity(args.kills);
    let mut timeouts = 0;
    let mut pid = wait_running(&reader, &args.stage, 0, Duration::from_secs(60)).unwrap_or(0);
    for _ in 0..args.kills {
        let next_kill = Instant::now() + args.interval;
        if pid == 0 {
            pid = wait_running(&reader, &args.stage, 0, Duration::from_secs(60)).unwrap_or(0);
        }
        let killed = Instant::now();
        if pid == 0
            || nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::SIGKILL).is_err()
        {
            timeouts += 1;
            pid = 0;
            continue;
        }
        match wait_running(&reader, &args.stage, pid, Duration::from_secs(30)) {
            Some(new) => {
                ms.push(killed.elapsed().as_secs_f64() * 1000.0);
                pid = new;
            }
            None => {
                timeouts += 1;
                pid = 0;
            }
        }
        std::thread::sleep(next_kill.saturating_duration_since(Instant::now()));
    }
    ms.sort_by(f64::total_cmp);
    println!(
        "restart stage={} kills={} p50_ms={:.1} p90_ms={:.1} p99_ms={:.1} max_ms={:.1} timeouts={timeouts}",
        args.stage,
        ms.len(),
        percentile(&ms, 0.5),
        percentile(&ms, 0.9),
        percentile(&ms, 0.99),
        ms.last().copied().unwrap_or(f64::NAN),
    );
}
