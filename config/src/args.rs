//! The command line every binary but telemetryctl shares: `--config PATH`, `--help`, `--version`.

use std::path::PathBuf;

use crate::{Config, ConfigError};

/// The config file named by `--config PATH` (or `--config=PATH`) in this process's arguments.
/// A stage started without one uses the defaults; an unknown argument is an error. `--help` and
/// `--version` print and exit 0 (the command line every binary but telemetryctl shares).
pub fn path_from_args() -> Result<Option<PathBuf>, ConfigError> {
    let mut args = std::env::args_os().skip(1);
    let mut path = None;
    while let Some(arg) = args.next() {
        let arg = arg.to_string_lossy().into_owned();
        if arg == "--config" {
            let value = args.next().ok_or_else(|| ConfigError {
                key: String::new(),
                problem: "--config needs a path".into(),
            })?;
            path = Some(PathBuf::from(value));
        } else if let Some(value) = arg.strip_prefix("--config=") {
            path = Some(PathBuf::from(value));
        } else if arg == "--help" || arg == "-h" {
            println!(
                "usage: {} --config PATH\n\nEvery key of the file is documented in deploy/telemetry.toml \
                 in the source tree. Exit codes: 0 done, 1 a runtime error, 2 a \
                 configuration or usage error.",
                program()
            );
            std::process::exit(0);
        } else if arg == "--version" || arg == "-V" {
            println!("{} {}", program(), env!("CARGO_PKG_VERSION"));
            std::process::exit(0);
        } else {
            return Err(ConfigError {
                key: String::new(),
                problem: format!("unknown argument {arg:?} (usage: --config PATH)"),
            });
        }
    }
    Ok(path)
}

/// The running program's name, for `--help` and `--version`.
fn program() -> String {
    std::env::args_os()
        .next()
        .map(PathBuf::from)
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "telemetry".into())
}

/// Loads the configuration named on the command line, or the defaults.
pub fn from_args() -> Result<Config, ConfigError> {
    match path_from_args()? {
        Some(path) => Config::load(&path),
        None => Ok(Config::default()),
    }
}
