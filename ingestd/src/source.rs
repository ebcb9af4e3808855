//! A source: something that takes readings in from the outside and hands them, in batches of raw
//! records, to the one raw ring ([`SharedRing`]), learning from the commit when they are safe
//! (MQTT then acks them, HTTP answers 2xx). ingestd runs each configured source on a thread of
//! its own ([`crate::stage`]); adding a door is adding an implementation of [`Source`].

use std::error::Error;

use tokio::sync::watch;

use crate::liveness::Liveness;
use crate::ring::SharedRing;

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
