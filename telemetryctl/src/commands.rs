//! Running a parsed `telemetryctl` command: resolving the configuration and prefix, then
//! `stats`, `status` or `restart`. Returns the process exit code (see [`crate::error`]); prints
//! results on stdout and errors on stderr.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pipeline_stats::lifecycle::Lifecycle;
use records::names::stage;
use shm_ring::stats::StatsReader;
use telemetry_config::Config;

use crate::args::{Command, Invocation, StatsArgs, USAGE};
use crate::error::{page_error, Access, CtlError, EXIT_OK, EXIT_UNHEALTHY};
use crate::sample::{self, page_name, page_path, Sample};
use crate::trust::{open_page, Owners};
use crate::{balance, health, json, rates, table};

/// The configuration file read when `--config` is not given, if it exists.
pub const DEFAULT_CONFIG: &str = "/etc/telemetry/telemetry.toml";

/// What the command line and the configuration decide together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// The segment prefix.
    pub prefix: String,
    /// `pipeline.user`: whose stats page is believed (besides root and ourselves).
    pub user: String,
    /// `supervisor.hang_timeout_ms`.
    pub hang_timeout_ms: u64,
}

/// Loads the configuration (`--config`, else [`DEFAULT_CONFIG`] if it exists, else the
/// defaults) and applies `--prefix`.
pub fn settings(inv: &Invocation) -> Result<Settings, CtlError> {
    let path: Option<PathBuf> = match &inv.config {
        Some(p) => Some(p.clone()),
        None => Some(PathBuf::from(DEFAULT_CONFIG)).filter(|p| p.exists()),
    };
    let config = match &path {
        Some(p) => Config::load_for_observer(p).map_err(|e| {
            let hint = if inv.config.is_none() {
                " (the default configuration file; pass --config PATH to read another)"
            } else {
                ""
            };
            CtlError::config(format!("{e}{hint}"))
        })?,
        None => Config::default(),
    };
    let prefix = inv.prefix.clone().unwrap_or(config.pipeline.prefix);
    page_name(&prefix).map_err(|e| CtlError::usage(format!("invalid prefix {prefix:?}: {e}")))?;
    Ok(Settings {
        prefix,
        user: config.pipeline.user,
        hang_timeout_ms: config.supervisor.hang_timeout_ms,
    })
}

/// Writes to stdout; false if stdout is gone (a closed pipe).
fn print(text: &str) -> bool {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).and_then(|_| out.flush()).is_ok()
}

/// Runs a parsed command line and returns the exit code.
pub fn run(inv: &Invocation) -> i32 {
    if inv.command == Command::Help {
        print(USAGE);
        print("\n");
        return EXIT_OK;
    }
    let result = settings(inv).and_then(|s| match &inv.command {
        Command::Stats(a) => stats(&s, a),
        Command::Status { heartbeat_timeout_ms } => status(&s, heartbeat_timeout_ms.unwrap_or(s.hang_timeout_ms)),
        Command::Restart { stage } => restart(&s, stage),
        Command::Help => Ok(EXIT_OK),
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("telemetryctl: {e}");
            if e.code == crate::error::EXIT_USAGE {
                eprintln!("{USAGE}");
            }
            e.code
        }
    }
}

fn take(s: &Settings) -> Result<Sample, CtlError> {
    let reader = open_page(&s.prefix, &Owners::for_user(&s.user))?;
    Ok(sample::take(&s.prefix, &reader))
}

fn show(sample: &Sample, previous: Option<&Sample>, as_json: bool) -> String {
    let r = previous.and_then(|p| rates::compute(&p.stats, &sample.stats, sample.at.duration_since(p.at)));
    let b = balance::compute(&sample.stats, &sample.ring_depths());
    if as_json {
        format!("{}\n", json::document(sample, r.as_ref(), &b))
    } else {
        table::render(sample, r.as_ref(), &b)
    }
}

/// `stats`: one sample, or (`--watch`) a refresh per interval until SIGINT/SIGTERM or `--count`.
fn stats(s: &Settings, a: &StatsArgs) -> Result<i32, CtlError> {
    if !a.watch {
        let sample = take(s)?;
        print(&show(&sample, None, a.json));
        return Ok(EXIT_OK);
    }
    let shutdown = stage_runtime::Shutdown::install().map_err(|e| CtlError {
        code: crate::error::EXIT_OTHER,
        message: format!("cannot install the SIGINT handler: {e}"),
    })?;
    let tty = !a.json && std::io::IsTerminal::is_terminal(&std::io::stdout());
    let interval = Duration::from_millis(a.interval_ms);
    let mut previous: Option<Sample> = None;
    let mut shown = 0u64;
    loop {
        // The page is opened afresh each time, so a pipeline restarted with a new page is
        // followed, and one that stopped is noticed.
        let sample = take(s)?;
        let mut text = show(&sample, previous.as_ref(), a.json);
        if tty {
            text.insert_str(0, "\x1b[H\x1b[2J");
        } else if !a.json && shown > 0 {
            text.insert(0, '\n');
        }
        if !print(&text) {
            return Ok(EXIT_OK);
        }
        shown += 1;
        if a.count.is_some_and(|n| shown >= n) {
            return Ok(EXIT_OK);
        }
        let deadline = sample.at + interval;
        previous = Some(sample);
        while Instant::now() < deadline {
            if shutdown.requested() {
                return Ok(EXIT_OK);
            }
            std::thread::sleep(Duration::from_millis(20).min(deadline.saturating_duration_since(Instant::now())));
        }
        if shutdown.requested() {
            return Ok(EXIT_OK);
        }
    }
}

