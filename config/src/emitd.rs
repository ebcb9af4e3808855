//! `[emitd]`: the publisher.

use serde::{Deserialize, Serialize};

use crate::error::{bad, check_url, ConfigError};
use crate::secret::check_secret_file;

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
    /// PEM client certificate chain for mutual TLS; needs `key_file`.
    pub cert_file: String,
    /// PEM private key of `cert_file` (a secret file).
    pub key_file: String,
    /// The name the server's certificate must carry when it is not the host in `nats`; empty for
    /// that host.
    pub tls_server_name: String,
    /// File holding an authentication token (a secret file); empty for none.
    pub token_file: String,
    /// User name, with `password_file`; empty for none.
    pub user: String,
    /// File holding the password of `user` (a secret file).
    pub password_file: String,
    /// File holding an NKey seed (`SU...`, a secret file); empty for none.
    pub nkey_seed_file: String,
    /// A `.creds` file (user JWT and NKey seed, as `nsc` writes it; a secret file); empty for none.
    pub credentials_file: String,
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
            cert_file: String::new(),
            key_file: String::new(),
            tls_server_name: String::new(),
            token_file: String::new(),
            user: String::new(),
            password_file: String::new(),
            nkey_seed_file: String::new(),
            credentials_file: String::new(),
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
        for (key, path) in [
            ("emitd.key_file", &e.key_file),
            ("emitd.token_file", &e.token_file),
            ("emitd.password_file", &e.password_file),
            ("emitd.nkey_seed_file", &e.nkey_seed_file),
            ("emitd.credentials_file", &e.credentials_file),
        ] {
            check_secret_file(key, path)?;
        }
        if e.cert_file.is_empty() != e.key_file.is_empty() {
            return Err(bad(
                "emitd.cert_file",
                format!("{:?}", e.cert_file),
                "cert_file and key_file go together: set both or neither",
            ));
        }
        if e.user.is_empty() != e.password_file.is_empty() {
            return Err(bad(
                "emitd.user",
                format!("{:?}", e.user),
                "user and password_file go together: set both or neither",
            ));
        }
        let methods = [
            !e.token_file.is_empty(),
            !e.user.is_empty(),
            !e.nkey_seed_file.is_empty(),
            !e.credentials_file.is_empty(),
        ];
        if methods.iter().filter(|m| **m).count() > 1 {
            return Err(ConfigError {
                key: "emitd".into(),
                problem: "set at most one of token_file, user + password_file, nkey_seed_file and credentials_file"
                    .into(),
            });
        }
        Ok(())
    }
}
