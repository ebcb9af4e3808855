//! `telemetryctl`'s command line: the arguments, split by lexopt (docs/decisions.md D19), become
//! an [`Invocation`] or a usage error (exit code 2). Options may come before or after the
//! command; `--opt value` and `--opt=value` are both accepted.

use std::path::PathBuf;

use records::names::stage;

/// The usage text, printed by `--help` and after a usage error.
pub const USAGE: &str = "\
usage: telemetryctl [--config PATH] [--prefix P] <command>

commands:
  stats [--json] [--watch [--count N] [--interval-ms MS]]
        counters, drops and errors by reason, ring depths and the conservation balance,
        read from the stats page without write access; --watch refreshes every second
        with rates until Ctrl-C (or N refreshes); --json prints one JSON object per refresh
  status [--heartbeat-timeout-ms MS]
        exit 0 if ingestd, decoded, aggd and emitd are running with a fresh heartbeat
        (younger than supervisor.hang_timeout_ms), 1 otherwise, 3 if no pipeline runs
  restart <ingestd|decoded|aggd|emitd>
        ask the supervisor to restart one stage (needs write access to the stats page)

options:
  --config PATH   configuration file (default /etc/telemetry/telemetry.toml if it exists,
                  else the built-in defaults); gives [pipeline].prefix
  --prefix P      segment prefix, overriding the configuration's
  -h, --help      this text
  -V, --version   the version and the git commit of this build

exit codes: 0 ok, 1 unhealthy (status), 2 usage, 3 no pipeline running, 4 permission denied,
            5 stats page of another layout version, corrupt or not initialised,
            6 configuration file error, 7 other system error, 8 stats page not the pipeline's
            (another owner, or writable by others: refused)";

/// Default time between two `--watch` refreshes.
pub const DEFAULT_INTERVAL_MS: u64 = 1_000;

/// Options of `stats`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatsArgs {
    /// Print JSON instead of the table.
    pub json: bool,
    /// Refresh until SIGINT (or `count` refreshes).
    pub watch: bool,
    /// Stop after this many refreshes (only with `watch`).
    pub count: Option<u64>,
    /// Milliseconds between refreshes.
    pub interval_ms: u64,
}

/// What to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `stats`.
    Stats(StatsArgs),
    /// `status`, with an optional heartbeat limit overriding the configuration's.
    Status {
        /// `--heartbeat-timeout-ms`.
        heartbeat_timeout_ms: Option<u64>,
    },
    /// `restart <stage>`; the stage is one of `records::names::stage::ALL`.
    Restart {
        /// The stage to restart.
        stage: String,
    },
    /// `--help`.
    Help,
}

/// A parsed command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invocation {
    /// `--config PATH`.
    pub config: Option<PathBuf>,
    /// `--prefix P`.
    pub prefix: Option<String>,
    /// The command.
    pub command: Command,
}

/// Parses the arguments (without the program name). `Err` is a one-line usage error.
pub fn parse<I, S>(args: I) -> Result<Invocation, String>
where
    I: IntoIterator<Item = S>,
    S: Into<std::ffi::OsString>,
{
    let mut parser = lexopt::Parser::from_args(args.into_iter().map(|a| a.into()));
    let mut config = None;
    let mut prefix = None;
    let mut positional: Vec<String> = Vec::new();
    let (mut json, mut watch, mut help) = (false, false, false);
    let mut count = None;
    let mut interval_ms = None;
    let mut heartbeat_timeout_ms = None;
    let mut seen: Vec<&'static str> = Vec::new();

    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        let known: &'static str = match arg {
            lexopt::Arg::Value(value) => {
                positional.push(value.to_string_lossy().into_owned());
                continue;
            }
            lexopt::Arg::Long("config") => "--config",
            lexopt::Arg::Long("prefix") => "--prefix",
            lexopt::Arg::Long("json") => "--json",
            lexopt::Arg::Long("watch") => "--watch",
            lexopt::Arg::Long("count") => "--count",
            lexopt::Arg::Long("interval-ms") => "--interval-ms",
            lexopt::Arg::Long("heartbeat-timeout-ms") => "--heartbeat-timeout-ms",
            lexopt::Arg::Short('h') | lexopt::Arg::Long("help") => "--help",
            lexopt::Arg::Short(c) => return Err(format!("unknown option \"-{c}\"")),
            lexopt::Arg::Long(other) => return Err(format!("unknown option \"--{other}\"")),
        };
        if seen.contains(&known) {
            return Err(format!("{known} given twice"));
        }
        seen.push(known);
        let takes_value = matches!(
            known,
            "--config" | "--prefix" | "--count" | "--interval-ms" | "--heartbeat-timeout-ms"
        );
        if !takes_value {
            if parser.optional_value().is_some() {
                return Err(format!("{known} takes no value"));
            }
            match known {
                "--json" => json = true,
                "--watch" => watch = true,
                _ => help = true,
            }
            continue;
        }
        let value = parser
            .value()
            .map_err(|_| format!("{known} needs a value"))?
            .to_string_lossy()
            .into_owned();
        if value.is_empty() {
            return Err(format!("{known} needs a non-empty value"));
        }
        match known {
            "--config" => config = Some(PathBuf::from(value)),
            "--prefix" => prefix = Some(value),
            "--count" => count = Some(number(known, &value, 1, u64::MAX)?),
            "--interval-ms" => interval_ms = Some(number(known, &value, 100, 3_600_000)?),
            _ => heartbeat_timeout_ms = Some(number(known, &value, 1, u64::MAX)?),
        }
    }

    if help {
        return Ok(Invocation {
            config,
            prefix,
            command: Command::Help,
        });
    }
    let mut positional = positional.into_iter();
    let command = match positional.next().as_deref() {
        None => return Err("no command given".into()),
        Some("stats") => {
            if heartbeat_timeout_ms.is_some() {
                return Err("--heartbeat-timeout-ms belongs to status, not stats".into());
            }
            if !watch && (count.is_some() || interval_ms.is_some()) {
                return Err("--count and --interval-ms need --watch".into());
            }
            Command::Stats(StatsArgs {
                json,
                watch,
                count,
                interval_ms: interval_ms.unwrap_or(DEFAULT_INTERVAL_MS),
            })
        }
        Some(cmd @ ("status" | "restart")) => {
            if json || watch || count.is_some() || interval_ms.is_some() {
                return Err(format!(
                    "--json, --watch, --count and --interval-ms belong to stats, not {cmd}"
                ));
            }
            if cmd == "status" {
                Command::Status { heartbeat_timeout_ms }
            } else {
                if heartbeat_timeout_ms.is_some() {
                    return Err("--heartbeat-timeout-ms belongs to status, not restart".into());
                }
                let stage = positional
                    .next()
                    .ok_or_else(|| format!("restart needs a stage: one of {}", stage::ALL.join(", ")))?;
                if !stage::ALL.contains(&stage.as_str()) {
                    return Err(format!(
                        "unknown stage {stage:?}: expected one of {}",
                        stage::ALL.join(", ")
                    ));
                }
                Command::Restart { stage }
            }
        }
        Some(other) => return Err(format!("unknown command {other:?}")),
    };
    if let Some(extra) = positional.next() {
        return Err(format!("unexpected argument {extra:?}"));
    }
    Ok(Invocation {
        config,
        prefix,
        command,
    })
}

