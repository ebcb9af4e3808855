//! `[emitd]`: the publisher, its sinks, and `[emitd.kafka]`.

use serde::{Deserialize, Serialize};

use crate::error::{bad, check_url, ConfigError};
use crate::secret::check_secret_file;
use crate::wire::{plaintext_credentials, redact_url, url_has_credentials};

/// How emitd encodes an aggregate.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AggregateFormat {
    /// A JSON object.
    Json,
    /// A CBOR map with the same keys.
    Cbor,
}

/// The sinks emitd knows (`[emitd] sinks`).
pub const SINKS: [&str; 2] = ["nats", "kafka"];

/// `[emitd]`
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Emitd {
    /// Where aggregates go: `nats` (core or JetStream, see `jetstream`), `kafka`, or both. Each
    /// has its own bounded backlog; the ring is released once every sink took or dropped a record.
    pub sinks: Vec<String>,
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
    /// Accept sending credentials (any of the four above, or `user:pass@` in `nats`) over a
    /// plaintext wire. Off by default: credentials need TLS (a `tls://` URL, or `ca_file`,
    /// `cert_file` or `tls_server_name`, with which emitd refuses a server that offers no TLS).
    pub allow_plaintext_credentials: bool,
    /// `[emitd.kafka]`: the Kafka sink.
    pub kafka: Kafka,
}

/// `[emitd.kafka] compression`.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum KafkaCompression {
    /// zstd (the default): the smallest batches.
    Zstd,
    /// lz4: the cheapest to compress.
    Lz4,
    /// No compression.
    None,
}

impl KafkaCompression {
    /// The librdkafka `compression.codec` value.
    pub fn codec(self) -> &'static str {
        match self {
            KafkaCompression::Zstd => "zstd",
            KafkaCompression::Lz4 => "lz4",
            KafkaCompression::None => "none",
        }
    }
}

