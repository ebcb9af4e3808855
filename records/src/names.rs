//! The names the stages, the supervisor and `telemetryctl` agree on: segments in `/dev/shm/<prefix>/`,
//! stage slots in the stats page, and counters.
//!
//! Every message a stage takes in ends at exactly one of its counters:
//!
//! | stage | conservation |
//! |---|---|
//! | ingestd | `received = forwarded + dropped.*` |
//! | decoded | `received = forwarded + error.*` |
//! | aggd | `received = forwarded + error.*` (forwarded: folded into a window) |
//! | emitd | `received = forwarded + dropped.*` (forwarded: published) |
//!
//! and, between stages, `forwarded` of one = `received` of the next + what sits in the ring
//! (for aggd → emitd, aggd's `aggregates.emitted` takes the place of `forwarded`).

/// Stage names: stats page slots, binaries and config sections.
pub mod stage {
    /// The MQTT subscriber.
    pub const INGESTD: &str = "ingestd";
    /// The payload decoder.
    pub const DECODED: &str = "decoded";
    /// The window aggregator.
    pub const AGGD: &str = "aggd";
    /// The publisher (NATS, Kafka).
    pub const EMITD: &str = "emitd";
    /// All four, upstream first.
    pub const ALL: [&str; 4] = [INGESTD, DECODED, AGGD, EMITD];
    /// The supervisor's own slot in the stats page (state, pid, heartbeat, its counters).
    pub const SUPERVISOR: &str = "supervisor";
}

/// Segment names under the pipeline's prefix.
pub mod segment {
    /// ingestd → decoded, of [`crate::RawRecord`].
    pub const RAW: &str = "raw";
    /// decoded → aggd, of [`crate::Reading`].
    pub const READINGS: &str = "readings";
    /// aggd → emitd, of [`crate::Aggregate`].
    pub const AGGREGATES: &str = "aggregates";
    /// The stats page.
    pub const STATS: &str = "stats";
    /// aggd's window state, which survives aggd's restart.
    pub const WINDOWS: &str = "windows";
    /// The key text aggd's window state names (interned device, sensor and unit strings).
    pub const STRINGS: &str = "strings";
    /// Every segment a pipeline keeps in its directory `/dev/shm/<prefix>/` (the package's purge
    /// removes the directory whole).
    pub const ALL: [&str; 6] = [RAW, READINGS, AGGREGATES, STATS, WINDOWS, STRINGS];
}

/// Counters every stage keeps.
pub mod counter {
    /// Messages or records taken in.
    pub const RECEIVED: &str = "received";
    /// Records handed on (to the next ring, a window, or NATS).
    pub const FORWARDED: &str = "forwarded";
    /// aggd: aggregates handed to the aggregates ring (its `forwarded` counts readings folded).
    pub const AGGREGATES_EMITTED: &str = "aggregates.emitted";
}

/// ingestd's MQTT session events (outside the balance: they count connections, not messages).
pub mod session {
    /// Connections the broker accepted (CONNACKs).
    pub const CONNECTS: &str = "mqtt.connects";
    /// Reconnections where the broker had no session for ingestd (MQTT's Session Present was
    /// 0): whatever it had queued for the previous connection is gone, without our counters
    /// seeing it.
    pub const SESSION_LOST: &str = "mqtt.session_lost";
    /// Connection attempts or connections that failed.
    pub const CONNECTION_ERRORS: &str = "mqtt.connection_errors";
    /// Of those, failed in TLS (certificate, name, or the broker refusing ours).
    pub const TLS_ERRORS: &str = "mqtt.tls_errors";
    /// Of those, refused for bad or missing credentials.
    pub const AUTH_ERRORS: &str = "mqtt.auth_errors";
    /// Of those, connections ingestd dropped for the broker's protocol errors (a topic alias
    /// ingestd never announced).
    pub const PROTOCOL_ERRORS: &str = "mqtt.protocol_errors";
}