fn number(flag: &str, value: &str, min: u64, max: u64) -> Result<u64, String> {
    match value.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        Ok(_) if max == u64::MAX => Err(format!("{flag} {value}: must be at least {min}")),
        Ok(_) => Err(format!("{flag} {value}: must be from {min} to {max}")),
        Err(_) => Err(format!("{flag} {value:?}: not a whole number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(args: &[&str]) -> Invocation {
        parse(args.iter().copied()).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    fn err(args: &[&str]) -> String {
        parse(args.iter().copied()).unwrap_err()
    }

    #[test]
    fn stats_with_options_anywhere() {
        let inv = ok(&["--prefix", "p1", "stats", "--json"]);
        assert_eq!(inv.prefix.as_deref(), Some("p1"));
        assert_eq!(
            inv.command,
            Command::Stats(StatsArgs {
                json: true,
                watch: false,
                count: None,
                interval_ms: 1000
            })
        );
        let inv = ok(&[
            "stats",
            "--watch",
            "--count=3",
            "--config=/x.toml",
            "--interval-ms",
            "200",
        ]);
        assert_eq!(inv.config, Some(PathBuf::from("/x.toml")));
        assert_eq!(
            inv.command,
            Command::Stats(StatsArgs {
                json: false,
                watch: true,
                count: Some(3),
                interval_ms: 200
            })
        );
    }

    #[test]
    fn status_and_restart() {
        assert_eq!(
            ok(&["status"]).command,
            Command::Status {
                heartbeat_timeout_ms: None
            }
        );
        assert_eq!(
            ok(&["status", "--heartbeat-timeout-ms", "5000"]).command,
            Command::Status {
                heartbeat_timeout_ms: Some(5000)
            }
        );
        assert_eq!(
            ok(&["restart", "decoded"]).command,
            Command::Restart {
                stage: "decoded".into()
            }
        );
        assert_eq!(ok(&["stats", "--help"]).command, Command::Help);
        assert_eq!(ok(&["-h"]).command, Command::Help);
    }

    #[test]
    fn usage_errors_say_what_is_wrong() {
        assert_eq!(err(&[]), "no command given");
        assert!(err(&["frobnicate"]).contains("unknown command \"frobnicate\""));
        assert!(err(&["restart"]).contains("needs a stage"));
        assert!(err(&["restart", "supervisor"]).contains("unknown stage \"supervisor\""));
        assert!(err(&["restart", "decoded", "aggd"]).contains("unexpected argument \"aggd\""));
        assert!(err(&["stats", "--count", "2"]).contains("need --watch"));
        assert!(err(&["stats", "--watch", "--count", "0"]).contains("at least 1"));
        assert!(err(&["stats", "--watch", "--count", "x"]).contains("not a whole number"));
        assert!(err(&["stats", "--watch", "--interval-ms", "5"]).contains("from 100"));
        assert!(err(&["stats", "--prefix"]).contains("needs a value"));
        assert!(err(&["stats", "--json=1"]).contains("takes no value"));
        assert!(err(&["stats", "--json", "--json"]).contains("twice"));
        assert!(err(&["stats", "-x"]).contains("unknown option"));
        assert!(err(&["status", "--json"]).contains("belong to stats"));
        assert!(err(&["stats", "--heartbeat-timeout-ms", "1"]).contains("belongs to status"));
    }
}
