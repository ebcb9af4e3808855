//! `[ingestd]`: the MQTT subscriber, and `[ingestd.http]`: the HTTP listener. Either may be off,
//! not both.

use serde::{Deserialize, Serialize};

use crate::error::{bad, check_url, ConfigError};
use crate::secret::check_secret_file;
use crate::wire::plaintext_credentials;

/// `[ingestd]`
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Ingestd {
    /// `mqtt://host:port` or `mqtts://host:port` (TLS); empty for no MQTT (HTTP only).
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
    /// File holding the password (a secret file: no access for others); empty for none.
    pub password_file: String,
    /// Accept sending the password over a plaintext `mqtt://` wire. Off by default: a
    /// `password_file` with an `mqtt://` broker is refused, so that a password crosses only TLS.
    pub allow_plaintext_credentials: bool,
    /// PEM file with the CA certificates for `mqtts://`; empty for the system roots.
    pub ca_file: String,
    /// PEM client certificate chain for mutual TLS (`mqtts://`); needs `key_file`.
    pub cert_file: String,
    /// PEM private key of `cert_file` (a secret file).
    pub key_file: String,
    /// The name the broker's certificate must carry, when it is not the host in `broker` (a
    /// broker reached by IP address); empty for the host. The name is always verified.
    pub tls_server_name: String,

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
    /// most [`records::RAW_PAYLOAD_MAX`] (what a raw record holds), which is also the default.
    pub max_payload: usize,
    /// First reconnect delay in ms; doubles per failed attempt up to `reconnect_max_ms`, with jitter.
    pub reconnect_min_ms: u64,
    /// Longest reconnect delay in ms.
    pub reconnect_max_ms: u64,
    /// Latency budget in µs: once the socket is drained and the batch is in the ring, ingestd
    /// pauses this long before reading again, so that the next read returns many messages
    /// instead of a few. 0 reads again at once (lowest latency, most CPU per message).
    pub batch_budget_us: u64,
    /// `[ingestd.http]`: the HTTP door.
    pub http: Http,
}

/// `[ingestd.http]`: `POST /v1/readings` into the same raw ring.
///
/// Every connection has a bounded life (docs/security.md, "Hostile clients: the HTTP door"):
/// the timeouts, the connection cap and the lingering close below.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Http {
    /// `host:port` to listen on; empty (the default) for no HTTP listener.
    pub listen: String,
    /// Largest request body in bytes; a larger one is refused whole with 413.
    pub max_body_bytes: usize,
    /// File holding the bearer token requests must carry (`Authorization: Bearer <token>`);
    /// empty for none. It must not be readable by others (mode `o-r`), or the config is refused.
    pub token_file: String,
    /// PEM certificate chain for HTTPS; empty for plain HTTP. Set with `key_file`.
    pub cert_file: String,
    /// PEM private key for HTTPS (only the service may read it). Set with `cert_file`.
    pub key_file: String,
    /// A `token_file` without TLS (`cert_file` empty) sends the token in clear: refused unless
    /// this is `true`.
    pub allow_plaintext_credentials: bool,
    /// Open connections at most. At the cap, a new client takes the place of the connection
    /// that has been idle (or sending its headers) the longest; with none such, it is answered
    /// 503. Must fit well below the process's open-file limit (checked at start).
    pub max_connections: usize,
    /// Seconds a client has to send a request's headers (from the connection's start for the
    /// first request, from its first byte for later ones); then the connection is closed.
    pub header_timeout_s: u64,
    /// Seconds a client has to send a request's whole body, from the end of its headers; then
    /// it is answered 408 and the connection is closed.
    pub body_timeout_s: u64,
    /// Seconds a keep-alive connection may wait between two requests; then it is closed.
    pub idle_timeout_s: u64,
    /// Seconds a client has to complete the TLS handshake; then the connection is closed.
    pub tls_handshake_timeout_s: u64,
    /// TCP keepalive on accepted connections: seconds of silence before the first probe (then
    /// probes every 10 s, 3 unanswered close it), so that a peer gone without a FIN is noticed.
    pub tcp_keepalive_s: u64,
    /// After a refusal sent before the body was read (401, 413, 415, 408, ...), the most bytes
    /// read and discarded so that a client still sending its body reads the answer instead of
    /// a reset (a lingering close, as nginx does).
    pub linger_max_bytes: usize,
    /// The longest time, in seconds, such a lingering close reads and discards.
    pub linger_timeout_s: u64,
}

impl Default for Http {
    fn default() -> Self {
        Http {
            listen: String::new(),
            max_body_bytes: 1 << 20,
            token_file: String::new(),
            cert_file: String::new(),
            key_file: String::new(),
            allow_plaintext_credentials: false,
            max_connections: 1024,
            header_timeout_s: 10,
            body_timeout_s: 30,
            idle_timeout_s: 60,
            tls_handshake_timeout_s: 10,
            tcp_keepalive_s: 60,
            linger_max_bytes: 8 << 20,
            linger_timeout_s: 10,
        }
    }
}

