//! The NATS side: one async-nats client that reconnects for ever, core publishes with a bounded
//! backlog, and JetStream publishes with acks and the stream they need.
//!
//! # Connecting
//!
//! The client is created with `retry_on_initial_connect` and no limit on reconnects, so emitd
//! starts (and keeps running) while NATS is away; async-nats retries with a delay that grows to
//! a few seconds. `tls://` URLs require TLS; `[emitd] ca_file` adds CA certificates.
//!
//! # Core mode: the backlog
//!
//! `publish` only queues a message in the client; the client's connection task writes queued
//! messages in batches (emitd never flushes per message). While NATS is away the connection task
//! stops taking messages, so they wait in the client's queue and are written after the
//! reconnect. [`Nats::backlog`] is the number waiting there: what emitd queued minus what the
//! connection task took (its `out_messages` statistic). The core sink keeps it at most
//! `[emitd] max_backlog` by dropping new aggregates while NATS is away (`sinks::nats_core`).
//!
//! What core NATS does not guarantee: messages the connection task had already taken into its
//! write buffer or the socket when the connection broke are lost without an error (measured: of
//! 100 publishes during an outage a subscriber later saw 41), and so is the queue if emitd itself
//! is killed. Core mode is at-most-once; use JetStream where loss matters.
//!
//! # JetStream mode
//!
//! Each message carries its `Nats-Msg-Id` and is published with a request for an ack; the acks
//! are awaited concurrently, up to the sink's window (`sinks::jetstream`). The stream must exist: [`Nats::ensure_stream`]
//! uses the stream named [`stream_name`] if it exists (whatever its settings) and otherwise
//! creates it with subjects `<subject_prefix>.>`, file storage, the default limits (none) and a
//! two-minute duplicate window. If another stream already captures those subjects, that stream
//! is used. Create the stream yourself to choose retention limits.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::connection::State;
use records::names::gauge::failure;
use records::names::nats;
use tracing::warn;

use crate::{nats_auth, tls_probe};
use async_nats::jetstream::context::{PublishAckFuture, PublishError};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, stream, ErrorCode};
use async_nats::{Client, ConnectOptions, Event, Statistics};
use telemetry_config::Emitd;
use tracing::info;

use crate::message::Outgoing;

/// Timeout of JetStream API requests and of each publish ack.
pub const JS_TIMEOUT: Duration = Duration::from_secs(5);
/// The duplicate window of the stream emitd creates.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// The JetStream stream name for a subject prefix: upper case, with every character that a
/// stream name cannot hold (`.`, `*`, `>`, whitespace, path separators) as `_`.
///
/// ```
/// assert_eq!(emitd::publisher::stream_name("telemetry.agg"), "TELEMETRY_AGG");
/// ```
pub fn stream_name(prefix: &str) -> String {
    prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// Connection events seen by the client, for the stats page.
#[derive(Debug, Default)]
pub struct ConnectionEvents {
    /// Connections established (the first one and every reconnect).
    pub connects: AtomicU64,
    /// Connections lost.
    pub disconnects: AtomicU64,
    /// Connection attempts that failed in TLS.
    pub tls_errors: AtomicU64,
    /// Connection attempts refused for credentials.
    pub auth_errors: AtomicU64,
    /// The `records::names::gauge::failure` code of the last failed attempt; 0 once connected.
    pub last_failure: AtomicU64,
}

/// What [`Nats::ensure_stream`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamStatus {
    /// The stream of that name exists.
    Existing,
    /// emitd created it.
    Created,
    /// Another stream already captures the subjects.
    Captured,
}

/// The client, and the JetStream context in JetStream mode.
pub struct Nats {
    client: Client,
    jetstream: Option<jetstream::Context>,
    events: Arc<ConnectionEvents>,
    statistics: Arc<Statistics>,
    queued: u64,
    stream: stream::Config,
}

impl Nats {
    /// Creates the client and starts connecting in the background; never waits for NATS.
    /// `queue` is the capacity of the client's queue (at least the backlog and the window).
    pub async fn connect(config: &Emitd, name: &str, queue: usize, inflight: usize) -> Result<Nats, String> {
        let events = Arc::new(ConnectionEvents::default());
        let seen = events.clone();
        let tls = nats_auth::tls_config(config)?;
        let probe = tls.clone().map(|t| Arc::new((config.nats.clone(), t)));
        let options = ConnectOptions::new()
            .name(name)
            .retry_on_initial_connect()
            .max_reconnects(None)
            .client_capacity(queue.max(1))
            .event_callback(move |event| {
                let seen = seen.clone();
                let probe = probe.clone();
                async move {
                    if let Some(mut code) = nats_auth::failure_of(&event) {
                        // async-nats says only "IO error" when a TLS server refuses our
                        // certificate: ask the server ourselves what failed.
                        let mut cause = nats_auth::advice(code).to_owned();
                        if let Some((url, tls)) = probe.as_deref().filter(|_| code != failure::AUTH) {
                            if let Some(tls_failure) = tls_probe::probe(url, tls.clone()).await {
                                code = failure::TLS;
                                cause = tls_failure.to_string();
                            }
                        }
                        match code {
                            failure::TLS => seen.tls_errors.fetch_add(1, Ordering::Relaxed),
                            failure::AUTH => seen.auth_errors.fetch_add(1, Ordering::Relaxed),
                            _ => 0,
                        };
                        seen.last_failure.store(code, Ordering::Relaxed);
                        warn!(%event, kind = failure::describe(code), %cause, "NATS connection failed");
                    }
                    match event {
                        Event::Connected => {
                            seen.last_failure.store(failure::NONE, Ordering::Relaxed);
                            seen.connects.fetch_add(1, Ordering::Relaxed)
                        }
                        Event::Disconnected => seen.disconnects.fetch_add(1, Ordering::Relaxed),
                        _ => 0,
                    };
                }
            });
        if nats_auth::url_has_credentials(&config.nats) {
            warn!(nats = %telemetry_config::redact_url(&config.nats), "emitd.nats carries credentials, which anyone who can read the config can see: use token_file, user + password_file, nkey_seed_file or credentials_file");
        }
        let options = nats_auth::secure(options, config, tls.as_ref()).await?;
        let client = options
            .connect(config.nats.as_str())
            .await
            .map_err(|e| format!("NATS client for {}: {e}", telemetry_config::redact_url(&config.nats)))?;
        let jetstream = config.jetstream.then(|| {
            jetstream::ContextBuilder::new()
                .timeout(JS_TIMEOUT)
                .ack_timeout(JS_TIMEOUT)
                .max_ack_inflight(inflight.max(1))
                .build(client.clone())
        });
        let stream = stream::Config {
            name: stream_name(&config.subject_prefix),
            subjects: vec![format!("{}.>", config.subject_prefix)],
            duplicate_window: DUPLICATE_WINDOW,
            ..Default::default()
        };
        Ok(Nats {
            statistics: client.statistics(),
            client,
            jetstream,
            events,
            queued: 0,
            stream,
        })
    }

