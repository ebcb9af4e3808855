//! The Kafka sink (`sinks = ["kafka"]`, cargo feature `kafka`): librdkafka's idempotent
//! producer (`enable.idempotence`, `acks=all`), at-least-once across emitd crashes.
//!
//! # Holding and settling
//!
//! Each record (`kafka_record`) is handed to the producer with its ring position as the delivery
//! opaque and held until librdkafka reports it: acknowledged by the broker (delivered) or failed
//! (counted in `kafka.errors`, sent again after a backoff; the producer itself retries transient
//! errors for ever, `message.timeout.ms = 0`). At most `[emitd.kafka] max_backlog` are held.
//!
//! When that many are held, the sink is either slow or away. It is **away** when no broker is up
//! (librdkafka's statistics) and nothing was acknowledged for [`AWAY_AFTER`]: then each further
//! aggregate is dropped and counted (`dropped.kafka_backlog_full`), so that the ring keeps
//! draining for the other sinks. Otherwise it is merely slow (or just starting: the first acks
//! take a moment), the sink is not ready, and the ring holds the rest.
//!
//! # Delivery
//!
//! Within one producer, idempotence keeps each partition's records in order and without
//! duplicates across the producer's own retries. Across an emitd crash the records held but not
//! yet reported are sent again by the next emitd (they are still in the ring): at-least-once,
//! duplicates bounded by `max_backlog` and carrying the same `dedup_id` header, so a consumer
//! that keeps the last ids per key drops them. A failed record sent again after a backoff may
//! land after newer records of its key (never seen against the test broker; counted in
//! `kafka.errors`).
//!
//! # Connection state
//!
//! "Connected" (`gauge.connected.kafka`) is librdkafka's own broker state: the statistics
//! callback (every second) reports whether any broker is `UP`; an acknowledged record sets it at
//! once. librdkafka's "all brokers down" error is not used for it: it also comes while a broker is
//! up (reason "0/1 brokers are down", when the bootstrap connection is replaced).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::statistics::Statistics;
use rdkafka::ClientContext;
use records::Aggregate;
use telemetry_config::Config;
use tokio::sync::Notify;
use tracing::{info, warn};

use super::kafka_record::{header, KafkaRecord, RecordBuilder};
use crate::payload::PayloadEncoder;
use crate::sink::{Offered, Settled, Sink, SinkFuture, SinkStatus};
use crate::Error;

/// First and longest delay before failed records are sent again.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How often librdkafka reports its statistics (the broker states).
const STATS_INTERVAL_MS: &str = "1000";
/// How long a sink with a full backlog, no broker up and no ack is merely slow; after that it is
/// away and drops.
pub const AWAY_AFTER: Duration = Duration::from_secs(2);
/// Most client-error warnings logged per this period (all are counted).
const ERROR_LOG_PERIOD_MS: u64 = 10_000;

/// What librdkafka's threads report to the sink.
#[derive(Default)]
struct Shared {
    /// Positions reported since the last `poll`, with the error if delivery failed.
    reports: Mutex<Vec<(u64, Option<KafkaError>)>>,
    notify: Notify,
    up: AtomicBool,
    connects: AtomicU64,
    errors: AtomicU64,
    /// When the last client-error warning was logged, ms after `born`.
    error_logged_ms: AtomicU64,
    born: Option<Instant>,
}

impl Shared {
    fn set_up(&self, up: bool) {
        if up && !self.up.swap(true, Relaxed) {
            self.connects.fetch_add(1, Relaxed);
        } else if !up {
            self.up.store(false, Relaxed);
        }
    }
}

/// The producer's callbacks (run on librdkafka's threads).
struct Callbacks(Arc<Shared>);

impl ClientContext for Callbacks {
    fn stats(&self, statistics: Statistics) {
        self.0.set_up(statistics.brokers.values().any(|b| b.state == "UP"));
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let n = self.0.errors.fetch_add(1, Relaxed);
        let now = self.0.born.map_or(0, |b| b.elapsed().as_millis() as u64);
        let last = self.0.error_logged_ms.load(Relaxed);
        if n == 0 || now.saturating_sub(last) >= ERROR_LOG_PERIOD_MS {
            self.0.error_logged_ms.store(now, Relaxed);
            warn!(error = %error, reason, errors = n + 1, "Kafka client error (more within 10 s are counted in kafka.errors, not logged)");
        }
    }
}

