//! What the loop does with each message: take it into the batch (or settle it at once as a
//! duplicate or an oversize message), hand the batch to the raw ring, and ack what is settled.
//!
//! # Settled, then counted, then acked, in order
//!
//! A message is *settled* when its record is committed to the raw ring or it is counted as
//! dropped. Counters are published before the acks of what they count are handed to rumqttc: a
//! kill in between leaves those messages unacked, so the broker redelivers them and they are
//! counted again, as duplicates of what the ring holds. `received` counts a message when it is
//! settled, so `received = forwarded + dropped.*` holds exactly at every flush, also while
//! messages are held.
//!
//! Acks go out in the order the messages arrived (MQTT 5, 4.6), so a duplicate or an oversize
//! message settled at once waits for the acks of the messages before it. This is more than
//! form: mosquitto 2.0.11 matches a PUBACK to the *first* message in flight with that packet id,
//! and after a session resumes it puts its whole queue in flight, where ids repeat past 65,535.
//! An ack that overtook a held message with the same id would settle the held one at the broker
//! (lost if ingestd is then killed) and leave the acked one to be redelivered.
//!
//! # A full ring
//!
//! With `when_ring_full = "hold"`, a QoS 1 message that the ring cannot take stays in the batch,
//! unacked, and is offered to the ring again at the next flush. The broker sends no more than our
//! Receive Maximum of unacked messages, so the batch stays bounded and the broker queues the rest
//! of the stream; the socket keeps being read, so pings and acks keep flowing. A broker that
//! ignores the Receive Maximum would make the batch grow: past [`HOLD_LIMIT`] the loop stops
//! reading until the ring has room ([`Ingest::over_hold_limit`]). QoS 0 messages (and every
//! message with `when_ring_full = "drop"`) that do not fit are acked, dropped and counted as
//! `dropped.ring_full`.

use std::collections::VecDeque;

use records::names::{drop_reason, gauge, session};
use rumqttc::v5::mqttbytes::v5::Publish;
use rumqttc::v5::AsyncClient;
use shm_ring::stats::CounterId;
use telemetry_config::WhenRingFull;
use tracing::{info, warn};

use super::message::{self, Ack, Staged};
use super::redelivery::{Digest, Redelivered};
use super::session::{RECEIVE_MAXIMUM, REQUEST_CAPACITY};
pub use crate::sources::raw_ring::MAX_BATCH;
use crate::sources::raw_ring::{RawRing, SharedRing};

/// Held messages past which the loop stops reading its socket until the ring has room: well
/// above what a broker honouring our Receive Maximum can have in flight.
pub const HOLD_LIMIT: usize = 4 * RECEIVE_MAXIMUM as usize;

struct Counters {
    received: CounterId,
    forwarded: CounterId,
    ring_full: CounterId,
    duplicate: CounterId,
    topic_too_long: CounterId,
    payload_too_large: CounterId,
    connects: CounterId,
    session_lost: CounterId,
    connection_errors: CounterId,
    tls_errors: CounterId,
    auth_errors: CounterId,
    protocol_errors: CounterId,
    /// `gauge.connected.mqtt`: 1 from a ConnAck until the connection fails.
    mqtt_connected: CounterId,
    /// `gauge.failure.mqtt`: why the last attempt failed (0 once connected).
    mqtt_failure: CounterId,
}

/// Everything the loop owns besides the MQTT client.
pub struct Ingest {
    /// The raw ring and the counters, shared with the other sources.
    ring: SharedRing,
    ids: Counters,
    /// Messages taken and not settled yet, oldest first, as slices of rumqttc's read buffers:
    /// written into their ring slots only when handed over (see `message`). With
    /// `WhenRingFull::Hold` its head may be messages the ring could not take yet.
    batch: Vec<Staged>,
    /// Messages taken since the last flush (the tail of `batch`).
    fresh: usize,
    /// Arrival number of the next QoS 1 message (orders the acks).
    next_seq: u64,
    /// Acks of messages settled outside the batch (duplicates, oversize, dropped for a full
    /// ring), by arrival number, waiting for the acks of every message before them.
    early: VecDeque<(u64, Ack)>,
    /// Acks released for sending since the counters were last published, in arrival order.
    settled: Vec<Ack>,
    /// Acks that did not fit in rumqttc's request channel yet (it takes them one per `poll()`);
    /// sent, in order, before any newer ack.
    unsent: VecDeque<Ack>,
    redelivered: Redelivered,
    /// The raw ring's published count when this process attached, until the predecessor's
    /// records are inherited (at the first DUP message; see `redelivery`).
    predecessor_published: Option<u64>,
    when_full: WhenRingFull,
    max_payload: usize,
    /// Connections accepted so far.
    connects: u64,
    warned_hold_limit: bool,
}