    /// True while connected.
    pub fn connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    /// The connection's event counters as running totals (see `Sink::events`), for the core and
    /// the JetStream sink alike.
    pub fn event_totals(&self, out: &mut Vec<(&'static str, u64)>) {
        let e = &self.events;
        out.push(("nats.connects", e.connects.load(Ordering::Relaxed)));
        out.push(("nats.disconnects", e.disconnects.load(Ordering::Relaxed)));
        out.push((nats::TLS_ERRORS, e.tls_errors.load(Ordering::Relaxed)));
        out.push((nats::AUTH_ERRORS, e.auth_errors.load(Ordering::Relaxed)));
    }

    /// Why the last connection attempt failed (`records::names::gauge::failure`; 0 once connected).
    pub fn last_failure(&self) -> u64 {
        self.events.last_failure.load(Ordering::Relaxed)
    }

    /// The connection events so far.
    pub fn events(&self) -> &ConnectionEvents {
        &self.events
    }

    /// Core messages queued in the client and not yet taken by its connection task.
    pub fn backlog(&self) -> u64 {
        let taken = self.statistics.out_messages.load(Ordering::Relaxed);
        self.queued.saturating_sub(taken)
    }

    /// Queues a core publish (returns once it is in the client's queue).
    pub async fn publish(&mut self, msg: Outgoing) -> Result<(), async_nats::PublishError> {
        self.client.publish(msg.subject, msg.payload).await?;
        self.queued += 1;
        Ok(())
    }

    /// Sends a JetStream publish with its `Nats-Msg-Id`; the returned future resolves to the
    /// ack. Panics in core mode.
    pub async fn publish_acked(&self, msg: &Outgoing) -> Result<PublishAckFuture, PublishError> {
        let js = self.jetstream.as_ref().expect("JetStream mode");
        let mut publish = PublishMessage::build().payload(msg.payload.clone());
        if let Some(id) = &msg.msg_id {
            publish = publish.message_id(id);
        }
        js.send_publish(msg.subject.clone(), publish).await
    }

    /// The name of the stream emitd publishes to (JetStream mode).
    pub fn stream(&self) -> &str {
        &self.stream.name
    }

    /// Makes sure a stream captures the subjects (JetStream mode); see the module docs.
    pub async fn ensure_stream(&self) -> Result<StreamStatus, String> {
        let js = self.jetstream.as_ref().expect("JetStream mode");
        let name = &self.stream.name;
        match js.get_stream(name).await {
            Ok(_) => return Ok(StreamStatus::Existing),
            Err(e) => match e.kind() {
                jetstream::context::GetStreamErrorKind::JetStream(err)
                    if err.error_code() == ErrorCode::STREAM_NOT_FOUND => {}
                _ => return Err(format!("stream {name}: {e}")),
            },
        }
        match js.create_stream(self.stream.clone()).await {
            Ok(_) => {
                info!(stream = %name, subjects = ?self.stream.subjects, "created the JetStream stream");
                Ok(StreamStatus::Created)
            }
            Err(e) => match e.kind() {
                jetstream::context::CreateStreamErrorKind::JetStream(err)
                    if err.error_code() == ErrorCode::STREAM_SUBJECT_OVERLAP =>
                {
                    info!(stream = %name, "another stream already captures the subjects; publishing to it");
                    Ok(StreamStatus::Captured)
                }
                _ => Err(format!("creating stream {name}: {e}")),
            },
        }
    }

    /// Waits until everything queued is written to the socket, for at most `timeout`. False if
    /// that did not happen (NATS away, or the client closed).
    pub async fn flush(&self, timeout: Duration) -> bool {
        matches!(tokio::time::timeout(timeout, self.client.flush()).await, Ok(Ok(())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_are_valid() {
        assert_eq!(stream_name("telemetry.agg"), "TELEMETRY_AGG");
        assert_eq!(stream_name("a/b\\c.d-e_f"), "A_B_C_D-E_F");
    }
}