impl Http {
    /// Whether the HTTP listener is on.
    pub fn enabled(&self) -> bool {
        !self.listen.is_empty()
    }

    fn check(&self) -> Result<(), ConfigError> {
        if !self.enabled() {
            return Ok(());
        }
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(bad(
                "ingestd.http.listen",
                format!("{:?}", self.listen),
                "must be an IP address and port, e.g. \"127.0.0.1:8080\"",
            ));
        }
        if self.max_body_bytes == 0 || self.max_body_bytes > 64 << 20 {
            return Err(bad(
                "ingestd.http.max_body_bytes",
                self.max_body_bytes,
                "must be from 1 to 67108864 (64 MiB)",
            ));
        }
        if self.cert_file.is_empty() != self.key_file.is_empty() {
            return Err(bad(
                "ingestd.http.cert_file",
                format!("{:?}", self.cert_file),
                "cert_file and key_file go together (both set for HTTPS, both empty for HTTP)",
            ));
        }
        for (key, file) in [
            ("ingestd.http.token_file", &self.token_file),
            ("ingestd.http.key_file", &self.key_file),
        ] {
            check_secret_file(key, file)?;
        }
        if !self.token_file.is_empty() && self.cert_file.is_empty() && !self.allow_plaintext_credentials {
            return Err(bad(
                "ingestd.http.token_file",
                format!("{:?}", self.token_file),
                "a bearer token over plain HTTP travels in clear: set cert_file and key_file, \
                 or ingestd.http.allow_plaintext_credentials = true",
            ));
        }
        if !(1..=65_536).contains(&self.max_connections) {
            return Err(bad(
                "ingestd.http.max_connections",
                self.max_connections,
                "must be from 1 to 65536",
            ));
        }
        for (key, value, max) in [
            ("ingestd.http.header_timeout_s", self.header_timeout_s, 300),
            ("ingestd.http.body_timeout_s", self.body_timeout_s, 3_600),
            ("ingestd.http.idle_timeout_s", self.idle_timeout_s, 3_600),
            (
                "ingestd.http.tls_handshake_timeout_s",
                self.tls_handshake_timeout_s,
                300,
            ),
            ("ingestd.http.tcp_keepalive_s", self.tcp_keepalive_s, 7_200),
            ("ingestd.http.linger_timeout_s", self.linger_timeout_s, 300),
        ] {
            if !(1..=max).contains(&value) {
                return Err(bad(key, value, &format!("must be from 1 to {max} seconds")));
            }
        }
        if self.linger_max_bytes > 1 << 30 {
            return Err(bad(
                "ingestd.http.linger_max_bytes",
                self.linger_max_bytes,
                "must be at most 1073741824 (1 GiB)",
            ));
        }
        Ok(())
    }
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
            password_file: String::new(),
            allow_plaintext_credentials: false,
            ca_file: String::new(),
            cert_file: String::new(),
            key_file: String::new(),
            tls_server_name: String::new(),
            clean_start: false,
            session_expiry_s: 3_600,
            when_ring_full: WhenRingFull::Hold,
            keep_alive_s: 30,
            max_payload: records::RAW_PAYLOAD_MAX,
            reconnect_min_ms: 100,
            reconnect_max_ms: 10_000,
            batch_budget_us: 2_000,
            http: Http::default(),
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