/// A stage's gauges: values it sets (not counts), kept in the stats page's counter slots under
/// the prefix `gauge.`. A stage sets each of its gauges when it starts, since a killed
/// predecessor's last values stay in the page. Rates and the balance check ignore them.
pub mod gauge {
    /// Prefix of every gauge's name.
    pub const PREFIX: &str = "gauge.";
    /// Prefix of the connection state of one wire (`gauge.connected.<wire>`): 1 connected, 0 not.
    pub const CONNECTED_PREFIX: &str = "gauge.connected.";
    /// ingestd: 1 while the MQTT broker has accepted the connection.
    pub const MQTT_CONNECTED: &str = "gauge.connected.mqtt";
    /// emitd: 1 while the NATS server has accepted the connection.
    pub const NATS_CONNECTED: &str = "gauge.connected.nats";
    /// Prefix of the records a sink holds, accepted from the ring but not yet delivered
    /// (`gauge.backlog.<sink>`).
    pub const BACKLOG_PREFIX: &str = "gauge.backlog.";
    /// emitd: aggregates waiting for NATS.
    pub const NATS_BACKLOG: &str = "gauge.backlog.nats";
    /// emitd: 1 while a Kafka broker is up for the producer.
    pub const KAFKA_CONNECTED: &str = "gauge.connected.kafka";
    /// emitd: aggregates handed to the Kafka producer and not yet acknowledged.
    pub const KAFKA_BACKLOG: &str = "gauge.backlog.kafka";
    /// aggd: keys (device, sensor) in the window table.
    pub const KEYS_TRACKED: &str = "gauge.keys_tracked";
    /// Prefix of why a wire's last connection attempt failed (`gauge.failure.<wire>`), one of
    /// the [`failure`] codes; 0 once connected.
    pub const FAILURE_PREFIX: &str = "gauge.failure.";
    /// ingestd: why the last MQTT connection attempt failed.
    pub const MQTT_FAILURE: &str = "gauge.failure.mqtt";
    /// emitd: why the last NATS connection attempt failed.
    pub const NATS_FAILURE: &str = "gauge.failure.nats";

    /// The values of a `gauge.failure.<wire>` gauge.
    pub mod failure {
        /// Connected, or never failed.
        pub const NONE: u64 = 0;
        /// The network: refused, reset, timed out, unreachable.
        pub const NETWORK: u64 = 1;
        /// TLS: the server's certificate or name, or the server refusing our certificate.
        pub const TLS: u64 = 2;
        /// Credentials refused.
        pub const AUTH: u64 = 3;
        /// Anything else (protocol errors).
        pub const OTHER: u64 = 4;

        /// The code in words.
        pub fn describe(code: u64) -> &'static str {
            match code {
                NONE => "none",
                NETWORK => "network",
                TLS => "tls",
                AUTH => "auth",
                _ => "other",
            }
        }
    }
}

/// emitd's NATS connection events (outside the balance).
pub mod nats {
    /// Connection attempts that failed in TLS.
    pub const TLS_ERRORS: &str = "nats.tls_errors";
    /// Connection attempts refused for bad or missing credentials.
    pub const AUTH_ERRORS: &str = "nats.auth_errors";
}

/// ingestd's HTTP requests (outside the record balance: they count requests, not readings; every
/// request to `POST /v1/readings`, or to a path or method ingestd does not serve, ends at exactly
/// one of `http.accepted` or `http.rejected.<reason>`, so `http.requests = http.accepted +
/// http.rejected.*`). The readings of an accepted request are counted as `received` and
/// `forwarded`; a refused request's readings never became records.
pub mod http {
    /// Requests answered (`GET /healthz` aside).
    pub const REQUESTS: &str = "http.requests";
    /// Requests whose every reading was committed to the raw ring (answered 2xx).
    pub const ACCEPTED: &str = "http.accepted";
    /// Prefix of the refusals by reason.
    pub const REJECTED_PREFIX: &str = "http.rejected.";
    /// 400: the body's framing cannot be split into readings.
    pub const BAD_FRAMING: &str = "http.rejected.bad_framing";
    /// 401: a token is configured and the request's is missing or wrong.
    pub const UNAUTHORIZED: &str = "http.rejected.unauthorized";
    /// 404: not `/v1/readings` (nor `/healthz`).
    pub const NOT_FOUND: &str = "http.rejected.not_found";
    /// 405: `/v1/readings` with another method than POST.
    pub const BAD_METHOD: &str = "http.rejected.bad_method";
    /// 413: the body is over `max_body_bytes`, an item is over `max_payload`, or it holds more
    /// readings than one ring commit takes.
    pub const TOO_LARGE: &str = "http.rejected.too_large";
    /// 415: a `Content-Type` ingestd does not split.
    pub const UNSUPPORTED_TYPE: &str = "http.rejected.unsupported_type";
    /// 503: the raw ring has no room for the whole request.
    pub const RING_FULL: &str = "http.rejected.ring_full";
    /// 503: the stage is stopping.
    pub const STOPPING: &str = "http.rejected.stopping";
    /// No answer: the client went away or sent a broken body before it was read whole.
    pub const ABORTED: &str = "http.rejected.aborted";
    /// 408: the body did not arrive whole within `body_timeout_s`.
    pub const BODY_TIMEOUT: &str = "http.rejected.body_timeout";
    /// Every refusal reason.
    pub const REJECTIONS: [&str; 10] = [
        BAD_FRAMING,
        UNAUTHORIZED,
        NOT_FOUND,
        BAD_METHOD,
        TOO_LARGE,
        UNSUPPORTED_TYPE,
        RING_FULL,
        STOPPING,
        ABORTED,
        BODY_TIMEOUT,
    ];

