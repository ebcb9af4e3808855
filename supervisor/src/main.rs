//! `telemetry-supervisor`: creates (or re-adopts) the pipeline's segments and supervises the four
//! stages. Wires the config, the segments and the loop; the logic is in the library.

use std::process::ExitCode;
use std::time::Duration;

use stage_runtime::{init_logging, Shutdown};
use supervisor::child_spec::child_specs;
use supervisor::notify::Notifier;
use supervisor::supervisor::{Outcome, Supervisor};
use supervisor::{metrics, segments};
use tracing::{error, info};

fn main() -> ExitCode {
    init_logging("supervisor");
    let config = match telemetry_config::from_args() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("telemetry-supervisor: {e}");
            return ExitCode::from(2);
        }
    };
    let config_path = match telemetry_config::path_from_args() {
        Ok(Some(p)) => std::fs::canonicalize(&p).unwrap_or(p),
        _ => {
            eprintln!("telemetry-supervisor: --config PATH is required (the stages read the same file)");
            return ExitCode::from(2);
        }
    };
    let shutdown = match Shutdown::install() {
        Ok(s) => s,
        Err(e) => {
            error!(error = %e, "cannot install signal handlers");
            return ExitCode::from(1);
        }
    };
    let prepared = match segments::prepare(&config, Duration::from_secs(10)) {
        Ok(p) => p,
        Err(e) => {
            let (code, hint) = segments::exit_for(&e);
            error!(error = %e, hint, code, "cannot prepare the pipeline's segments");
            return ExitCode::from(code);
        }
    };
    if !config.supervisor.metrics_listen.is_empty() {
        if let Err(e) = metrics::serve(&config) {
            error!(error = %e, listen = %config.supervisor.metrics_listen, "cannot serve metrics");
            return ExitCode::from(1);
        }
    }
    let own_exe = std::env::current_exe().unwrap_or_default();
    let specs = child_specs(&config, &own_exe);
    let mut supervisor = match Supervisor::new(config.clone(), config_path, specs, Notifier::from_env()) {
        Ok(s) => s,
        Err(e) => {
            error!(error = %e, "cannot set up supervision (stats page, readiness pipe)");
            return ExitCode::from(1);
        }
    };
    match supervisor.run(&shutdown) {
        Outcome::Stopped => {
            if !config.supervisor.keep_segments {
                match segments::remove(&config, prepared) {
                    Ok(n) => info!(segments = n, "removed the pipeline's segments"),
                    Err(e) => error!(error = %e, "cannot remove the pipeline's segments"),
                }
            }
            ExitCode::SUCCESS
        }
        Outcome::Escalated => ExitCode::from(3),
    }
}
