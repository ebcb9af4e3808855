//! `ingestd`: subscribes to MQTT and/or listens for HTTP, and fills the raw ring. Wires the
//! config, the ring, the stats slot and the sources; the logic is in the library.

use std::process::ExitCode;
use std::time::Duration;

use records::names::{segment, stage};
use records::RawRecord;
use stage_runtime::{attach_producer, init_logging, StageCounters};
use tracing::error;

fn main() -> ExitCode {
    init_logging(stage::INGESTD);
    let config = match telemetry_config::from_args() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ingestd: {e}");
            return ExitCode::from(2);
        }
    };
    let setup = || -> Result<ingestd::sources::raw_ring::SharedRing, shm_ring::Error> {
        let raw = stage_runtime::segment(&config, segment::RAW)?;
        let stats = stage_runtime::segment(&config, segment::STATS)?;
        let producer = attach_producer::<RawRecord>(&raw, Duration::from_secs(10))?;
        let counters = StageCounters::attach_patiently(&stats, stage::INGESTD, Duration::from_secs(10))?;
        ingestd::sources::raw_ring::SharedRing::new(producer, counters)
    };
    let ring = match setup() {
        Ok(r) => r,
        Err(e) => {
            error!(error = %e, "cannot attach to the pipeline's segments");
            return ExitCode::from(1);
        }
    };
    match ingestd::stage::run(ring, ingestd::sources::configured(&config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!(error = %e, "stopped on an error");
            ExitCode::from(1)
        }
    }
}