    /// Connections closed to make room for a new one at `max_connections` (idle, or still
    /// sending headers; outside the balance: they count connections, not requests).
    pub const CONNECTIONS_EVICTED: &str = "http.connections.evicted";
    /// New connections answered 503 at `max_connections` because every open one was inside a
    /// request.
    pub const CONNECTIONS_REFUSED: &str = "http.connections.refused";
    /// Connections closed because the client did not send its headers within
    /// `header_timeout_s` or complete the TLS handshake within `tls_handshake_timeout_s`.
    pub const CONNECTIONS_TIMED_OUT: &str = "http.connections.timed_out";
}

/// Why a stage dropped a message it could not hand on (`dropped.<reason>`).
pub mod drop_reason {
    /// ingestd: the raw ring was full.
    pub const RING_FULL: &str = "dropped.ring_full";
    /// ingestd: the topic is longer than a raw record holds.
    pub const TOPIC_TOO_LONG: &str = "dropped.topic_too_long";
    /// ingestd: the payload is larger than a raw record holds (or than configured).
    pub const PAYLOAD_TOO_LARGE: &str = "dropped.payload_too_large";
    /// ingestd: the broker redelivered (MQTT DUP flag) a message that is already in the raw ring,
    /// because the previous ingestd died after storing it but before its ack left.
    pub const DUPLICATE: &str = "dropped.duplicate";
    /// emitd: NATS was unavailable longer than its bounded queue could hold.
    pub const NATS_BACKLOG_FULL: &str = "dropped.nats_backlog_full";
    /// emitd: Kafka was unavailable longer than its bounded backlog could hold.
    pub const KAFKA_BACKLOG_FULL: &str = "dropped.kafka_backlog_full";
    /// emitd: a device or sensor id would change the NATS subject's routing.
    pub const UNSAFE_SUBJECT: &str = "dropped.unsafe_subject";
    /// aggd: the aggregates ring was full; the aggregate was not handed on.
    pub const AGGREGATES_RING_FULL: &str = "dropped.aggregates_ring_full";
}

/// The supervisor's counters.
pub mod supervisor_counter {
    /// Records skipped because a stage died on them repeatedly, written to the dead-letter file.
    pub const POISON_SKIPPED: &str = "poison.skipped";
    /// Dead-letter records not written because the file reached its size limit.
    pub const DEAD_LETTER_FULL: &str = "poison.dead_letter_full";
    /// Restarts of any stage.
    pub const RESTARTS: &str = "restarts";
    /// Restarts because a heartbeat went stale.
    pub const HANGS: &str = "hangs";
}

/// Why a stage could not use a message (`error.<reason>`).
pub mod error_reason {
    /// decoded: not valid CBOR or JSON, or trailing garbage.
    pub const MALFORMED: &str = "error.malformed";
    /// decoded: a required key (`d`, `s`, `v`) is missing.
    pub const MISSING_FIELD: &str = "error.missing_field";
    /// decoded: a key has the wrong type (for example `v` is a string).
    pub const BAD_TYPE: &str = "error.bad_type";
    /// decoded: `v` is NaN or infinite.
    pub const NON_FINITE: &str = "error.non_finite";
    /// decoded: an id is longer than a reading holds.
    pub const ID_TOO_LONG: &str = "error.id_too_long";
    /// decoded: an id is empty.
    pub const EMPTY_ID: &str = "error.empty_id";
    /// aggd: the key table was full and the reading's key could not be tracked.
    pub const KEY_TABLE_FULL: &str = "error.key_table_full";
}

#[cfg(test)]
mod tests {
    /// Every segment is a plain file name inside the pipeline's directory `/dev/shm/<prefix>/`,
    /// so the package's purge, which removes that directory whole, removes every segment a
    /// pipeline keeps (and any a later version adds); and it names no segment file of its own
    /// (the old `/dev/shm/<prefix>.<name>` list, which had to be kept in step by hand).
    #[test]
    fn the_package_purge_removes_the_whole_segment_directory() {
        for name in super::segment::ALL {
            assert!(
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
                "{name}: a segment name is one plain path component"
            );
        }
        let postrm = include_str!("../../deploy/debian/postrm");
        let code: Vec<&str> = postrm.lines().filter(|l| !l.trim_start().starts_with('#')).collect();
        let has = |needle: &str| code.iter().any(|l| l.contains(needle));
        assert!(
            has(r#"shm_dir="/dev/shm/$dir_prefix""#),
            "postrm purges the prefix directory"
        );
        assert!(
            has(r#"rm -rf --one-file-system -- "$shm_dir""#),
            "…whole, following no link"
        );
        assert!(
            has(r#"if [ -L "$shm_dir" ]; then"#),
            "…and a symlink in its place as a link"
        );
        assert!(
            has("valid_prefix \"$saved\""),
            "the saved prefix is validated when read back"
        );
        assert!(
            !has("/var/lib/telemetry/."),
            "no file of root's in the service user's directory"
        );
        for name in super::segment::ALL {
            assert!(
                !has(&format!(".{name}")) && !has("for segment in"),
                "postrm names no segment file"
            );
        }
    }
}