impl Ingest {
    /// Takes its place at the shared raw ring, and takes over the packet ids of what the ring
    /// holds, so that the broker's redeliveries of a predecessor's messages are recognised.
    pub fn new(ring: SharedRing, max_payload: usize, when_full: WhenRingFull) -> Result<Self, shm_ring::Error> {
        let mut r = ring.lock();
        let ids = Counters {
            received: r.received,
            forwarded: r.forwarded,
            ring_full: r.stats.id(drop_reason::RING_FULL)?,
            duplicate: r.stats.id(drop_reason::DUPLICATE)?,
            topic_too_long: r.stats.id(drop_reason::TOPIC_TOO_LONG)?,
            payload_too_large: r.stats.id(drop_reason::PAYLOAD_TOO_LARGE)?,
            connects: r.stats.id(session::CONNECTS)?,
            session_lost: r.stats.id(session::SESSION_LOST)?,
            connection_errors: r.stats.id(session::CONNECTION_ERRORS)?,
            tls_errors: r.stats.id(session::TLS_ERRORS)?,
            auth_errors: r.stats.id(session::AUTH_ERRORS)?,
            protocol_errors: r.stats.id(session::PROTOCOL_ERRORS)?,
            mqtt_connected: r.stats.id(gauge::MQTT_CONNECTED)?,
            mqtt_failure: r.stats.id(gauge::MQTT_FAILURE)?,
        };
        // A killed predecessor may have left it at 1.
        r.stats.set_gauge(ids.mqtt_connected, 0);
        r.stats.flush();
        let predecessor_published = Some(r.producer.published());
        let redelivered = Redelivered::new(r.producer.capacity());
        drop(r);
        Ok(Ingest {
            ring,
            ids,
            batch: Vec::with_capacity(MAX_BATCH),
            fresh: 0,
            next_seq: 0,
            early: VecDeque::new(),
            settled: Vec::with_capacity(MAX_BATCH),
            unsent: VecDeque::new(),
            redelivered,
            predecessor_published,
            when_full,
            max_payload,
            connects: 0,
            warned_hold_limit: false,
        })
    }

