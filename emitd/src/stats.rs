//! emitd's counters in the stats page (stage `emitd`) and the aggregates ring's depth gauge.
//!
//! | counter | counts |
//! |---|---|
//! | `received` | aggregates released from the aggregates ring |
//! | `forwarded` | of those, published: handed to the NATS client (core) or acked by JetStream |
//! | `dropped.unsafe_subject` | of those, not published: an empty device or sensor id |
//! | `dropped.nats_backlog_full` | of those, not published: NATS away and `max_backlog` waiting |
//! | `nats.connects`, `nats.disconnects` | connections established and lost |
//! | `nats.tls_errors`, `nats.auth_errors` | connection attempts that failed in TLS, or for credentials |
//! | `gauge.connected.nats`, `gauge.failure.nats` | 1 while connected; why the last attempt failed |
//! | `js.republished` | JetStream publishes sent again after a failed or missing ack |
//! | `js.duplicates` | JetStream acks saying the server already had the message (deduplicated) |
//!
//! An aggregate is counted when it is released (committed) from the ring, in the same batch as
//! its outcome, so `received = forwarded + dropped.*` holds exactly in every snapshot, also across
//! a crash. Aggregates being published (in JetStream mode: until acked) are still in the ring:
//! they are part of its depth, so `aggd.forwarded = emitd.received + depth` as between any two
//! stages. The `nats.*` and `js.*` counters count events, not aggregates.

use records::names::{counter, drop_reason, gauge, nats, segment};
use shm_ring::{CounterId, StageState};
use stage_runtime::StageCounters;

use crate::publisher::ConnectionEvents;

/// What became of one aggregate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Published.
    Forwarded,
    /// Dropped: an id cannot be a subject token.
    UnsafeSubject,
    /// Dropped: NATS was away and the backlog was full.
    BacklogFull,
}

/// The stage's counters, and the last values reported.
pub struct Stats {
    counters: StageCounters,
    received: CounterId,
    forwarded: CounterId,
    unsafe_subject: CounterId,
    backlog_full: CounterId,
    connects: CounterId,
    disconnects: CounterId,
    republished: CounterId,
    duplicates: CounterId,
    tls_errors: CounterId,
    auth_errors: CounterId,
    connected: CounterId,
    last_failure: CounterId,
    seen_connects: u64,
    seen_disconnects: u64,
    seen_tls_errors: u64,
    seen_auth_errors: u64,
    depth: Option<u64>,
}

impl Stats {
    /// Registers (or finds again, after a restart) every counter.
    pub fn new(mut counters: StageCounters) -> Result<Self, shm_ring::Error> {
        Ok(Stats {
            received: counters.id(counter::RECEIVED)?,
            forwarded: counters.id(counter::FORWARDED)?,
            unsafe_subject: counters.id(drop_reason::UNSAFE_SUBJECT)?,
            backlog_full: counters.id(drop_reason::NATS_BACKLOG_FULL)?,
            connects: counters.id("nats.connects")?,
            disconnects: counters.id("nats.disconnects")?,
            republished: counters.id("js.republished")?,
            duplicates: counters.id("js.duplicates")?,
            tls_errors: counters.id(nats::TLS_ERRORS)?,
            auth_errors: counters.id(nats::AUTH_ERRORS)?,
            connected: counters.id(gauge::NATS_CONNECTED)?,
            last_failure: counters.id(gauge::NATS_FAILURE)?,
            counters,
            seen_connects: 0,
            seen_disconnects: 0,
            seen_tls_errors: 0,
            seen_auth_errors: 0,
            depth: None,
        })
    }

    /// Counts one aggregate released from the ring.
    #[inline]
    pub fn released(&mut self, outcome: Outcome) {
        self.counters.add(self.received, 1);
        let id = match outcome {
            Outcome::Forwarded => self.forwarded,
            Outcome::UnsafeSubject => self.unsafe_subject,
            Outcome::BacklogFull => self.backlog_full,
        };
        self.counters.add(id, 1);
    }

    /// Counts a JetStream publish sent again.
    pub fn republished(&mut self) {
        self.counters.add(self.republished, 1);
    }

    /// Counts an ack for a message the server already had.
    pub fn duplicate(&mut self) {
        self.counters.add(self.duplicates, 1);
    }

    /// Reports the aggregates ring's depth (only when it changed).
    pub fn ring_depth(&mut self, depth: u64) {
        if self.depth != Some(depth) {
            self.depth = Some(depth);
            self.counters.set_ring_depth(segment::AGGREGATES, depth);
        }
    }

    /// Takes in the connection events since the last call.
    pub fn connection(&mut self, events: &ConnectionEvents) {
        use std::sync::atomic::Ordering::Relaxed;
        let (c, d) = (events.connects.load(Relaxed), events.disconnects.load(Relaxed));
        if c != self.seen_connects {
            self.counters.add(self.connects, c.wrapping_sub(self.seen_connects));
            self.seen_connects = c;
        }
        if d != self.seen_disconnects {
            self.counters
                .add(self.disconnects, d.wrapping_sub(self.seen_disconnects));
            self.seen_disconnects = d;
        }
        let (t, a) = (events.tls_errors.load(Relaxed), events.auth_errors.load(Relaxed));
        self.counters.add(self.tls_errors, t.wrapping_sub(self.seen_tls_errors));
        self.counters
            .add(self.auth_errors, a.wrapping_sub(self.seen_auth_errors));
        (self.seen_tls_errors, self.seen_auth_errors) = (t, a);
        // Gauges: set every time (a killed predecessor's values stay in the page until then).
        self.counters.set_gauge(self.connected, events.connected.load(Relaxed));
        self.counters
            .set_gauge(self.last_failure, events.last_failure.load(Relaxed));
    }

    /// Publishes the counts gathered since the last flush as one consistent step, and beats the
    /// heartbeat.
    pub fn flush(&mut self) {
        self.counters.flush();
    }

    /// Reports the stage's state.
    pub fn set_state(&self, state: StageState) {
        self.counters.set_state(state);
    }

    /// Reports the stage ready and wakes the supervisor (see `StageCounters::ready`).
    pub fn ready(&self) {
        self.counters.ready();
    }
}
