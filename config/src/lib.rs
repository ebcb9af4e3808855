//! The configuration file: one TOML document with a section per stage and one for the
//! supervisor. Every key has a default, so an empty file is a valid configuration for a
//! pipeline on loopback; `deploy/telemetry.toml` lists every key with its meaning.
//!
//! Errors name the key and the problem (`ingestd.qos = 2: must be 0 or 1`), and unknown keys
//! are errors, so a typo never silently falls back to a default.
//!
//! ```
//! let config = telemetry_config::Config::from_toml("[aggd]\nwindow_ms = 1000\nemit_every_ms = 250\n").unwrap();
//! assert_eq!(config.aggd.panes(), 4);
//! let err = telemetry_config::Config::from_toml("[ingestd]\nqos = 2\n").unwrap_err();
//! assert_eq!(err.to_string(), "config: ingestd.qos = 2: must be 0 or 1");
//! ```

#![deny(missing_docs)]

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The whole file.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Settings shared by every process.
    pub pipeline: Pipeline,
    /// The ring waits of every stage.
    pub wait: Wait,
    /// The MQTT subscriber.
    pub ingestd: Ingestd,
    /// The decoder.
    pub decoded: Decoded,
    /// The window aggregator.
    pub aggd: Aggd,
    /// The NATS publisher.
    pub emitd: Emitd,
    /// The supervisor.
    pub supervisor: Supervisor,
}

/// `[pipeline]`
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Pipeline {
    /// Prefix of every segment in `/dev/shm` (`<prefix>.raw`, `<prefix>.stats`, …). Two
    /// pipelines on one host need two prefixes.
    pub prefix: String,
    /// This pipeline's name, sent in every aggregate; pipelines in one shared-subscription group
    /// need distinct names.
    pub instance: String,
    /// Slots of the raw ring (ingestd → decoded); a power of two.
    pub raw_ring: u64,
    /// Slots of the readings ring (decoded → aggd); a power of two.
    pub readings_ring: u64,
    /// Slots of the aggregates ring (aggd → emitd); a power of two.
    pub aggregates_ring: u64,
}

impl Default for Pipeline {
    fn default() -> Self {
        Pipeline {
            prefix: "telemetry".into(),
            instance: "telemetry".into(),
            raw_ring: 65536,
            readings_ring: 65536,
            aggregates_ring: 16384,
        }
    }
}

/// `[wait]`: how an idle stage waits on its input ring (see `shm_ring::WaitStrategy`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Wait {
    /// Length of one nap in µs: the latency a burst may wait so that it is taken as one batch.
    pub nap_us: u64,
    /// Naps before sleeping on the futex until woken.
    pub naps: u32,
}

impl Default for Wait {
    fn default() -> Self {
        Wait { nap_us: 2_000, naps: 1 }
    }
}

/// `[ingestd]`
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Ingestd {
    /// `mqtt://host:port` or `mqtts://host:port` (TLS).
    pub broker: String,
    /// Topic filters to subscribe to.
    pub topics: Vec<String>,
    /// Subscription QoS: 0 or 1.
    pub qos: u8,
    /// Shared-subscription group; empty for none. With a group, each filter is subscribed as
    /// `$share/<group>/<filter>` and the broker splits the stream between the group's members.
    pub share_group: String,
    /// MQTT client id; empty for `ingestd-<instance>-<host name>`, unique to this pipeline on
    /// this host, so that the broker keeps its session across restarts and no other pipeline
    /// takes it over.
    pub client_id: String,
    /// Username; empty for none.
    pub username: String,
    /// Password; empty for none.
    pub password: String,
    /// PEM file with the CA certificates for `mqtts://`; empty for the system roots.
    pub ca_file: String,
    /// MQTT 5 clean start. `false` (the default) resumes the broker's session, so what arrives
    /// while ingestd restarts is queued for it; `true` starts afresh and loses it.
    pub clean_start: bool,
    /// MQTT 5 session expiry in seconds (0: the session ends with the connection, and what
    /// arrives while ingestd is away is lost).
    pub session_expiry_s: u32,
    /// What a QoS 1 message meets when the raw ring is full: `hold` (it waits in ingestd, unacked,
    /// until the ring has room; the broker's in-flight window bounds how many wait, and the broker
    /// queues the rest) or `drop` (acked, dropped and counted as `dropped.ring_full`). QoS 0
    /// messages are always dropped and counted.
    pub when_ring_full: WhenRingFull,
    /// Keep-alive in seconds.
    pub keep_alive_s: u64,
    /// Largest payload accepted, in bytes; larger ones are dropped as `payload_too_large`. At
    /// most 384 (what a raw record holds).
    pub max_payload: usize,
    /// First reconnect delay in ms; doubles per failed attempt up to `reconnect_max_ms`, with jitter.
    pub reconnect_min_ms: u64,
    /// Longest reconnect delay in ms.
    pub reconnect_max_ms: u64,
    /// Latency budget in µs: once the socket is drained and the batch is in the ring, ingestd
    /// pauses this long before reading again, so that the next read returns many messages
    /// instead of a few. 0 reads again at once (lowest latency, most CPU per message).
    pub batch_budget_us: u64,
}

