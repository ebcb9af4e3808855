//! The sources, one folder each, what they share, and [`configured`], which picks the ones the
//! config turns on. A source takes readings in from the outside and hands them, in batches of
//! raw records, to the one raw ring ([`SharedRing`]), learning from the commit when they are safe
//! (MQTT then acks them, HTTP answers 2xx). ingestd runs each configured source on a thread of
//! its own ([`crate::stage`]); adding a door is adding a folder that implements [`Source`] and one
//! line in [`configured`].
//!
//! | source | folder | turned on by | delivery |
//! |---|---|---|---|
//! | MQTT 5 | [`mqtt`] | `[ingestd] broker` | at QoS 1, acked once in the ring or counted as dropped |
//! | HTTP | [`http`] | `[ingestd.http] listen` | 2xx once the whole request is in the ring, else refused whole |
//!
//! Shared by both: [`raw_ring`] (the raw ring's one producer and the stage's counters, behind
//! one lock) and [`liveness`] (whether a source's loop is healthy, for the heartbeat).

pub mod http;
pub mod liveness;
pub mod mqtt;
pub mod raw_ring;

use std::error::Error;

use telemetry_config::Config;
use tokio::sync::watch;

use self::http::HttpSource;
use self::liveness::Liveness;
use self::mqtt::MqttSource;
use self::raw_ring::SharedRing;

/// A source's fatal error (a problem with the ring, or a listener it cannot open).
pub type SourceError = Box<dyn Error + Send + Sync>;

/// One of ingestd's doors.
pub trait Source: Send {
    /// Its name, for logs and its thread's name.
    fn name(&self) -> &'static str;

    /// Runs until `stop` fires, handing records to `ring`. Blocks its thread (a source builds
    /// its own runtime). Reports progress on `liveness`, which the heartbeat follows, and sets
    /// the stage `Running` once it takes input.
    fn run(self: Box<Self>, ring: SharedRing, liveness: Liveness, stop: Stop) -> Result<(), SourceError>;
}

/// The sources `config` turns on: MQTT when a broker is set, HTTP when it listens.
pub fn configured(config: &Config) -> Vec<Box<dyn Source>> {
    let mut sources: Vec<Box<dyn Source>> = Vec::new();
    if !config.ingestd.broker.is_empty() {
        sources.push(Box::new(MqttSource::new(config.clone())));
    }
    if config.ingestd.http.enabled() {
        sources.push(Box::new(HttpSource::new(config.ingestd.clone())));
    }
    sources
}

/// The stage's order to stop, seen by every source.
#[derive(Clone)]
pub struct Stop(watch::Receiver<bool>);

/// Gives the order to stop.
pub struct StopSender(watch::Sender<bool>);

/// A new stop order, not given yet.
pub fn stop_channel() -> (StopSender, Stop) {
    let (tx, rx) = watch::channel(false);
    (StopSender(tx), Stop(rx))
}

impl StopSender {
    /// Tells every source to stop.
    pub fn stop(&self) {
        self.0.send_replace(true);
    }
}

impl Stop {
    /// Whether the order was given.
    pub fn stopping(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once the order is given (at once if it was). Cancel-safe.
    pub async fn wait(&mut self) {
        // An error means the sender is gone: the stage is ending anyway.
        let _ = self.0.wait_for(|s| *s).await;
    }
}