    /// The raw ring and the stage's counters (its state and heartbeat too), locked.
    pub fn ring(&self) -> std::sync::MutexGuard<'_, RawRing> {
        self.ring.lock()
    }

    /// Messages taken since the last flush.
    pub fn fresh(&self) -> usize {
        self.fresh
    }

    /// Whether messages wait for room in the ring.
    pub fn holding(&self) -> bool {
        self.batch.len() > self.fresh
    }

    /// Whether so many messages wait that the loop should stop reading until the ring has room
    /// (a broker that ignores our Receive Maximum). Warns once.
    pub fn over_hold_limit(&mut self) -> bool {
        let over = self.batch.len() >= HOLD_LIMIT;
        if over && !self.warned_hold_limit {
            warn!(
                held = self.batch.len(),
                "the broker sends past our Receive Maximum while the raw ring is full; reading paused"
            );
            self.warned_hold_limit = true;
        }
        over
    }

    /// Takes one message into the batch, or settles it at once (a redelivery of a message
    /// already taken, or one that does not fit a record).
    pub fn take(&mut self, publish: Publish, received_ms: u64) {
        let ack = Ack::of(&publish);
        let seq = self.next_seq;
        self.next_seq += u64::from(ack.is_some());
        // Only QoS 1 messages can come again; only they are remembered.
        let digest = ack.map(|_| Digest::of(&publish.topic, &publish.payload));
        if publish.dup {
            self.inherit_predecessor();
        }
        if let Some(digest) = digest.filter(|d| publish.dup && self.redelivered.holds(*d)) {
            let mut r = self.ring.lock();
            r.stats.add(self.ids.received, 1);
            r.stats.add(self.ids.duplicate, 1);
            drop(r);
            // Still waiting in the batch: its own ack, sent once it is in the ring, covers this
            // one (the broker resends with the original packet id). Acking now would tell the
            // broker it is safe before it is.
            if !self.batch.iter().any(|s| s.digest == Some(digest)) {
                self.early.extend(ack.map(|a| (seq, a)));
            }
            return;
        }
        match message::stage(publish, received_ms, self.max_payload) {
            Ok(mut staged) => {
                if let Some(d) = digest {
                    self.redelivered.remember(d);
                }
                staged.digest = digest;
                staged.seq = seq;
                self.batch.push(staged);
                self.fresh += 1;
            }
            Err(reason) => {
                let id = if reason == drop_reason::TOPIC_TOO_LONG {
                    self.ids.topic_too_long
                } else {
                    self.ids.payload_too_large
                };
                let mut r = self.ring.lock();
                r.stats.add(self.ids.received, 1);
                r.stats.add(id, 1);
                self.early.extend(ack.map(|a| (seq, a)));
            }
        }
    }

    /// Takes over the digests of what the predecessor committed to the raw ring, once: the ring's
    /// records before those this process committed.
    fn inherit_predecessor(&mut self) {
        let Some(at_start) = self.predecessor_published.take() else {
            return;
        };
        let started = std::time::Instant::now();
        let r = self.ring.lock();
        // Everything published since this process started is its own (MQTT or HTTP).
        let own = r.producer.published().wrapping_sub(at_start) as usize;
        let capacity = r.producer.capacity();
        let inherited = if own < capacity {
            self.redelivered.inherit(r.producer.recent(capacity).skip(own))
        } else {
            0
        };
        info!(
            records = inherited,
            took_us = started.elapsed().as_micros() as u64,
            "took over the raw ring's recent records (to recognise redeliveries)"
        );
    }

    /// The broker accepted a connection. Acks not yet handed over belong to the last
    /// connection: the broker resends what they would have acked, and those resends are acked
    /// as duplicates. After the first connection, one without a session means the broker
    /// discarded what it held for us: counted, and said; nothing will be redelivered.
    pub fn connected(&mut self, session_present: bool) {
        let mut r = self.ring.lock();
        r.stats.add(self.ids.connects, 1);
        r.stats.set_gauge(self.ids.mqtt_connected, 1);
        r.stats.set_gauge(self.ids.mqtt_failure, gauge::failure::NONE);
        self.unsent.clear();
        self.early.clear();
        if !session_present {
            if self.connects > 0 {
                r.stats.add(self.ids.session_lost, 1);
                warn!("the broker kept no session for us: messages it queued while we were away are lost");
            }
            self.redelivered.forget();
            self.predecessor_published = None;
            for s in &mut self.batch {
                s.ack = None;
            }
        }
        self.connects += 1;
        r.stats.flush();
    }

    /// Counts a connection dropped for the broker's protocol error (before
    /// [`Ingest::connection_failed`] counts it as a failed connection).
    pub fn protocol_error(&mut self) {
        let mut r = self.ring.lock();
        r.stats.add(self.ids.protocol_errors, 1);
        r.stats.flush();
    }

    /// Counts a failed connection attempt, by its `records::names::gauge::failure` code.
    pub fn connection_failed(&mut self, code: u64) {
        let mut r = self.ring.lock();
        r.stats.add(self.ids.connection_errors, 1);
        match code {
            gauge::failure::TLS => r.stats.add(self.ids.tls_errors, 1),
            gauge::failure::AUTH => r.stats.add(self.ids.auth_errors, 1),
            _ => {}
        }
        r.stats.set_gauge(self.ids.mqtt_failure, code);
        r.stats.set_gauge(self.ids.mqtt_connected, 0);
        r.stats.flush();
    }

    /// Hands the batch to the ring, in commits of at most [`MAX_BATCH`]; what does not fit is
    /// held or dropped (see the module docs). Then publishes the counters and hands the acks of
    /// every settled message to rumqttc. Returns how many acks it handed over.
    pub fn flush(&mut self, client: &AsyncClient) -> Result<usize, shm_ring::Error> {
        let mut committed = 0;
        let mut ordered: Vec<(u64, Ack)> = Vec::new();
        let ring = self.ring.clone();
        let mut r = ring.lock();
        let r: &mut RawRing = &mut r;
        while committed < self.batch.len() {
            let want = (self.batch.len() - committed).min(MAX_BATCH);
            let mut chunk = r.producer.write_chunk(want)?;
            let taken = chunk.len();
            let staged = &self.batch[committed..committed + taken];
            for (slot, s) in chunk.iter_mut().zip(staged) {
                s.write(slot);
            }
            chunk.commit_all();
            ordered.extend(staged.iter().filter_map(|s| s.ack.map(|a| (s.seq, a))));
            r.stats.add(self.ids.received, taken as u64);
            r.stats.add(self.ids.forwarded, taken as u64);
            r.stats.flush();
            committed += taken;
            if taken < want {
                break;
            }
        }
        self.batch.drain(..committed);
        self.fresh = 0;
        // What the ring could not take: held (QoS 1, hold) or dropped.
        let hold = self.when_full == WhenRingFull::Hold;
        let mut ring_full = 0u64;
        let early = &mut self.early;
        self.batch.retain(|s| {
            if hold && s.ack.is_some() {
                return true;
            }
            early.extend(s.ack.map(|a| (s.seq, a)));
            ring_full += 1;
            false
        });
        if ring_full > 0 {
            // Dropped messages arrived before the duplicates settled since: keep arrival order.
            self.early.make_contiguous().sort_unstable_by_key(|(seq, _)| *seq);
        }
        r.stats.add(self.ids.received, ring_full);
        r.stats.add(self.ids.ring_full, ring_full);
        r.stats.flush();
        // Release, in arrival order, every ack before the first message still held.
        let frontier = self.batch.iter().find_map(|s| s.ack.map(|_| s.seq)).unwrap_or(u64::MAX);
        release_in_order(ordered, &mut self.early, frontier, &mut self.settled);
        Ok(self.send_acks(client))
    }

    /// Hands the settled acks to rumqttc, oldest first; what its channel cannot take now waits
    /// in `unsent` (the broker sends no more than its in-flight window until acks flow again).
    fn send_acks(&mut self, client: &AsyncClient) -> usize {
        self.unsent.extend(self.settled.drain(..));
        let mut handed = 0;
        while let Some(ack) = self.unsent.front() {
            if client.try_ack(&ack.publish()).is_err() {
                break;
            }
            self.unsent.pop_front();
            handed += 1;
        }
        if self.unsent.len() > REQUEST_CAPACITY && self.unsent.len().is_power_of_two() {
            warn!(waiting = self.unsent.len(), "acks are falling behind the reads");
        }
        handed
    }
}