impl Default for Ingestd {
    fn default() -> Self {
        Ingestd {
            broker: "mqtt://127.0.0.1:1883".into(),
            topics: vec!["site/+/sensor/+".into()],
            qos: 1,
            share_group: String::new(),
            client_id: String::new(),
            username: String::new(),
            password: String::new(),
            ca_file: String::new(),
            clean_start: false,
            session_expiry_s: 3_600,
            when_ring_full: WhenRingFull::Hold,
            keep_alive_s: 30,
            max_payload: 384,
            reconnect_min_ms: 100,
            reconnect_max_ms: 10_000,
            batch_budget_us: 2_000,
        }
    }
}

impl Ingestd {
    /// The MQTT client id: `client_id`, or when that is empty `ingestd-<instance>-<host name>`
    /// (the broker keys the session by it, so it must stay the same across restarts and differ
    /// between pipelines that share a broker).
    pub fn client_id_for(&self, instance: &str) -> String {
        if !self.client_id.is_empty() {
            return self.client_id.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let host: String = host
            .trim()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!("ingestd-{instance}-{host}")
    }

    /// The longest pause ingestd makes once its socket is drained: `batch_budget_us` stretched
    /// up to 8 times while the messages trickle in at QoS 0 (a few per budget), so that a
    /// quiet pipeline wakes up ~60 times a second instead of 500. aggd allows for it before
    /// emitting a boundary.
    pub fn longest_pause(&self) -> std::time::Duration {
        std::time::Duration::from_micros(self.batch_budget_us.saturating_mul(8))
    }
}

/// `[ingestd] when_ring_full`.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum WhenRingFull {
    /// QoS 1 messages wait, unacked, until the ring has room (backpressure to the broker).
    Hold,
    /// QoS 1 messages are acked and dropped (counted).
    Drop,
}

/// How a payload is encoded.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PayloadFormat {
    /// From the MQTT 5 content type, then the per-topic lists, then the first byte.
    Auto,
    /// Always CBOR.
    Cbor,
    /// Always JSON.
    Json,
}

/// `[decoded]`
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Decoded {
    /// Format of payloads that declare no content type and match no list below.
    pub format: PayloadFormat,
    /// Topic filters (MQTT syntax, `+` and `#`) whose payloads are JSON.
    pub json_topics: Vec<String>,
    /// Topic filters whose payloads are CBOR.
    pub cbor_topics: Vec<String>,
}

impl Default for Decoded {
    fn default() -> Self {
        Decoded {
            format: PayloadFormat::Auto,
            json_topics: Vec::new(),
            cbor_topics: Vec::new(),
        }
    }
}

/// `[aggd]`
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Aggd {
    /// Window length in ms; a multiple of `emit_every_ms`.
    pub window_ms: u64,
    /// Emission interval in ms: every key with samples in the window is emitted this often.
    pub emit_every_ms: u64,
    /// Most keys tracked at once; beyond it the least recently seen key is evicted (counted).
    pub max_keys: u32,
    /// A key with no sample for this long (ms) is forgotten; at least `window_ms`.
    pub idle_ttl_ms: u64,
}