impl ProducerContext for Callbacks {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, pos: usize) {
        let error = result.as_ref().err().map(|(e, _)| e.clone());
        if error.is_none() {
            self.0.set_up(true);
        }
        if let Ok(mut reports) = self.0.reports.lock() {
            reports.push((pos as u64, error));
        }
        self.0.notify.notify_one();
    }
}

/// Kafka.
pub struct Kafka {
    producer: ThreadedProducer<Callbacks>,
    shared: Arc<Shared>,
    topic: String,
    records: RecordBuilder,
    held: HashMap<u64, KafkaRecord>,
    max_backlog: usize,
    /// Positions of held records to send again, oldest first.
    retry: VecDeque<u64>,
    retry_at: Instant,
    backoff: Duration,
    /// Whether the current outage's drops were logged already.
    dropping: bool,
    reports: Vec<(u64, Option<KafkaError>)>,
    /// The last ack, or the last time nothing was held.
    progress: Instant,
}

/// The producer's settings for `[emitd.kafka]`, the SASL password read from its file.
fn client_config(config: &Config) -> Result<ClientConfig, Error> {
    let k = &config.emitd.kafka;
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", k.brokers.join(","))
        .set("client.id", format!("emitd-{}", config.pipeline.instance))
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.codec", k.compression.codec())
        .set("linger.ms", k.linger_ms.to_string())
        .set("batch.num.messages", k.batch_messages.to_string())
        // Topics are the operator's: a metadata request must not create one with the broker's
        // default partitions (librdkafka's producer asks for that by default).
        .set("allow.auto.create.topics", "false")
        // Never give up on a record: emitd's own backlog bounds what is held.
        .set("message.timeout.ms", "0")
        .set(
            "queue.buffering.max.messages",
            (k.max_backlog + 1024).min(i32::MAX as usize).to_string(),
        )
        .set("statistics.interval.ms", STATS_INTERVAL_MS);
    let sasl = !k.sasl_mechanism.is_empty();
    let protocol = match (k.tls, sasl) {
        (false, false) => "plaintext",
        (true, false) => "ssl",
        (false, true) => "sasl_plaintext",
        (true, true) => "sasl_ssl",
    };
    c.set("security.protocol", protocol);
    for (key, file) in [
        ("ssl.ca.location", &k.ca_file),
        ("ssl.certificate.location", &k.cert_file),
    ] {
        if !file.is_empty() {
            c.set(key, file);
        }
    }
    // Secrets are read here, through the checked descriptor (telemetry_config::read_secret),
    // and handed over as values: librdkafka never opens the secret files by path.
    if !k.key_file.is_empty() {
        let pem = telemetry_config::read_secret("emitd.kafka.key_file", &k.key_file)?;
        c.set("ssl.key.pem", pem);
    }
    if sasl {
        let password = telemetry_config::read_secret("emitd.kafka.sasl_password_file", &k.sasl_password_file)?;
        c.set("sasl.mechanisms", &k.sasl_mechanism)
            .set("sasl.username", &k.sasl_username)
            .set("sasl.password", password);
    }
    Ok(c)
}

impl Kafka {
    /// Creates the producer (it connects in the background: this does not wait for a broker).
    pub fn start(config: &Config) -> Result<Kafka, Error> {
        let k = &config.emitd.kafka;
        let shared = Arc::new(Shared {
            born: Some(Instant::now()),
            ..Shared::default()
        });
        let producer: ThreadedProducer<Callbacks> = client_config(config)?
            .create_with_context(Callbacks(shared.clone()))
            .map_err(|e| Error::Kafka(format!("Kafka producer: {e}")))?;
        info!(brokers = ?k.brokers, topic = %k.topic, max_backlog = k.max_backlog, compression = k.compression.codec(), "Kafka sink started");
        Ok(Kafka {
            producer,
            shared,
            topic: k.topic.clone(),
            records: RecordBuilder::new(&config.pipeline.instance, PayloadEncoder::of(config)),
            held: HashMap::with_capacity(k.max_backlog.min(1 << 16)),
            max_backlog: k.max_backlog,
            retry: VecDeque::new(),
            retry_at: Instant::now(),
            backoff: MIN_BACKOFF,
            dropping: false,
            reports: Vec::new(),
            progress: Instant::now(),
        })
    }

