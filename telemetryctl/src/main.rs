//! `telemetryctl`: the operator's view of a running pipeline.
//!
//! ```text
//! telemetryctl [--config PATH] [--prefix P] stats [--json] [--watch [--count N] [--interval-ms MS]]
//! telemetryctl [--config PATH] [--prefix P] status [--heartbeat-timeout-ms MS]
//! telemetryctl [--config PATH] [--prefix P] restart <ingestd|decoded|aggd|emitd>
//! ```
//!
//! Parsing and wiring only; the logic is in the library and the guide in
//! `docs/telemetryctl.md`.

use telemetryctl::{args, commands, error};

fn main() {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if argv.iter().any(|a| a == "--version" || a == "-V") {
        println!("telemetryctl {}", telemetry_config::VERSION);
        std::process::exit(0);
    }
    let code = match args::parse(argv) {
        Ok(invocation) => commands::run(&invocation),
        Err(message) => {
            eprintln!("telemetryctl: {message}\n{}", args::USAGE);
            error::EXIT_USAGE
        }
    };
    std::process::exit(code);
}
