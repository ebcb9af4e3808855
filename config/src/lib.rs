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

mod aggd;
mod args;
mod decoded;
mod emitd;
mod error;
mod ingestd;
mod pipeline;
mod secret;
mod supervisor;
mod wire;

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use aggd::{Aggd, Statistic};
pub use args::{from_args, path_from_args, VERSION};
pub use decoded::{Decoded, PayloadFormat};
pub use emitd::{AggregateFormat, Emitd, Kafka, KafkaCompression, SINKS};
pub use error::ConfigError;
pub use ingestd::{Http, Ingestd, WhenRingFull};
pub use pipeline::{Pipeline, Wait};
pub use secret::{check_secret_file, read_secret, read_secret_bytes, MAX_SECRET_BYTES};
pub use supervisor::Supervisor;
pub use wire::{redact_url, url_has_credentials};

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

    /// Reads a file for an observer (`telemetryctl`): the whole file must parse, but only the
    /// sections an observer uses (`[pipeline]`, `[supervisor]`) are checked. The stages' checks
    /// open their secret and certificate files, which an observer in the `telemetry` group is
    /// rightly not allowed to read (docs/security.md).
    pub fn load_for_observer(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            key: String::new(),
            problem: format!("cannot read {}: {e}", path.display()),
        })?;
        let config: Config = toml::from_str(&text).map_err(|e| ConfigError {
            key: String::new(),
            problem: format!(
                "{} (in {})",
                e.to_string().trim_end().replace('\n', " "),
                path.display()
            ),
        })?;
        config.pipeline.check()?;
        config.supervisor.check()?;
        Ok(config)
    }

    /// Parses and checks a TOML document.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        // Earlier releases took the MQTT password in the file: say where it goes now.
        if let Ok(table) = toml::from_str::<toml::Table>(text) {
            if table.get("ingestd").and_then(|i| i.get("password")).is_some() {
                return Err(ConfigError {
                    key: "ingestd.password".into(),
                    problem: "passwords are not written in the config: put it in a file only the \
                              service can read and set ingestd.password_file"
                        .into(),
                });
            }
        }
        let config: Config = toml::from_str(text).map_err(|e| ConfigError {
            key: String::new(),
            problem: e.to_string().trim_end().replace('\n', " "),
        })?;
        config.check()?;
        Ok(config)
    }

    /// Checks every value that TOML's types cannot.
    pub fn check(&self) -> Result<(), ConfigError> {
        self.pipeline.check()?;
        self.wait.check()?;
        self.ingestd.check()?;
        self.aggd.check()?;
        self.emitd.check()?;
        self.supervisor.check()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(toml: &str) -> String {
        Config::from_toml(toml).unwrap_err().to_string()
    }

    #[test]
    fn an_observer_reads_a_config_whose_secrets_it_cannot_open() {
        let dir = std::env::temp_dir().join(format!("config-observer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("telemetry.toml");
        let text = "[pipeline]\nprefix = \"plant-a\"\n[emitd]\ntoken_file = \"/nonexistent/secrets/token\"\n";
        std::fs::write(&path, text).unwrap();
        let stage = Config::load(&path).unwrap_err().to_string();
        let observer = Config::load_for_observer(&path);
        std::fs::write(&path, "[pipeline]\nprefix = \"../x\"\n").unwrap();
        let bad_prefix = Config::load_for_observer(&path).unwrap_err().to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(stage.contains("emitd.token_file"), "{stage}");
        assert_eq!(observer.unwrap().pipeline.prefix, "plant-a");
        assert!(bad_prefix.contains("pipeline.prefix"), "{bad_prefix}");
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
        assert_eq!(
            err("[aggd]\nstatistics = []\n"),
            "config: aggd.statistics = []: must name at least one statistic"
        );
        assert_eq!(
            err("[aggd]\nstatistics = [\"min\", \"count\", \"min\"]\n"),
            "config: aggd.statistics = min: is listed twice"
        );
        assert!(err("[aggd]\nstatistics = [\"median\"]\n").contains("median"));
        assert_eq!(
            err("[aggd]\nhistogram_buckets = 64\n"),
            "config: aggd.histogram_buckets = 64: must be between 8 and 32"
        );
        assert_eq!(
            err("[aggd]\nquantiles = [0.5, 1.5]\n"),
            "config: aggd.quantiles = 1.5: must be between 0 and 1"
        );
        assert_eq!(
            err("[aggd]\nquantiles = [0.99, 0.99]\n"),
            "config: aggd.quantiles = 0.99: is listed twice"
        );
        assert_eq!(
            err("[aggd]\nstatistics = [\"quantiles\"]\nquantiles = []\n"),
            "config: aggd.quantiles = []: must name at least one quantile"
        );
        let q = Config::from_toml("[aggd]\nstatistics = [\"count\", \"quantiles\"]\nquantiles = [0.999]\n").unwrap();
        assert!(q.aggd.keeps_histograms() && !Config::default().aggd.keeps_histograms());
        assert_eq!(
            err("[aggd]\nmax_keys = 5000001\n"),
            "config: aggd.max_keys = 5000001: must be at most 5000000"
        );
        assert!(Config::from_toml("[aggd]\nmax_keys = 5000000\n").is_ok());
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
            for (key, value) in keys.as_object().unwrap() {
                let table = written.get(section).and_then(|t| t.get(key));
                assert!(
                    table.is_some(),
                    "deploy/telemetry.toml does not document {section}.{key}"
                );
                // A sub-section ([emitd.kafka]): every key of it too.
                for sub in value.as_object().into_iter().flat_map(|o| o.keys()) {
                    assert!(
                        table.and_then(|t| t.get(sub)).is_some(),
                        "deploy/telemetry.toml does not document {section}.{key}.{sub}"
                    );
                }
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
    fn secrets_are_files_never_values() {
        assert!(err("[ingestd]\npassword = \"x\"\n").starts_with("config: ingestd.password: passwords are not written"));
        assert!(
            err("[ingestd]\nusername = \"u\"\npassword_file = \"/nonexistent/pw\"\n")
                .starts_with("config: ingestd.password_file = \"/nonexistent/pw\": cannot read the secret file")
        );
        assert!(err("[ingestd]\npassword_file = \"/nonexistent/pw\"\n").contains("needs ingestd.username"));
        assert!(err("[ingestd]\nbroker = \"mqtts://h:1\"\ncert_file = \"/c.pem\"\n").contains("set both or neither"));
        assert!(err("[ingestd]\nca_file = \"/ca.pem\"\n").contains("needs an mqtts:// broker"));
    }

    #[test]
    fn a_missing_file_is_a_clear_error() {
        let e = Config::load(Path::new("/nonexistent/telemetry.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot read /nonexistent/telemetry.toml"), "{e}");
    }
}