    fn up(&self) -> bool {
        self.shared.up.load(Relaxed)
    }

    /// Holding a full backlog with no broker up and no ack for [`AWAY_AFTER`].
    fn away(&self) -> bool {
        self.held.len() >= self.max_backlog && !self.up() && self.progress.elapsed() >= AWAY_AFTER
    }

    /// Hands `record` to the producer. `Ok(false)`: its queue is full, try later.
    fn send(&self, pos: u64, record: &KafkaRecord) -> Result<bool, KafkaError> {
        let headers = OwnedHeaders::new_with_capacity(3)
            .insert(Header {
                key: header::INSTANCE,
                value: Some(self.records.instance()),
            })
            .insert(Header {
                key: header::WINDOW_END_MS,
                value: Some(&record.window_end_ms),
            })
            .insert(Header {
                key: header::DEDUP_ID,
                value: Some(&record.dedup_id),
            });
        let base = BaseRecord::with_opaque_to(&self.topic, pos as usize)
            .key(&record.key)
            .payload(&record.value[..])
            .headers(headers);
        match self.producer.send(base) {
            Ok(()) => Ok(true),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => Ok(false),
            Err((e, _)) => Err(e),
        }
    }

    fn offer_one(&mut self, pos: u64, agg: &Aggregate) -> Result<Offered, Error> {
        if self.held.len() >= self.max_backlog {
            if !self.away() {
                return Ok(Offered::Busy);
            }
            if !self.dropping {
                self.dropping = true;
                warn!(
                    max_backlog = self.max_backlog,
                    "no Kafka broker is up and the backlog is full: dropping new aggregates ({})",
                    records::names::drop_reason::KAFKA_BACKLOG_FULL
                );
            }
            return Ok(Offered::Now(Settled::Dropped));
        }
        self.dropping = false;
        let record = self
            .records
            .build(agg)
            .ok_or(Error::Internal("an aggregate with an empty id was offered"))?;
        match self.send(pos, &record) {
            Ok(true) => {}
            Ok(false) => return Ok(Offered::Busy),
            Err(e) => self.failed(pos, &e),
        }
        self.held.insert(pos, record);
        Ok(Offered::Pending)
    }

    /// Counts a failure and queues the record at `pos` to be sent again after the backoff.
    fn failed(&mut self, pos: u64, error: &KafkaError) {
        self.shared.errors.fetch_add(1, Relaxed);
        self.retry.push_back(pos);
        let now = Instant::now();
        if self.retry_at <= now {
            warn!(error = %error, retry_in_ms = self.backoff.as_millis() as u64, "Kafka record not delivered; will send it again");
            self.retry_at = now + self.backoff;
            self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        }
    }

    fn poll_all(&mut self, settled: &mut Vec<(u64, Settled)>) -> Result<(), Error> {
        if let Some((code, reason)) = self.producer.client().fatal_error() {
            // The idempotent producer cannot go on (its sequence is broken): exit, and let the next
            // emitd send what was held again.
            return Err(Error::Kafka(format!("fatal producer error {code:?}: {reason}")));
        }
        if let Ok(mut reports) = self.shared.reports.lock() {
            std::mem::swap(&mut *reports, &mut self.reports);
        }
        let mut reports = std::mem::take(&mut self.reports);
        for (pos, error) in reports.drain(..) {
            match error {
                None => {
                    if self.held.remove(&pos).is_some() {
                        settled.push((pos, Settled::Delivered));
                        self.backoff = MIN_BACKOFF;
                        self.progress = Instant::now();
                    }
                }
                Some(e) => self.failed(pos, &e),
            }
        }
        self.reports = reports;
        if self.held.is_empty() {
            self.progress = Instant::now();
        }
        if !self.retry.is_empty() && Instant::now() >= self.retry_at {
            while let Some(pos) = self.retry.pop_front() {
                let Some(record) = self.held.get(&pos) else { continue };
                match self.send(pos, record) {
                    Ok(true) => {}
                    Ok(false) => {
                        self.retry.push_front(pos);
                        break;
                    }
                    Err(e) => {
                        self.failed(pos, &e);
                        break;
                    }
                }
            }
        }
        Ok(())
    }
}