/// Appends to `out`, in arrival order, the acks of `committed` (in arrival order) merged with
/// those of `early` that arrived before `frontier` (the first message still held); the rest of
/// `early` stays.
fn release_in_order(committed: Vec<(u64, Ack)>, early: &mut VecDeque<(u64, Ack)>, frontier: u64, out: &mut Vec<Ack>) {
    let mut committed = committed.into_iter().peekable();
    loop {
        let next_early = early.front().map(|(seq, _)| *seq).filter(|seq| *seq < frontier);
        let take_early = match (committed.peek(), next_early) {
            (Some((c, _)), Some(e)) => e < *c,
            (None, Some(_)) => true,
            (Some(_), None) => false,
            (None, None) => return,
        };
        let ack = if take_early {
            early.pop_front().map(|(_, a)| a)
        } else {
            committed.next().map(|(_, a)| a)
        };
        out.extend(ack);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acks(seqs: &[u64]) -> Vec<(u64, Ack)> {
        seqs.iter().map(|&s| (s, Ack::for_test(s as u16 + 1))).collect()
    }

    #[test]
    fn acks_are_released_in_arrival_order_and_never_past_a_held_message() {
        // Arrived: 0 1 2 (committed), 3 (a duplicate), 4 (held), 5 (a duplicate).
        let mut early: VecDeque<_> = acks(&[3, 5]).into();
        let mut out = Vec::new();
        release_in_order(acks(&[0, 1, 2]), &mut early, 4, &mut out);
        assert_eq!(out.iter().map(|a| a.pkid).collect::<Vec<_>>(), [1, 2, 3, 4]);
        assert_eq!(early.len(), 1, "5 waits behind the held 4");
        // 4 committed, nothing held any more.
        out.clear();
        release_in_order(acks(&[4]), &mut early, u64::MAX, &mut out);
        assert_eq!(out.iter().map(|a| a.pkid).collect::<Vec<_>>(), [5, 6]);
        // Duplicates between committed messages.
        let mut early: VecDeque<_> = acks(&[1, 3]).into();
        out.clear();
        release_in_order(acks(&[0, 2, 4]), &mut early, u64::MAX, &mut out);
        assert_eq!(out.iter().map(|a| a.pkid).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    }
}
