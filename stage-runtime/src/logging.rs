//! Logs: `tracing`, structured, to stderr (journald picks them up under systemd). The level comes
//! from `TELEMETRY_LOG` (`error`, `warn`, `info`, `debug`, `trace`; default `info`).

use tracing::Level;

/// Installs the stderr subscriber for the stage `stage`. Safe to call more than once.
pub fn init_logging(stage: &str) {
    let level = match std::env::var("TELEMETRY_LOG").as_deref() {
        Ok("error") => Level::ERROR,
        Ok("warn") => Level::WARN,
        Ok("debug") => Level::DEBUG,
        Ok("trace") => Level::TRACE,
        _ => Level::INFO,
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_target(false)
        .with_ansi(false)
        .try_init();
    tracing::debug!(stage, "logging started");
}