impl Aggd {
    /// Panes per window: one partial aggregate per emission interval.
    pub fn panes(&self) -> u64 {
        self.window_ms / self.emit_every_ms.max(1)
    }
}

impl Default for Aggd {
    fn default() -> Self {
        Aggd {
            window_ms: 60_000,
            emit_every_ms: 5_000,
            max_keys: 100_000,
            idle_ttl_ms: 600_000,
        }
    }
}

/// How emitd encodes an aggregate.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AggregateFormat {
    /// A JSON object.
    Json,
    /// A CBOR map with the same keys.
    Cbor,
}

/// `[emitd]`
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Emitd {
    /// `nats://host:port` or `tls://host:port`.
    pub nats: String,
    /// Subjects are `<subject_prefix>.<device>.<sensor>`.
    pub subject_prefix: String,
    /// Payload encoding.
    pub format: AggregateFormat,
    /// Publish through JetStream with acks and a `Nats-Msg-Id`, so the server deduplicates
    /// what a restarted emitd sends again.
    pub jetstream: bool,
    /// Aggregates held while NATS is unreachable; beyond it they are dropped and counted.
    pub max_backlog: usize,
    /// PEM file with CA certificates for `tls://`; empty for the system roots.
    pub ca_file: String,
}

impl Default for Emitd {
    fn default() -> Self {
        Emitd {
            nats: "nats://127.0.0.1:4222".into(),
            subject_prefix: "telemetry.agg".into(),
            format: AggregateFormat::Json,
            jetstream: false,
            max_backlog: 100_000,
            ca_file: String::new(),
        }
    }
}

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
            poison_attempts: 3,
            dead_letter_file: String::new(),
            dead_letter_max_bytes: 1 << 20,
        }
    }
}

/// A configuration error: which key, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// `section.key`, or empty when the file itself is the problem.
    pub key: String,
    /// What is wrong.
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "config: {}", self.problem)
        } else {
            write!(f, "config: {}: {}", self.key, self.problem)
        }
    }
}

impl std::error::Error for ConfigError {}

fn bad(key: &str, value: impl fmt::Display, problem: &str) -> ConfigError {
    ConfigError {
        key: format!("{key} = {value}"),
        problem: problem.to_owned(),
    }
}

fn check_ring(key: &str, slots: u64) -> Result<(), ConfigError> {
    if !(2..=1 << 24).contains(&slots) || !slots.is_power_of_two() {
        return Err(bad(key, slots, "must be a power of two from 2 to 16777216"));
    }
    Ok(())
}

fn check_name(key: &str, value: &str) -> Result<(), ConfigError> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && !value.starts_with('.')
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !ok {
        return Err(bad(
            key,
            format!("{value:?}"),
            "must be 1 to 64 of A-Z a-z 0-9 _ - . and not start with a dot",
        ));
    }
    Ok(())
}

fn check_url(key: &str, value: &str, schemes: &[&str]) -> Result<(), ConfigError> {
    let Some((scheme, rest)) = value.split_once("://") else {
        return Err(bad(
            key,
            format!("{value:?}"),
            &format!("must be a URL with scheme {}", schemes.join(" or ")),
        ));
    };
    if !schemes.contains(&scheme) {
        return Err(bad(
            key,
            format!("{value:?}"),
            &format!("scheme must be {}", schemes.join(" or ")),
        ));
    }
    let Some((host, port)) = rest.trim_end_matches('/').rsplit_once(':') else {
        return Err(bad(key, format!("{value:?}"), "must name a host and a port"));
    };
    if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(bad(
            key,
            format!("{value:?}"),
            "must name a host and a port from 1 to 65535",
        ));
    }
    Ok(())
}

