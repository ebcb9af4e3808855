//! `decoded`: the pipeline's decoder process. This file only wires things together; the logic
//! is in the library (see `lib.rs`).
//!
//! `decoded [--config PATH]`: exits 2 on a bad configuration (before touching any segment), 1 on
//! a ring or stats-page error, 0 after SIGTERM/SIGINT once the raw ring is drained.

use std::process::ExitCode;
use std::time::Duration;

use decoded::format::FormatChooser;
use decoded::stage::{attach_counters, Stage};
use records::names::{segment, stage};
use records::{RawRecord, Reading};
use stage_runtime::{attach_consumer, attach_producer, wait_strategy, Shutdown};
use telemetry_config::Config;

/// How long to retry attaching while a predecessor's roles are being released.
const PATIENCE: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    let config = match telemetry_config::from_args() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("decoded: {e}");
            return ExitCode::from(2);
        }
    };
    let chooser = match FormatChooser::new(&config.decoded) {
        Ok(chooser) => chooser,
        Err(e) => {
            eprintln!("decoded: {e}");
            return ExitCode::from(2);
        }
    };
    stage_runtime::init_logging(stage::DECODED);
    let shutdown = match Shutdown::install() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot install signal handlers");
            return ExitCode::FAILURE;
        }
    };
    match run(&config, chooser, shutdown) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "decoded stopped");
            ExitCode::FAILURE
        }
    }
}

fn run(config: &Config, chooser: FormatChooser, shutdown: Shutdown) -> Result<(), shm_ring::Error> {
    let counters = attach_counters(
        &stage_runtime::segment(config, segment::STATS)?,
        stage::DECODED,
        PATIENCE,
    )?;
    let input = attach_consumer::<RawRecord>(&stage_runtime::segment(config, segment::RAW)?, PATIENCE)?;
    let output = attach_producer::<Reading>(&stage_runtime::segment(config, segment::READINGS)?, PATIENCE)?;
    let mut stage = Stage::new(input, output, counters, chooser, wait_strategy(config))?;
    stage.run(|| shutdown.requested())?;
    Ok(())
}
