//! `aggd`: the window aggregator stage. Wiring only: configuration, logging, the shutdown flag,
//! the segments and the loop; the work is in the library (see `aggd::stage`).
//!
//! Exit codes: 0 after SIGTERM/SIGINT (the readings ring drained into the windows, which stay in
//! the `windows` segment for the next start), 2 for a bad configuration (nothing touched), 1 for
//! anything else.

use std::process::ExitCode;

use aggd::{Segments, Stage};
use stage_runtime::{init_logging, Shutdown};
use tracing::{error, info};

fn main() -> ExitCode {
    let config = match telemetry_config::from_args() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("aggd: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(records::names::stage::AGGD);
    let shutdown = match Shutdown::install() {
        Ok(s) => s,
        Err(e) => {
            error!(error = %e, "cannot install the signal handlers");
            return ExitCode::FAILURE;
        }
    };
    let segments = match Segments::of(&config) {
        Ok(s) => s,
        Err(e) => {
            error!(error = %e, "bad segment names");
            return ExitCode::FAILURE;
        }
    };
    let mut stage = match Stage::start(&config, &segments) {
        Ok(stage) => stage,
        Err(e) => {
            error!(error = %e, "cannot start");
            return ExitCode::FAILURE;
        }
    };
    while !shutdown.requested() {
        if let Err(e) = stage.step() {
            error!(error = %e, "stopping on a ring error");
            return ExitCode::FAILURE;
        }
    }
    match stage.drain() {
        Ok(()) => {
            info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            error!(error = %e, "cannot drain the readings ring");
            ExitCode::FAILURE
        }
    }
}