/// `status`: exit 0 when every stage is running with a fresh heartbeat, 1 otherwise.
fn status(s: &Settings, max_heartbeat_age_ms: u64) -> Result<i32, CtlError> {
    let reader = open_page(&s.prefix, &Owners::for_user(&s.user))?;
    let snap = reader.snapshot();
    let problems = health::evaluate(&snap, max_heartbeat_age_ms);
    let mut out = String::new();
    if problems.is_empty() {
        out.push_str(&format!(
            "ok: {} running, heartbeats younger than {}\n",
            stage::ALL.join(", "),
            crate::format::duration_ms(max_heartbeat_age_ms)
        ));
    } else {
        for p in &problems {
            out.push_str(&format!("unhealthy: {}: {}\n", p.stage, p.reason));
        }
    }
    for note in health::hang_notes(&snap)
        .into_iter()
        .chain(health::supervisor_note(&snap, max_heartbeat_age_ms))
    {
        out.push_str(&note);
        out.push('\n');
    }
    print(&out);
    Ok(if problems.is_empty() { EXIT_OK } else { EXIT_UNHEALTHY })
}

/// `restart <stage>`: one restart request through the stats page.
fn restart(s: &Settings, stage_name: &str) -> Result<i32, CtlError> {
    if !stage::ALL.contains(&stage_name) {
        return Err(CtlError::usage(format!(
            "unknown stage {stage_name:?}: expected one of {}",
            stage::ALL.join(", ")
        )));
    }
    let name = page_name(&s.prefix).map_err(|e| page_error(&e, &s.prefix, Access::Write))?;
    let lifecycle = Lifecycle::open(&name).map_err(|e| {
        let mut err = page_error(&e, &s.prefix, Access::Write);
        if err.code == crate::error::EXIT_PERMISSION {
            if let Some(mode) = file_mode(Path::new(&page_path(&s.prefix))) {
                err.message.push_str(&format!(" [{mode}]"));
            }
        }
        err
    })?;
    let n = lifecycle
        .request_restart(stage_name)
        .map_err(|e| page_error(&e, &s.prefix, Access::Write))?;
    let mut out = format!("asked the supervisor to restart {stage_name} (restart request #{n})\n");
    // Warn if nobody is going to act on it.
    if let Ok(reader) = StatsReader::open(&name) {
        let snap = reader.snapshot();
        match snap.stage(stage::SUPERVISOR) {
            Some(sup) if sup.state == Some(shm_ring::stats::StageState::Running) => {
                if let Some(age) = sup.heartbeat_age_ms.filter(|a| *a >= s.hang_timeout_ms) {
                    out.push_str(&format!(
                        "warning: the supervisor's heartbeat is {} old; the restart happens when it runs again\n",
                        crate::format::duration_ms(age)
                    ));
                }
            }
            Some(sup) => out.push_str(&format!(
                "warning: the supervisor is {}; the restart happens when it runs again\n",
                crate::format::state(sup.state)
            )),
            None => {}
        }
    }
    print(&out);
    Ok(EXIT_OK)
}

/// `mode 0440, owner uid 0 gid 0` of a file, for permission messages.
fn file_mode(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt as _;
    let m = std::fs::metadata(path).ok()?;
    Some(format!(
        "{} is mode {:04o}, owner uid {} gid {}",
        path.display(),
        m.mode() & 0o7777,
        m.uid(),
        m.gid()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv(config: Option<&str>, prefix: Option<&str>) -> Invocation {
        Invocation {
            config: config.map(PathBuf::from),
            prefix: prefix.map(str::to_owned),
            command: Command::Status {
                heartbeat_timeout_ms: None,
            },
        }
    }

    #[test]
    fn settings_come_from_the_config_and_the_prefix_option() {
        let dir = std::env::temp_dir().join(format!("telemetryctl-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.toml");
        std::fs::write(
            &path,
            "[pipeline]\nprefix = \"plant-a\"\n[supervisor]\nhang_timeout_ms = 2500\n",
        )
        .unwrap();
        let p = path.to_str().unwrap();
        assert_eq!(
            settings(&inv(Some(p), None)).unwrap(),
            Settings {
                prefix: "plant-a".into(),
                user: "telemetry".into(),
                hang_timeout_ms: 2500
            }
        );
        assert_eq!(settings(&inv(Some(p), Some("other"))).unwrap().prefix, "other");
        let e = settings(&inv(Some("/nonexistent/x.toml"), None)).unwrap_err();
        assert_eq!(e.code, crate::error::EXIT_CONFIG);
        assert!(e.message.contains("cannot read /nonexistent/x.toml"), "{e}");
        let e = settings(&inv(Some(p), Some("../etc"))).unwrap_err();
        assert_eq!(e.code, crate::error::EXIT_USAGE);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
