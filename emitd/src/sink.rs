//! The interface every sink implements: take an aggregate, tell later (or at once) whether it
//! was delivered or dropped, and report its backlog, connection and event counters. The stage's
//! loop (`stage`) drives a list of sinks through it and knows nothing else about them; the sinks
//! themselves live in `sinks`, one file each.
//!
//! # The contract
//!
//! - [`Sink::offer`] is called with ring positions in increasing order (gaps are records the
//!   sink never sees: an empty id). It returns [`Offered::Pending`] if the sink holds the record
//!   until it knows more, [`Offered::Now`] if it is settled already (core NATS: queued in the
//!   client counts as delivered; any sink: dropped because its backlog is full), or
//!   [`Offered::Busy`] if it cannot take it now (it is offered again later).
//! - [`Sink::poll`] does the sink's due work (retries, look-ups) and reports every position held
//!   that became settled since, exactly once each.
//! - [`Sink::wait`] resolves when `poll` may have something new; it must be safe to drop at any
//!   point (the loop waits on all sinks and the ring at once).
//! - [`Sink::ready`] false means "do not offer now": back-pressure (a slow sink) or not ready
//!   (JetStream without its stream). A sink that is away and whose backlog is full says ready and
//!   drops what it is offered, so that the ring keeps draining for the other sinks.
//!
//! The loop releases a record from the ring once every sink settled it, so what a sink held
//! when emitd died is offered again by the next emitd.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use records::Aggregate;

use crate::Error;

/// A boxed future borrowing the sink (the trait is used as `dyn Sink`).
pub type SinkFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// What became of a record at one sink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settled {
    /// The sink has it: acknowledged (JetStream, Kafka) or queued in the client (core NATS).
    Delivered,
    /// The sink dropped it: it was away and its backlog was full (`dropped.<sink>_backlog_full`).
    Dropped,
}

/// The answer to [`Sink::offer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offered {
    /// Held; `poll` reports it later.
    Pending,
    /// Settled already.
    Now(Settled),
    /// Not taken now; offer it again later.
    Busy,
}

/// A sink's state for the stats page.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SinkStatus {
    /// Connected to its server (`gauge.connected.<sink>`).
    pub connected: bool,
    /// Records taken and not yet settled (`gauge.backlog.<sink>`).
    pub backlog: u64,
    /// Why its last connection attempt failed, a `records::names::gauge::failure` code
    /// (`gauge.failure.<sink>`); 0 once connected or when unknown.
    pub failure: u64,
}

/// One place aggregates go.
pub trait Sink {
    /// The sink's name in counters: `<name>.delivered`, `dropped.<name>_backlog_full`, the
    /// gauges `gauge.connected.<name>` and `gauge.backlog.<name>`.
    fn name(&self) -> &'static str;

    /// Whether it takes an offer now (see the module docs).
    fn ready(&self) -> bool;

    /// Offers the aggregate at ring position `pos`.
    fn offer<'a>(&'a mut self, pos: u64, agg: &'a Aggregate) -> SinkFuture<'a, Result<Offered, Error>>;

    /// Does due work and appends the positions settled since the last call to `settled`.
    fn poll<'a>(&'a mut self, settled: &'a mut Vec<(u64, Settled)>) -> SinkFuture<'a, Result<(), Error>>;

    /// Resolves when `poll` may have something new (never, if nothing is awaited).
    fn wait(&mut self) -> SinkFuture<'_, ()>;

    /// Its connection and backlog.
    fn status(&self) -> SinkStatus;

    /// Its event counters as running totals since it started, for example `("kafka.errors", 3)`
    /// (`<name>.connects` and `<name>.errors` at least).
    fn events(&self, out: &mut Vec<(&'static str, u64)>);

    /// Writes out what the client still buffers, for at most `timeout`; false if it could not.
    fn flush(&mut self, timeout: Duration) -> SinkFuture<'_, bool>;
}
