//! emitd's counters in the stats page (stage `emitd`), its gauges, and the aggregates ring's
//! depth gauge.
//!
//! | counter | counts |
//! |---|---|
//! | `received` | aggregates released from the aggregates ring |
//! | `forwarded` | of those, delivered by every sink (see below) |
//! | `dropped.unsafe_subject` | of those, sent nowhere: an empty device or sensor id |
//! | `dropped.<sink>_backlog_full` | of those, dropped by `<sink>` (away, its backlog full) |
//! | `<sink>.delivered` | aggregates delivered by `<sink>` (released from the ring) |
//! | `<sink>.connects`, `<sink>.errors` | connections established; failed publishes or client errors |
//! | `nats.disconnects` | NATS connections lost |
//! | `nats.tls_errors`, `nats.auth_errors` | NATS connection attempts that failed in TLS, or for credentials |
//! | `js.republished` | JetStream publishes sent again after a failed or missing ack |
//! | `js.duplicates` | JetStream acks saying the server already had the message (deduplicated) |
//!
//! | gauge | value |
//! |---|---|
//! | `gauge.connected.<sink>` | 1 while the sink's client is connected |
//! | `gauge.backlog.<sink>` | aggregates the sink holds, taken and not yet settled |
//! | `gauge.failure.<sink>` | why its last connection attempt failed (`records::names::gauge::failure`) |
//!
//! Each aggregate ends at exactly one of `forwarded` and `dropped.*`: if some sink dropped it, it
//! counts under the first such sink in `[emitd] sinks` (even if another sink delivered it), so
//! `received = forwarded + dropped.*` holds exactly in every snapshot, also across a crash.
//! Per sink, `received - dropped.unsafe_subject - <sink>.delivered` is what that sink missed.
//! With one sink (the default) the two views are the same.
//!
//! An aggregate is counted when it is released (committed) from the ring, in the same batch as
//! its outcome. Aggregates held by a sink are still in the ring: they are part of its depth, so
//! `aggd.forwarded = emitd.received + depth` as between any two stages. The event counters count
//! events, not aggregates. Gauges are set when emitd starts, since a killed predecessor's values
//! stay in the page.

use std::collections::HashMap;

use records::names::{counter, drop_reason, gauge, segment};
use shm_ring::stats::CounterId;
use stage_runtime::StageCounters;

use crate::sink::SinkStatus;

/// What became of one aggregate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered by every sink.
    Forwarded,
    /// Sent nowhere: an id cannot be a subject token.
    UnsafeSubject,
    /// Dropped by the sink of this index (the first one that dropped it).
    BacklogFull(usize),
}

/// One sink's counters and gauges, and the gauge values last set.
struct SinkCounters {
    delivered: CounterId,
    dropped: CounterId,
    connected: CounterId,
    backlog: CounterId,
    failure: CounterId,
    last: Option<SinkStatus>,
}

/// The stage's counters, and the last values reported.
pub struct Stats {
    counters: StageCounters,
    received: CounterId,
    forwarded: CounterId,
    unsafe_subject: CounterId,
    sinks: Vec<SinkCounters>,
    /// Event counters by name, with the running total last seen.
    events: HashMap<&'static str, (CounterId, u64)>,
    depth: Option<u64>,
}

impl Stats {
    /// Registers (or finds again, after a restart) every counter, for the sinks named `sinks`,
    /// and sets their gauges to 0.
    pub fn new(mut counters: StageCounters, sinks: &[&str]) -> Result<Self, shm_ring::Error> {
        let mut per_sink = Vec::with_capacity(sinks.len());
        for name in sinks {
            let s = SinkCounters {
                delivered: counters.id(&format!("{name}.delivered"))?,
                dropped: counters.id(&format!("dropped.{name}_backlog_full"))?,
                connected: counters.id(&format!("{}{name}", gauge::CONNECTED_PREFIX))?,
                backlog: counters.id(&format!("{}{name}", gauge::BACKLOG_PREFIX))?,
                failure: counters.id(&format!("{}{name}", gauge::FAILURE_PREFIX))?,
                last: None,
            };
            counters.set_gauge(s.connected, 0);
            counters.set_gauge(s.backlog, 0);
            counters.set_gauge(s.failure, gauge::failure::NONE);
            per_sink.push(s);
        }
        Ok(Stats {
            received: counters.id(counter::RECEIVED)?,
            forwarded: counters.id(counter::FORWARDED)?,
            unsafe_subject: counters.id(drop_reason::UNSAFE_SUBJECT)?,
            sinks: per_sink,
            counters,
            events: HashMap::new(),
            depth: None,
        })
    }

    /// Counts one aggregate released from the ring; bit `i` of `delivered` set if sink `i`
    /// delivered it.
    #[inline]
    pub fn released(&mut self, outcome: Outcome, delivered: u32) {
        self.counters.add(self.received, 1);
        let id = match outcome {
            Outcome::Forwarded => self.forwarded,
            Outcome::UnsafeSubject => self.unsafe_subject,
            Outcome::BacklogFull(i) => self.sinks[i].dropped,
        };
        self.counters.add(id, 1);
        for (i, s) in self.sinks.iter().enumerate() {
            if delivered & (1 << i) != 0 {
                self.counters.add(s.delivered, 1);
            }
        }
    }

    /// Reports sink `i`'s gauges (only when they changed).
    pub fn sink_status(&mut self, i: usize, status: SinkStatus) {
        let s = &mut self.sinks[i];
        if s.last != Some(status) {
            s.last = Some(status);
            self.counters.set_gauge(s.connected, u64::from(status.connected));
            self.counters.set_gauge(s.backlog, status.backlog);
            self.counters.set_gauge(s.failure, status.failure);
        }
    }

    /// Takes in event counters given as running totals (see `Sink::events`).
    pub fn events(&mut self, totals: &[(&'static str, u64)]) -> Result<(), shm_ring::Error> {
        for &(name, total) in totals {
            let (id, seen) = match self.events.get_mut(name) {
                Some(e) => e,
                None => {
                    let id = self.counters.id(name)?;
                    self.events.entry(name).or_insert((id, 0))
                }
            };
            if total != *seen {
                self.counters.add(*id, total.wrapping_sub(*seen));
                *seen = total;
            }
        }
        Ok(())
    }

    /// Reports the aggregates ring's depth (only when it changed).
    pub fn ring_depth(&mut self, depth: u64) {
        if self.depth != Some(depth) {
            self.depth = Some(depth);
            self.counters.set_ring_depth(segment::AGGREGATES, depth);
        }
    }

    /// Publishes the counts gathered since the last flush as one consistent step, and beats the
    /// heartbeat.
    pub fn flush(&mut self) {
        self.counters.flush();
    }
}