impl Config {
    /// Reads and checks a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            key: String::new(),
            problem: format!("cannot read {}: {e}", path.display()),
        })?;
        Config::from_toml(&text).map_err(|mut e| {
            e.problem = format!("{} (in {})", e.problem, path.display());
            e
        })
    }

    /// Parses and checks a TOML document.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError {
            key: String::new(),
            problem: e.to_string().trim_end().replace('\n', " "),
        })?;
        config.check()?;
        Ok(config)
    }

    /// Checks every value that TOML's types cannot.
    pub fn check(&self) -> Result<(), ConfigError> {
        let p = &self.pipeline;
        check_name("pipeline.prefix", &p.prefix)?;
        check_name("pipeline.instance", &p.instance)?;
        check_ring("pipeline.raw_ring", p.raw_ring)?;
        check_ring("pipeline.readings_ring", p.readings_ring)?;
        check_ring("pipeline.aggregates_ring", p.aggregates_ring)?;
        if self.wait.nap_us > 100_000 {
            return Err(bad("wait.nap_us", self.wait.nap_us, "must be at most 100000 (100 ms)"));
        }

        let i = &self.ingestd;
        check_url("ingestd.broker", &i.broker, &["mqtt", "mqtts"])?;
        if i.topics.is_empty() {
            return Err(bad("ingestd.topics", "[]", "must name at least one topic filter"));
        }
        for t in &i.topics {
            if t.is_empty() || t.starts_with("$share/") || t.contains('\0') {
                return Err(bad(
                    "ingestd.topics",
                    format!("{t:?}"),
                    "must be a topic filter (use ingestd.share_group for shared subscriptions)",
                ));
            }
        }
        if i.qos > 1 {
            return Err(bad("ingestd.qos", i.qos, "must be 0 or 1"));
        }
        if i.share_group.contains(['/', '+', '#']) {
            return Err(bad(
                "ingestd.share_group",
                format!("{:?}", i.share_group),
                "must not contain / + or #",
            ));
        }
        if i.max_payload == 0 || i.max_payload > 384 {
            return Err(bad("ingestd.max_payload", i.max_payload, "must be from 1 to 384 bytes"));
        }
        if i.reconnect_min_ms == 0 || i.reconnect_min_ms > i.reconnect_max_ms {
            return Err(bad(
                "ingestd.reconnect_min_ms",
                i.reconnect_min_ms,
                "must be at least 1 and at most ingestd.reconnect_max_ms",
            ));
        }
        if i.batch_budget_us > 100_000 {
            return Err(bad(
                "ingestd.batch_budget_us",
                i.batch_budget_us,
                "must be at most 100000 (100 ms)",
            ));
        }
        if i.keep_alive_s < 5 || i.keep_alive_s > 65535 {
            return Err(bad("ingestd.keep_alive_s", i.keep_alive_s, "must be from 5 to 65535"));
        }

        let a = &self.aggd;
        if a.emit_every_ms == 0 {
            return Err(bad("aggd.emit_every_ms", 0, "must be at least 1"));
        }
        if a.window_ms < a.emit_every_ms || !a.window_ms.is_multiple_of(a.emit_every_ms) {
            return Err(bad(
                "aggd.window_ms",
                a.window_ms,
                "must be a multiple of aggd.emit_every_ms",
            ));
        }
        if a.panes() > 64 {
            return Err(bad(
                "aggd.window_ms",
                a.window_ms,
                "must be at most 64 × aggd.emit_every_ms",
            ));
        }
        if a.max_keys == 0 {
            return Err(bad("aggd.max_keys", 0, "must be at least 1"));
        }
        if a.idle_ttl_ms < a.window_ms {
            return Err(bad(
                "aggd.idle_ttl_ms",
                a.idle_ttl_ms,
                "must be at least aggd.window_ms",
            ));
        }

        let e = &self.emitd;
        check_url("emitd.nats", &e.nats, &["nats", "tls"])?;
        if e.subject_prefix.is_empty()
            || e.subject_prefix
                .split('.')
                .any(|t| t.is_empty() || t.contains(['*', '>', ' ', '\t', '\r', '\n']))
        {
            return Err(bad(
                "emitd.subject_prefix",
                format!("{:?}", e.subject_prefix),
                "must be dot-separated non-empty tokens without * > or whitespace",
            ));
        }
        if e.max_backlog == 0 {
            return Err(bad("emitd.max_backlog", 0, "must be at least 1"));
        }

        let s = &self.supervisor;
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
        Ok(())
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn err(toml: &str) -> String {
        Config::from_toml(toml).unwrap_err().to_string()
    }

    #[test]
    fn an_empty_file_is_the_defaults() {
        assert_eq!(Config::from_toml("").unwrap(), Config::default());
    }

    #[test]
    fn errors_name_the_key_and_the_problem() {
        assert_eq!(
            err("[pipeline]\nraw_ring = 1000\n"),
            "config: pipeline.raw_ring = 1000: must be a power of two from 2 to 16777216"
        );
        assert!(err("[ingestd]\nbroker = \"http://x:1\"\n").starts_with("config: ingestd.broker"));
        assert!(err("[ingestd]\nbroker = \"mqtt://x\"\n").contains("host and a port"));
        assert!(err("[aggd]\nwindow_ms = 1000\nemit_every_ms = 300\n").starts_with("config: aggd.window_ms = 1000"));
        assert!(err("[emitd]\nsubject_prefix = \"a.>\"\n").starts_with("config: emitd.subject_prefix"));
        assert!(err("[pipeline]\nprefix = \"../x\"\n").starts_with("config: pipeline.prefix"));
        assert!(err("[ingestd]\ntopics = [\"$share/g/t\"]\n").contains("share_group"));
        assert!(err("[supervisor]\nmetrics_listen = \"localhost\"\n").starts_with("config: supervisor.metrics_listen"));
        assert_eq!(
            err("[supervisor]\nstart_timeout_ms = 10\n"),
            "config: supervisor.start_timeout_ms = 10: must be at least 100"
        );
        assert!(err("[supervisor]\nmin_uptime_ms = 3600001\n").starts_with("config: supervisor.min_uptime_ms"));
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_errors() {
        let e = err("[ingestd]\nqoss = 1\n");
        assert!(e.contains("qoss"), "{e}");
        let e = err("[ingestd]\nqos = \"one\"\n");
        assert!(e.contains("qos") || e.contains("invalid type"), "{e}");
        assert!(err("[nonesuch]\n").contains("nonesuch"));
        assert!(err("not toml at all").starts_with("config: "));
    }

    /// The documented example lists every key with its default value.
    #[test]
    fn the_deploy_example_is_valid_and_shows_the_defaults() {
        let example = Config::from_toml(include_str!("../../deploy/telemetry.toml")).unwrap();
        let mut expected = Config::default();
        expected.supervisor.dead_letter_file = "/var/lib/telemetry/dead-letter.jsonl".into();
        assert_eq!(example, expected);
        // And it spells out every key, so that it documents them all.
        let written: toml::Table = toml::from_str(include_str!("../../deploy/telemetry.toml")).unwrap();
        let fields = serde_json::to_value(Config::default()).unwrap();
        for (section, keys) in fields.as_object().unwrap() {
            for key in keys.as_object().unwrap().keys() {
                assert!(
                    written.get(section).and_then(|t| t.get(key)).is_some(),
                    "deploy/telemetry.toml does not document {section}.{key}"
                );
            }
        }
    }

    #[test]
    fn an_empty_client_id_is_derived_from_the_instance_and_host() {
        let mut i = Ingestd::default();
        let derived = i.client_id_for("edge-7");
        assert!(derived.starts_with("ingestd-edge-7-"), "{derived}");
        assert!(derived.len() > "ingestd-edge-7-".len(), "the host name is part of it");
        assert_eq!(derived, i.client_id_for("edge-7"), "stable across restarts");
        assert_ne!(derived, i.client_id_for("edge-8"));
        i.client_id = "mine".into();
        assert_eq!(i.client_id_for("edge-7"), "mine");
    }

    #[test]
    fn a_missing_file_is_a_clear_error() {
        let e = Config::load(Path::new("/nonexistent/telemetry.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot read /nonexistent/telemetry.toml"), "{e}");
    }
}
