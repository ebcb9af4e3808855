//! The pipeline's segments: the supervisor creates the three rings and the stats page, or
//! re-adopts them with everything queued in them when a previous supervisor left them (killed,
//! or restarted by systemd); it removes them after a clean stop unless told to keep them.

use std::time::{Duration, Instant};

use records::names::{segment, stage};
use records::{Aggregate, RawRecord, Reading};
use shm_ring::{create, create_stats_page, Created, IfExists, RingOptions, SegmentName};
use telemetry_config::Config;
use tracing::info;

fn name(config: &Config, n: &str) -> Result<SegmentName, shm_ring::Error> {
    SegmentName::new(&config.pipeline.prefix, n)
}

/// The rings' names and capacities, upstream first.
pub fn rings(config: &Config) -> [(&'static str, u64); 3] {
    let p = &config.pipeline;
    [
        (segment::RAW, p.raw_ring),
        (segment::READINGS, p.readings_ring),
        (segment::AGGREGATES, p.aggregates_ring),
    ]
}

/// Creates or re-adopts every segment. Waits up to `patience` for roles still held by stages of
/// a previous supervisor (they die with it, but not instantly).
pub fn prepare(config: &Config, patience: Duration) -> Result<(), shm_ring::Error> {
    let deadline = Instant::now() + patience;
    loop {
        match try_prepare(config) {
            Err(shm_ring::Error::RoleHeld { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

fn try_prepare(config: &Config) -> Result<(), shm_ring::Error> {
    let [raw, readings, aggregates] = rings(config);
    let adopt = |cap| RingOptions::new(cap).if_exists(IfExists::Adopt);
    let outcomes = [
        (raw.0, create::<RawRecord>(&name(config, raw.0)?, &adopt(raw.1))?),
        (
            readings.0,
            create::<Reading>(&name(config, readings.0)?, &adopt(readings.1))?,
        ),
        (
            aggregates.0,
            create::<Aggregate>(&name(config, aggregates.0)?, &adopt(aggregates.1))?,
        ),
    ];
    for (ring, outcome) in outcomes {
        match outcome {
            Created::New => info!(ring, "created"),
            Created::Adopted { depth } => info!(ring, depth, "re-adopted with the records queued in it"),
            Created::Replaced { reason } => info!(ring, %reason, "replaced an unusable segment"),
        }
    }
    let mut stages: Vec<&str> = stage::ALL.to_vec();
    stages.push(stage::SUPERVISOR);
    create_stats_page(&name(config, segment::STATS)?, &stages, &rings(config))?;
    Ok(())
}

/// Removes every segment of the pipeline (after a clean stop).
pub fn remove(config: &Config) -> Result<usize, shm_ring::Error> {
    shm_ring::remove_all(&config.pipeline.prefix)
}