impl Ingestd {
    /// Checks what TOML's types cannot.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        let i = self;
        i.http.check()?;
        if i.broker.is_empty() {
            if !i.http.enabled() {
                return Err(bad(
                    "ingestd.broker",
                    "\"\"",
                    "no MQTT broker and no ingestd.http.listen: ingestd would have no source",
                ));
            }
        } else {
            check_url("ingestd.broker", &i.broker, &["mqtt", "mqtts"])?;
        }
        if !i.password_file.is_empty() && i.username.is_empty() {
            return Err(bad(
                "ingestd.password_file",
                format!("{:?}", i.password_file),
                "needs ingestd.username",
            ));
        }
        check_secret_file("ingestd.password_file", &i.password_file)?;
        if !i.password_file.is_empty() && i.broker.starts_with("mqtt://") && !i.allow_plaintext_credentials {
            return Err(plaintext_credentials(
                "ingestd.password_file",
                &i.password_file,
                "a plaintext mqtt:// broker",
                "ingestd",
                "use an mqtts:// broker",
            ));
        }
        check_secret_file("ingestd.key_file", &i.key_file)?;
        if i.cert_file.is_empty() != i.key_file.is_empty() {
            return Err(bad(
                "ingestd.cert_file",
                format!("{:?}", i.cert_file),
                "cert_file and key_file go together: set both or neither",
            ));
        }
        if !i.broker.starts_with("mqtts://") {
            for (key, value) in [
                ("ingestd.ca_file", &i.ca_file),
                ("ingestd.cert_file", &i.cert_file),
                ("ingestd.tls_server_name", &i.tls_server_name),
            ] {
                if !value.is_empty() {
                    return Err(bad(key, format!("{value:?}"), "needs an mqtts:// broker"));
                }
            }
        }
        if i.topics.is_empty() && !i.broker.is_empty() {
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
        if i.max_payload == 0 || i.max_payload > records::RAW_PAYLOAD_MAX {
            return Err(bad(
                "ingestd.max_payload",
                i.max_payload,
                &format!("must be from 1 to {} bytes", records::RAW_PAYLOAD_MAX),
            ));
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
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::Config;
    use std::os::unix::fs::PermissionsExt;

    fn err(toml: &str) -> String {
        Config::from_toml(toml).unwrap_err().to_string()
    }

    #[test]
    fn http_only_is_a_pipeline_but_no_source_at_all_is_not() {
        let c =
            Config::from_toml("[ingestd]\nbroker = \"\"\ntopics = []\n[ingestd.http]\nlisten = \"127.0.0.1:8080\"\n")
                .unwrap();
        assert!(c.ingestd.http.enabled() && c.ingestd.broker.is_empty());
        assert!(err("[ingestd]\nbroker = \"\"\n").contains("no source"));
        assert!(err("[ingestd.http]\nlisten = \"localhost\"\n").starts_with("config: ingestd.http.listen"));
        assert!(err("[ingestd.http]\nlisten = \"127.0.0.1:1\"\nmax_body_bytes = 0\n").contains("max_body_bytes"));
        assert!(err("[ingestd.http]\nlisten = \"127.0.0.1:1\"\ncert_file = \"c.pem\"\n").contains("go together"));
    }

    #[test]
    fn a_token_file_others_can_read_is_refused() {
        let dir = std::env::temp_dir().join(format!("config-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let token = dir.join("token");
        std::fs::write(&token, "s3cret\n").unwrap();
        let toml = format!(
            "[ingestd.http]\nlisten = \"127.0.0.1:1\"\ntoken_file = \"{}\"\nallow_plaintext_credentials = true\n",
            token.display()
        );
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = err(&toml);
        assert!(
            e.contains("ingestd.http.token_file") && e.contains("readable by others"),
            "{e}"
        );
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(Config::from_toml(&toml).is_ok());
        let missing = toml.replace("token\"", "nonesuch\"");
        assert!(err(&missing).contains("cannot read the secret file"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_bearer_token_over_plain_http_needs_allow_plaintext_credentials() {
        let dir = std::env::temp_dir().join(format!("config-plain-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let token = dir.join("token");
        std::fs::write(&token, "s3cret\n").unwrap();
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
        let toml = format!(
            "[ingestd.http]\nlisten = \"127.0.0.1:1\"\ntoken_file = \"{}\"\n",
            token.display()
        );
        let e = err(&toml);
        assert!(
            e.starts_with("config: ingestd.http.token_file") && e.contains("allow_plaintext_credentials = true"),
            "{e}"
        );
        assert!(Config::from_toml(&format!("{toml}allow_plaintext_credentials = true\n")).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn http_bounds_have_the_documented_defaults_and_are_checked() {
        let http = crate::ingestd::Http::default();
        assert_eq!(
            (
                http.max_connections,
                http.header_timeout_s,
                http.body_timeout_s,
                http.idle_timeout_s,
                http.tls_handshake_timeout_s
            ),
            (1024, 10, 30, 60, 10)
        );
        assert!(!http.allow_plaintext_credentials);
        let listen = "[ingestd.http]\nlisten = \"127.0.0.1:1\"\n";
        for (line, key) in [
            ("max_connections = 0", "ingestd.http.max_connections = 0"),
            ("max_connections = 100000", "ingestd.http.max_connections = 100000"),
            ("header_timeout_s = 0", "ingestd.http.header_timeout_s = 0"),
            ("body_timeout_s = 3601", "ingestd.http.body_timeout_s = 3601"),
            ("idle_timeout_s = 0", "ingestd.http.idle_timeout_s = 0"),
            (
                "tls_handshake_timeout_s = 0",
                "ingestd.http.tls_handshake_timeout_s = 0",
            ),
            ("tcp_keepalive_s = 0", "ingestd.http.tcp_keepalive_s = 0"),
            ("linger_timeout_s = 0", "ingestd.http.linger_timeout_s = 0"),
            (
                "linger_max_bytes = 2000000000",
                "ingestd.http.linger_max_bytes = 2000000000",
            ),
        ] {
            let e = err(&format!("{listen}{line}\n"));
            assert!(e.starts_with(&format!("config: {key}")), "{line}: {e}");
        }
        assert!(Config::from_toml(&format!("{listen}header_timeout_s = 1\nlinger_max_bytes = 0\n")).is_ok());
    }
}
