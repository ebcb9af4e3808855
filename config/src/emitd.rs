//! `[emitd]`: the publisher.

use serde::{Deserialize, Serialize};

use crate::error::{bad, check_url, ConfigError};

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

impl Emitd {
    /// Checks what TOML's types cannot.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        let e = self;
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
        Ok(())
    }
}