/// `[emitd.kafka]`: the Kafka sink (used when `sinks` names `kafka`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Kafka {
    /// Bootstrap brokers, `host:port` each.
    pub brokers: Vec<String>,
    /// The topic; it must exist (emitd does not create topics).
    pub topic: String,
    /// Aggregates handed to the producer and not yet acknowledged; while no broker is up and this
    /// many wait, new ones are dropped and counted (`dropped.kafka_backlog_full`).
    pub max_backlog: usize,
    /// Payload compression of a batch.
    pub compression: KafkaCompression,
    /// How long the producer waits to fill a batch (`linger.ms`).
    pub linger_ms: u32,
    /// Most messages in one batch (`batch.num.messages`).
    pub batch_messages: u32,
    /// Connect with TLS.
    pub tls: bool,
    /// PEM file with CA certificates for TLS; empty for the system roots.
    pub ca_file: String,
    /// PEM client certificate for TLS; empty for none.
    pub cert_file: String,
    /// PEM private key of `cert_file`; readable by the service only.
    pub key_file: String,
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`; empty for no SASL.
    pub sasl_mechanism: String,
    /// SASL user name.
    pub sasl_username: String,
    /// File holding the SASL password (one line); readable by the service only.
    pub sasl_password_file: String,
    /// Accept SASL over a plaintext wire (`tls = false`, librdkafka's `sasl_plaintext`). Off by
    /// default: SASL needs `tls = true`.
    pub allow_plaintext_credentials: bool,
}

impl Default for Kafka {
    fn default() -> Self {
        Kafka {
            brokers: Vec::new(),
            topic: "telemetry.agg".into(),
            max_backlog: 100_000,
            compression: KafkaCompression::Zstd,
            linger_ms: 5,
            batch_messages: 10_000,
            tls: false,
            ca_file: String::new(),
            cert_file: String::new(),
            key_file: String::new(),
            sasl_mechanism: String::new(),
            sasl_username: String::new(),
            sasl_password_file: String::new(),
            allow_plaintext_credentials: false,
        }
    }
}

impl Default for Emitd {
    fn default() -> Self {
        Emitd {
            nats: "nats://127.0.0.1:4222".into(),
            subject_prefix: "telemetry.agg".into(),
            format: AggregateFormat::Json,
            sinks: vec!["nats".into()],
            jetstream: false,
            max_backlog: 100_000,
            ca_file: String::new(),
            kafka: Kafka::default(),
            cert_file: String::new(),
            key_file: String::new(),
            tls_server_name: String::new(),
            token_file: String::new(),
            user: String::new(),
            password_file: String::new(),
            nkey_seed_file: String::new(),
            credentials_file: String::new(),
            allow_plaintext_credentials: false,
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
        e.check_credentials_wire()?;
        let sinks = format!("{:?}", e.sinks);
        if e.sinks.is_empty() {
            return Err(bad("emitd.sinks", sinks, "must name at least one sink"));
        }
        for (i, sink) in e.sinks.iter().enumerate() {
            if !SINKS.contains(&sink.as_str()) {
                return Err(bad("emitd.sinks", sinks, &format!("{sink:?} is not one of {SINKS:?}")));
            }
            if e.sinks[..i].contains(sink) {
                return Err(bad("emitd.sinks", sinks, &format!("{sink:?} is named twice")));
            }
        }
        if e.sinks.iter().any(|s| s == "kafka") {
            e.kafka.check()?;
        }
        Ok(())
    }

    /// Whether the NATS wire is TLS: a `tls://` URL, or any TLS key set (with which emitd
    /// requires TLS of the server).
    pub fn nats_tls(&self) -> bool {
        self.nats.starts_with("tls://")
            || !self.ca_file.is_empty()
            || !self.cert_file.is_empty()
            || !self.tls_server_name.is_empty()
    }

    /// Credentials only over TLS, unless `allow_plaintext_credentials`.
    fn check_credentials_wire(&self) -> Result<(), ConfigError> {
        if self.nats_tls() || self.allow_plaintext_credentials {
            return Ok(());
        }
        if url_has_credentials(&self.nats) {
            return Err(plaintext_credentials(
                "emitd.nats",
                &redact_url(&self.nats),
                "a plaintext nats:// wire",
                "emitd",
                "use a tls:// URL or set ca_file",
            ));
        }
        for (key, file) in [
            ("emitd.token_file", &self.token_file),
            ("emitd.password_file", &self.password_file),
            ("emitd.nkey_seed_file", &self.nkey_seed_file),
            ("emitd.credentials_file", &self.credentials_file),
        ] {
            if !file.is_empty() {
                return Err(plaintext_credentials(
                    key,
                    file,
                    "a plaintext nats:// wire",
                    "emitd",
                    "use a tls:// URL or set ca_file",
                ));
            }
        }
        Ok(())
    }

    /// True if `sink` is one of `sinks`.
    pub fn has_sink(&self, sink: &str) -> bool {
        self.sinks.iter().any(|s| s == sink)
    }
}

