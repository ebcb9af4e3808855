//! `[supervisor]`: OTP-style supervision of the four stages.

use serde::{Deserialize, Serialize};

use crate::error::{bad, ConfigError};

/// The most `metrics_max_connections` may say: each connection holds up to a few tens of KiB
/// (its request head and the answer) and a file descriptor of the supervisor's.
const METRICS_MAX_CONNECTIONS_LIMIT: usize = 256;

/// `[supervisor]`, in Erlang/OTP terms: one_for_one, with restart intensity and period.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Supervisor {
    /// Directory of the stage binaries; empty for the supervisor's own directory.
    pub bin_dir: String,
    /// More than this many restarts within `restart_period_s` stops the pipeline and exits non-zero.
    pub restart_intensity: u32,
    /// The period of the restart intensity, in seconds.
    pub restart_period_s: u64,
    /// How long a stage may take to stop after SIGTERM before SIGKILL (ms).
    pub shutdown_timeout_ms: u64,
    /// A stage whose heartbeat is older than this (ms) is killed and restarted as hung; so is
    /// decoded or aggd when its input has records and room downstream but its position has not
    /// moved for this long.
    pub hang_timeout_ms: u64,
    /// A stage still starting (not ready) after this long (ms) is killed and restarted as hung.
    pub start_timeout_ms: u64,
    /// A stage that was ready for at least this long (ms), or did work since it was ready, is
    /// restarted at once when it exits; one that exits sooner without work is in a crash loop and
    /// waits an exponential backoff (100 ms doubling to 10 s) before each restart.
    pub min_uptime_ms: u64,
    /// Keep the segments in `/dev/shm` after a clean stop.
    pub keep_segments: bool,
    /// Prometheus text endpoint, for example `127.0.0.1:9108`; empty for none.
    pub metrics_listen: String,
    /// Open connections to the metrics endpoint at most; one beyond is answered 503.
    pub metrics_max_connections: usize,
    /// A metrics client must send its whole request head within this long (ms), or is closed.
    pub metrics_header_timeout_ms: u64,
    /// After its request head, a metrics client must take the whole answer within this long (ms).
    pub metrics_write_timeout_ms: u64,
    /// A stage that dies this many times in a row on the same input record has that record
    /// skipped (counted, and written to `dead_letter_file`); 0 never skips.
    pub poison_attempts: u32,
    /// Where skipped records go, one JSON object per line; empty for nowhere (still counted).
    pub dead_letter_file: String,
    /// The dead-letter file's size limit in bytes; records beyond it are counted, not written.
    pub dead_letter_max_bytes: u64,
}

impl Default for Supervisor {
    fn default() -> Self {
        Supervisor {
            bin_dir: String::new(),
            restart_intensity: 5,
            restart_period_s: 60,
            shutdown_timeout_ms: 5_000,
            hang_timeout_ms: 10_000,
            start_timeout_ms: 30_000,
            min_uptime_ms: 500,
            keep_segments: false,
            metrics_listen: String::new(),
            metrics_max_connections: 16,
            metrics_header_timeout_ms: 5_000,
            metrics_write_timeout_ms: 10_000,
            poison_attempts: 3,
            dead_letter_file: String::new(),
            dead_letter_max_bytes: 1 << 20,
        }
    }
}

impl Supervisor {
    /// Checks what TOML's types cannot.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        let s = self;
        if s.restart_period_s == 0 {
            return Err(bad("supervisor.restart_period_s", 0, "must be at least 1"));
        }
        if s.hang_timeout_ms < 100 {
            return Err(bad(
                "supervisor.hang_timeout_ms",
                s.hang_timeout_ms,
                "must be at least 100",
            ));
        }
        if s.start_timeout_ms < 100 {
            return Err(bad(
                "supervisor.start_timeout_ms",
                s.start_timeout_ms,
                "must be at least 100",
            ));
        }
        if s.min_uptime_ms > 3_600_000 {
            return Err(bad(
                "supervisor.min_uptime_ms",
                s.min_uptime_ms,
                "must be at most 3600000 (an hour)",
            ));
        }
        if !s.metrics_listen.is_empty() && s.metrics_listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(bad(
                "supervisor.metrics_listen",
                format!("{:?}", s.metrics_listen),
                "must be an address and port such as 127.0.0.1:9108",
            ));
        }
        if !(1..=METRICS_MAX_CONNECTIONS_LIMIT).contains(&s.metrics_max_connections) {
            return Err(bad(
                "supervisor.metrics_max_connections",
                s.metrics_max_connections,
                "must be 1 to 256",
            ));
        }
        for (key, ms) in [
            ("supervisor.metrics_header_timeout_ms", s.metrics_header_timeout_ms),
            ("supervisor.metrics_write_timeout_ms", s.metrics_write_timeout_ms),
        ] {
            if !(100..=60_000).contains(&ms) {
                return Err(bad(key, ms, "must be 100 to 60000 (a minute)"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;

    fn err(toml: &str) -> String {
        Config::from_toml(toml).unwrap_err().to_string()
    }

    #[test]
    fn the_metrics_bounds_are_checked_by_name() {
        assert_eq!(
            err("[supervisor]\nmetrics_max_connections = 0\n"),
            "config: supervisor.metrics_max_connections = 0: must be 1 to 256"
        );
        assert!(err("[supervisor]\nmetrics_max_connections = 257\n")
            .starts_with("config: supervisor.metrics_max_connections"));
        assert_eq!(
            err("[supervisor]\nmetrics_header_timeout_ms = 99\n"),
            "config: supervisor.metrics_header_timeout_ms = 99: must be 100 to 60000 (a minute)"
        );
        assert!(err("[supervisor]\nmetrics_write_timeout_ms = 60001\n")
            .starts_with("config: supervisor.metrics_write_timeout_ms"));
        let c = Config::from_toml(
            "[supervisor]\nmetrics_max_connections = 256\nmetrics_header_timeout_ms = 100\nmetrics_write_timeout_ms = 60000\n",
        )
        .unwrap();
        assert_eq!(c.supervisor.metrics_max_connections, 256);
    }
}
