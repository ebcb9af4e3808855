//! `ingestd`: subscribes to MQTT and fills the raw ring. Wires the config, the ring, the stats
//! slot and the loop; the logic is in the library.

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
    let setup = || -> Result<ingestd::ingest::Ingest, shm_ring::Error> {
        let raw = stage_runtime::segment(&config, segment::RAW)?;
        let stats = stage_runtime::segment(&config, segment::STATS)?;
        let producer = attach_producer::<RawRecord>(&raw, Duration::from_secs(10))?;
        let counters = StageCounters::attach_patiently(&stats, stage::INGESTD, Duration::from_secs(10))?;
        let when_full = config.ingestd.when_ring_full;
        ingestd::ingest::Ingest::new(producer, counters, config.ingestd.max_payload, when_full)
    };
    let ingest = match setup() {
        Ok(i) => i,
        Err(e) => {
            error!(error = %e, "cannot attach to the pipeline's segments");
            return ExitCode::from(1);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            error!(error = %e, "cannot start the runtime");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(ingestd::stage::run(&config, ingest)) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            error!(error = %e, "stopped on an error");
            ExitCode::from(1)
        }
    }
}