impl Kafka {
    /// Checks the section, and that its files exist and its secrets are the service's own.
    fn check(&self) -> Result<(), ConfigError> {
        let k = self;
        if k.brokers.is_empty() {
            return Err(bad("emitd.kafka.brokers", "[]", "must name at least one host:port"));
        }
        for b in &k.brokers {
            let ok = b
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
            if !ok || b.contains("://") {
                return Err(bad("emitd.kafka.brokers", format!("{b:?}"), "each must be host:port"));
            }
        }
        // Kafka's own rule for topic names.
        let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if k.topic.is_empty() || k.topic.len() > 249 || k.topic == "." || k.topic == ".." || !k.topic.chars().all(legal)
        {
            return Err(bad(
                "emitd.kafka.topic",
                format!("{:?}", k.topic),
                "must be 1 to 249 of A-Z a-z 0-9 . _ - (and not . or ..)",
            ));
        }
        if k.max_backlog == 0 {
            return Err(bad("emitd.kafka.max_backlog", 0, "must be at least 1"));
        }
        if k.linger_ms > 900_000 {
            return Err(bad("emitd.kafka.linger_ms", k.linger_ms, "must be at most 900000"));
        }
        if !(1..=1_000_000).contains(&k.batch_messages) {
            return Err(bad(
                "emitd.kafka.batch_messages",
                k.batch_messages,
                "must be 1 to 1000000",
            ));
        }
        for (key, file) in [
            ("emitd.kafka.ca_file", &k.ca_file),
            ("emitd.kafka.cert_file", &k.cert_file),
        ] {
            if !file.is_empty() {
                readable(key, file)?;
            }
        }
        if k.cert_file.is_empty() != k.key_file.is_empty() {
            return Err(bad(
                "emitd.kafka.key_file",
                format!("{:?}", k.key_file),
                "cert_file and key_file go together",
            ));
        }
        if !k.key_file.is_empty() {
            secret("emitd.kafka.key_file", &k.key_file)?;
        }
        if !(k.tls || k.ca_file.is_empty() && k.cert_file.is_empty()) {
            return Err(bad("emitd.kafka.tls", false, "ca_file and cert_file need tls = true"));
        }
        match k.sasl_mechanism.as_str() {
            "" => {
                if !k.sasl_username.is_empty() || !k.sasl_password_file.is_empty() {
                    return Err(bad(
                        "emitd.kafka.sasl_mechanism",
                        "\"\"",
                        "sasl_username and sasl_password_file need a mechanism",
                    ));
                }
            }
            "PLAIN" | "SCRAM-SHA-256" | "SCRAM-SHA-512" => {
                if k.sasl_username.is_empty() {
                    return Err(bad("emitd.kafka.sasl_username", "\"\"", "SASL needs a user name"));
                }
                secret("emitd.kafka.sasl_password_file", &k.sasl_password_file)?;
                if !k.tls && !k.allow_plaintext_credentials {
                    return Err(plaintext_credentials(
                        "emitd.kafka.sasl_password_file",
                        &k.sasl_password_file,
                        "a plaintext Kafka wire (tls = false, sasl_plaintext)",
                        "emitd.kafka",
                        "set tls = true",
                    ));
                }
            }
            other => {
                return Err(bad(
                    "emitd.kafka.sasl_mechanism",
                    format!("{other:?}"),
                    "must be PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or empty",
                ))
            }
        }
        Ok(())
    }
}

/// The file can be read.
fn readable(key: &str, file: &str) -> Result<(), ConfigError> {
    std::fs::File::open(file)
        .map(drop)
        .map_err(|e| bad(key, format!("{file:?}"), &format!("cannot be read: {e}")))
}

