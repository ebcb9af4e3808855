//! The command line every binary but telemetryctl shares: `--config PATH`, `--help`, `--version`.

use std::path::PathBuf;

use crate::{Config, ConfigError};

/// What `--version` prints after the program's name: the workspace version (the one in the
/// workspace `Cargo.toml`, which is also the Debian package's) and the git commit it was built
/// from, for example `0.1.0 (commit 722707a1b2c3)`.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("TELEMETRY_GIT_COMMIT"),
    ")"
);

/// The config file named by `--config PATH` (or `--config=PATH`) in this process's arguments.
/// A stage started without one uses the defaults; an unknown argument is an error. `--help` and
/// `--version` print and exit 0 (the command line every binary but telemetryctl shares).
pub fn path_from_args() -> Result<Option<PathBuf>, ConfigError> {
    let usage = |problem: String| ConfigError {
        key: String::new(),
        problem,
    };
    let mut parser = lexopt::Parser::from_env();
    let mut path = None;
    while let Some(arg) = parser
        .next()
        .map_err(|e| usage(format!("{e} (usage: --config PATH)")))?
    {
        match arg {
            lexopt::Arg::Long("config") => {
                let value = parser.value().map_err(|_| usage("--config needs a path".into()))?;
                path = Some(PathBuf::from(value));
            }
            lexopt::Arg::Long("help") | lexopt::Arg::Short('h') => {
                println!(
                    "usage: {} --config PATH\n\nEvery key of the file is documented in \
                     /etc/telemetry/telemetry.toml (deploy/telemetry.toml in the source tree). \
                     Exit codes: 0 done, 1 a runtime error, 2 a configuration or usage error.",
                    program()
                );
                std::process::exit(0);
            }
            lexopt::Arg::Long("version") | lexopt::Arg::Short('V') => {
                println!("{} {VERSION}", program());
                std::process::exit(0);
            }
            other => {
                let arg = match other {
                    lexopt::Arg::Long(name) => format!("--{name}"),
                    lexopt::Arg::Short(c) => format!("-{c}"),
                    lexopt::Arg::Value(v) => v.to_string_lossy().into_owned(),
                };
                return Err(usage(format!("unknown argument {arg:?} (usage: --config PATH)")));
            }
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