impl Sink for Kafka {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn ready(&self) -> bool {
        self.retry.is_empty() && (self.held.len() < self.max_backlog || self.away())
    }

    fn offer<'a>(&'a mut self, pos: u64, agg: &'a Aggregate) -> SinkFuture<'a, Result<Offered, Error>> {
        let offered = self.offer_one(pos, agg);
        Box::pin(async move { offered })
    }

    fn poll<'a>(&'a mut self, settled: &'a mut Vec<(u64, Settled)>) -> SinkFuture<'a, Result<(), Error>> {
        let polled = self.poll_all(settled);
        Box::pin(async move { polled })
    }

    fn wait(&mut self) -> SinkFuture<'_, ()> {
        let retry_at = (!self.retry.is_empty()).then_some(self.retry_at);
        let shared = self.shared.clone();
        Box::pin(async move {
            match retry_at {
                Some(at) => {
                    tokio::select! {
                        _ = shared.notify.notified() => {}
                        _ = tokio::time::sleep_until(at.into()) => {}
                    }
                }
                None => shared.notify.notified().await,
            }
        })
    }

    fn status(&self) -> SinkStatus {
        SinkStatus {
            connected: self.up(),
            backlog: self.held.len() as u64,
            failure: 0,
        }
    }

    fn events(&self, out: &mut Vec<(&'static str, u64)>) {
        out.push(("kafka.connects", self.shared.connects.load(Relaxed)));
        out.push(("kafka.errors", self.shared.errors.load(Relaxed)));
    }

    fn flush(&mut self, timeout: Duration) -> SinkFuture<'_, bool> {
        // Blocks the runtime thread; called once, when the loop is done.
        let flushed = self.producer.flush(timeout).is_ok();
        Box::pin(async move { flushed })
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::producer::BaseProducer;
    use test_brokers::pki::Pki;

    use super::*;

    /// A TLS + SASL config: the key file is read by emitd and given to librdkafka as a value.
    fn tls_config(pki: &Pki, cert: &std::path::Path, key: &std::path::Path, password: &std::path::Path) -> Config {
        Config::from_toml(&format!(
            "[emitd]\nsinks = [\"kafka\"]\n[emitd.kafka]\nbrokers = [\"127.0.0.1:9\"]\ntls = true\n\
             ca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\nsasl_mechanism = \"PLAIN\"\n\
             sasl_username = \"u\"\nsasl_password_file = \"{}\"\n",
            pki.ca.display(),
            cert.display(),
            key.display(),
            password.display()
        ))
        .unwrap()
    }

    #[test]
    fn the_client_key_and_sasl_password_are_handed_over_as_values_and_checked_by_librdkafka() {
        let pki = Pki::new("kafka-key-pem");
        let dir = test_brokers::TempDir::new("kafka-key-pem");
        let password = dir.path().join("password");
        std::fs::write(&password, "hunter2\n").unwrap();
        std::fs::set_permissions(&password, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let config = tls_config(&pki, &pki.client.cert, &pki.client.key, &password);
        let c = client_config(&config).unwrap();
        assert_eq!(
            c.get("ssl.key.location"),
            None,
            "librdkafka never opens the key by path"
        );
        assert!(c.get("ssl.key.pem").is_some_and(|k| k.contains("PRIVATE KEY")));
        assert_eq!(c.get("sasl.password"), Some("hunter2"));
        assert_eq!(c.get("security.protocol"), Some("sasl_ssl"));
        // librdkafka builds its TLS context at creation: the key must parse and match the cert.
        c.create::<BaseProducer>()
            .expect("a producer with the key given as PEM");
        let mismatched = tls_config(&pki, &pki.client.cert, &pki.client_other_ca.key, &password);
        assert!(client_config(&mismatched).unwrap().create::<BaseProducer>().is_err());
    }
}