/// A secret file: named, and given no access by others (see `crate::secret`).
fn secret(key: &str, file: &str) -> Result<(), ConfigError> {
    if file.is_empty() {
        return Err(bad(key, "\"\"", "must name the file holding the secret"));
    }
    check_secret_file(key, file)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use crate::Config;

    fn err(toml: &str) -> String {
        Config::from_toml(toml).unwrap_err().to_string()
    }

    const KAFKA: &str = "[emitd]\nsinks = [\"kafka\"]\n[emitd.kafka]\nbrokers = [\"127.0.0.1:9092\"]\n";

    /// A file under the temp dir with `mode`, removed on drop.
    struct File(std::path::PathBuf);
    impl File {
        fn new(name: &str, mode: u32) -> File {
            let p = std::env::temp_dir().join(format!("config-test-{name}-{}", std::process::id()));
            std::fs::write(&p, "secret\n").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            File(p)
        }
        fn path(&self) -> &str {
            self.0.to_str().unwrap()
        }
    }
    impl Drop for File {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn sinks_default_to_nats_and_accept_kafka() {
        assert_eq!(Config::from_toml("").unwrap().emitd.sinks, ["nats"]);
        let c = Config::from_toml(&KAFKA.replace("[\"kafka\"]", "[\"nats\", \"kafka\"]")).unwrap();
        assert!(c.emitd.has_sink("nats") && c.emitd.has_sink("kafka"));
        assert_eq!(c.emitd.kafka.topic, "telemetry.agg");
        // The Kafka section is checked only when the sink is used.
        assert!(Config::from_toml("[emitd.kafka]\ntopic = \"bad name\"\n").is_ok());
    }

    #[test]
    fn bad_sinks_and_kafka_keys_are_named() {
        assert!(err("[emitd]\nsinks = []\n").starts_with("config: emitd.sinks"));
        assert!(err("[emitd]\nsinks = [\"kafak\"]\n").contains("\"kafak\" is not one of"));
        assert!(err("[emitd]\nsinks = [\"nats\", \"nats\"]\n").contains("named twice"));
        assert!(err("[emitd]\nsinks = [\"kafka\"]\n").starts_with("config: emitd.kafka.brokers = []"));
        assert!(err(&KAFKA.replace("127.0.0.1:9092", "kafka://x:1")).starts_with("config: emitd.kafka.brokers"));
        assert!(err(&format!("{KAFKA}topic = \"a/b\"\n")).starts_with("config: emitd.kafka.topic = \"a/b\""));
        assert!(err(&format!("{KAFKA}topic = \"..\"\n")).starts_with("config: emitd.kafka.topic"));
        assert!(err(&format!("{KAFKA}compression = \"gzip\"\n")).contains("compression"));
        assert!(err(&format!("{KAFKA}max_backlog = 0\n")).starts_with("config: emitd.kafka.max_backlog"));
        assert!(err(&format!("{KAFKA}sasl_mechanism = \"GSSAPI\"\n")).starts_with("config: emitd.kafka.sasl_mechanism"));
        assert!(err(&format!("{KAFKA}ca_file = \"/nonexistent/ca.pem\"\ntls = true\n"))
            .starts_with("config: emitd.kafka.ca_file = \"/nonexistent/ca.pem\": cannot be read"));
    }

    #[test]
    fn secret_files_must_be_readable_and_private() {
        let sasl = |file: &str| {
            format!("{KAFKA}tls = true\nsasl_mechanism = \"SCRAM-SHA-512\"\nsasl_username = \"emitd\"\nsasl_password_file = \"{file}\"\n")
        };
        let e = err(&sasl("/nonexistent/password"));
        assert!(
            e.starts_with(
                "config: emitd.kafka.sasl_password_file = \"/nonexistent/password\": cannot read the secret file"
            ),
            "{e}"
        );
        let open = File::new("open-secret", 0o644);
        let e = err(&sasl(open.path()));
        assert!(
            e.starts_with("config: emitd.kafka.sasl_password_file") && e.contains("readable by others"),
            "{e}"
        );
        assert!(!e.contains("secret\n"), "the secret itself is never shown: {e}");
        let private = File::new("private-secret", 0o600);
        Config::from_toml(&sasl(private.path())).unwrap();
        assert!(err(&format!("{KAFKA}sasl_mechanism = \"PLAIN\"\n")).starts_with("config: emitd.kafka.sasl_username"));
        // Group-readable is allowed (/etc/telemetry/secrets is 0750 root:telemetry); others are not.
        let group = File::new("group-key", 0o640);
        let cert = File::new("cert", 0o644);
        Config::from_toml(&format!(
            "{KAFKA}tls = true\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
            cert.path(),
            group.path()
        ))
        .unwrap();
        let key = File::new("open-key", 0o604);
        let e = err(&format!(
            "{KAFKA}tls = true\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
            cert.path(),
            key.path()
        ));
        assert!(
            e.starts_with("config: emitd.kafka.key_file") && e.contains("readable by others"),
            "{e}"
        );
    }
}
