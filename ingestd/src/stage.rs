//! The loop: take every message rumqttc can hand over without waiting, give them to the raw
//! ring as one chunk (or count them as dropped), publish the counters, ack them, and pause a
//! short latency budget so that the next read brings a batch rather than a few messages.
//!
//! Batching without cancelling anything: rumqttc's `EventLoop::poll()` is not safe to drop
//! half-way (it may be writing an ack or a ping), so a `poll()` future, once started, is always
//! driven to completion. The loop polls it once; if it is ready, that event joins the batch;
//! if not, the socket is drained for now, so the batch is handed over, the loop pauses (for how
//! long: [`crate::pacing`]), and then awaits *the same* future. Acks queued by the hand-over
//! are written by that same future before the pause (rumqttc, as patched in `vendor/rumqttc`,
//! writes every queued ack with one flush), so the broker's in-flight window does not wait on
//! the pause.
//!
//! The pause blocks the thread on purpose (`std::thread::sleep`, not a tokio timer): a tokio
//! sleep would still wake the thread for every TCP segment that arrives meanwhile, since the
//! socket stays registered with epoll. Nothing else on this thread minds a pause of a few
//! milliseconds: the heartbeat ticks every 500 ms, and SIGTERM is seen after the pause.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::{pin, Pin};
use std::task::Poll;
use std::time::{Duration, Instant};

use records::names::{counter, drop_reason, session, stage};
use records::RawRecord;
use rumqttc::v5::mqttbytes::v5::{Packet, Publish};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop};
use shm_ring::{CounterId, Producer, SegmentName, StageState, StatsReader};
use stage_runtime::{Backoff, StageCounters};
use telemetry_config::Config;
use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info, warn};

use crate::intake::{self, Staged};
use crate::liveness::Liveness;
use crate::mqtt;
use crate::pacing::Pacing;

/// Most messages handed to the ring in one chunk.
const MAX_BATCH: usize = 1024;
/// How far back a redelivered message is looked for in the raw ring: more than the broker's
/// in-flight window (`mqtt::RECEIVE_MAXIMUM`) plus one batch.
const DUPLICATE_WINDOW: usize = 2 * mqtt::RECEIVE_MAXIMUM as usize + MAX_BATCH;

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
}

/// Everything the loop owns besides the MQTT client.
pub struct Ingest {
    producer: Producer<RawRecord>,
    stats: StageCounters,
    ids: Counters,
    /// This pass's messages, checked, as slices of rumqttc's read buffers: written into their
    /// ring slots only when the batch is handed over (see `intake`).
    batch: Vec<Staged>,
    acks: Vec<Ack>,
    /// Acks that did not fit in rumqttc's request channel yet (it takes them one per `poll()`);
    /// sent, in order, before any newer ack. A broker that ignores our Receive Maximum can make
    /// this long, so an entry is only the packet id and QoS (4 bytes), not the message.
    unsent: VecDeque<Ack>,
    max_payload: usize,
    /// Connections accepted so far.
    connects: u64,
}

impl Ingest {
    /// Wraps the raw ring's producer and the stage's stats slot (in the stats page
    /// `stats_page`), first counting a batch a predecessor published but did not count (see
    /// [`unrecorded`]).
    pub fn new(
        producer: Producer<RawRecord>,
        mut stats: StageCounters,
        stats_page: &SegmentName,
        max_payload: usize,
    ) -> Result<Self, shm_ring::Error> {
        let ids = Counters {
            received: stats.id(counter::RECEIVED)?,
            forwarded: stats.id(counter::FORWARDED)?,
            ring_full: stats.id(drop_reason::RING_FULL)?,
            duplicate: stats.id(drop_reason::DUPLICATE)?,
            topic_too_long: stats.id(drop_reason::TOPIC_TOO_LONG)?,
            payload_too_large: stats.id(drop_reason::PAYLOAD_TOO_LARGE)?,
            connects: stats.id(session::CONNECTS)?,
            session_lost: stats.id(session::SESSION_LOST)?,
            connection_errors: stats.id(session::CONNECTION_ERRORS)?,
        };
        let unrecorded = unrecorded(producer.published(), published_forwarded(stats_page));
        if unrecorded > 0 {
            warn!(
                records = unrecorded,
                "the raw ring holds a batch its producer did not live to count; counted now"
            );
            stats.add(ids.received, unrecorded);
            stats.add(ids.forwarded, unrecorded);
        }
        stats.flush();
        Ok(Ingest {
            producer,
            stats,
            ids,
            batch: Vec::with_capacity(MAX_BATCH),
            acks: Vec::with_capacity(MAX_BATCH),
            unsent: VecDeque::new(),
            max_payload,
            connects: 0,
        })
    }

    /// Whether a redelivered message is already in this batch or in the raw ring. Only messages
    /// with MQTT's DUP flag are looked up, so the scan runs only after a reconnect.
    fn already_stored(&self, publish: &Publish) -> bool {
        let same = |r: &RawRecord| r.topic() == &publish.topic[..] && r.payload() == &publish.payload[..];
        let staged = |s: &Staged| s.same_as_parts(&publish.topic, &publish.payload);
        self.batch.iter().any(staged) || self.producer.recent(DUPLICATE_WINDOW).any(|r| same(&r))
    }

    /// Takes one message into the current batch, or counts it as dropped.
    fn take(&mut self, publish: Publish, received_ms: u64) {
        self.stats.add(self.ids.received, 1);
        let ack = (publish.qos != QoS::AtMostOnce).then(|| ack_only(&publish));
        if publish.dup && self.already_stored(&publish) {
            self.stats.add(self.ids.duplicate, 1);
        } else {
            match intake::stage(publish, received_ms, self.max_payload) {
                Ok(staged) => self.batch.push(staged),
                Err(reason) => {
                    let id = if reason == drop_reason::TOPIC_TOO_LONG {
                        self.ids.topic_too_long
                    } else {
                        self.ids.payload_too_large
                    };
                    self.stats.add(id, 1);
                }
            }
        }
        self.acks.extend(ack);
    }

    /// The broker accepted a connection. After the first one, a connection without a session
    /// means the broker discarded what it held for us: counted, and said.
    fn connected(&mut self, session_present: bool) {
        self.stats.add(self.ids.connects, 1);
        if self.connects > 0 && !session_present {
            self.stats.add(self.ids.session_lost, 1);
            warn!("the broker kept no session for us: messages it queued while we were away are lost");
        }
        self.connects += 1;
        self.stats.flush();
    }

    /// Hands the batch to the ring (what does not fit is dropped and counted), then acks every
    /// message of the batch: each is now in the ring or counted. Returns how many acks it handed
    /// to rumqttc.
    fn flush(&mut self, client: &AsyncClient) -> Result<usize, shm_ring::Error> {
        if !self.batch.is_empty() {
            let mut chunk = self.producer.write_chunk(self.batch.len())?;
            let taken = chunk.len();
            for (slot, staged) in chunk.iter_mut().zip(&self.batch) {
                staged.write(slot);
            }
            chunk.commit_all();
            self.stats.add(self.ids.forwarded, taken as u64);
            self.stats.add(self.ids.ring_full, (self.batch.len() - taken) as u64);
            self.batch.clear();
        }
        // An ack is never dropped: one the channel cannot take now waits here, and the broker
        // sends no more than its in-flight window until acks flow again.
        // Counters before acks: a kill in between leaves the messages unacked, so the broker
        // redelivers them and they are counted (as duplicates of what the ring holds).
        self.stats.flush();
        self.unsent.extend(self.acks.drain(..));
        let mut handed = 0;
        while let Some(ack) = self.unsent.front() {
            if client.try_ack(&ack.publish()).is_err() {
                break;
            }
            self.unsent.pop_front();
            handed += 1;
        }
        if self.unsent.len() > mqtt::REQUEST_CAPACITY && self.unsent.len().is_power_of_two() {
            warn!(waiting = self.unsent.len(), "acks are falling behind the reads");
        }
        Ok(handed)
    }
}

/// ingestd's `forwarded` as the stats page has it now (0 if it cannot be read).
fn published_forwarded(page: &SegmentName) -> u64 {
    StatsReader::open(page)
        .ok()
        .and_then(|r| {
            r.snapshot()
                .stage(stage::INGESTD)
                .and_then(|s| s.counter(counter::FORWARDED))
        })
        .unwrap_or(0)
}

/// Records in the raw ring that ingestd's `forwarded` does not count: a predecessor killed
/// between committing a batch to the ring and publishing its counters. In step, the ring has
/// published exactly `forwarded` records (ingestd is its only producer). Anything but "ahead
/// by at most one batch" means the two do not share a history (one of them was recreated), and
/// nothing is corrected. (A stats page recreated next to a ring that has published at most a
/// batch in all cannot be told apart; its counters started over anyway.)
pub fn unrecorded(ring_published: u64, forwarded: u64) -> u64 {
    match ring_published.checked_sub(forwarded) {
        Some(d) if d <= MAX_BATCH as u64 => d,
        _ => 0,
    }
}

/// What an ack needs of a message: its packet id and QoS. Keeping the whole `Publish` until the
/// ack goes out would keep its topic and payload (slices of rumqttc's read buffers) alive, and
/// under a broker that does not honour our Receive Maximum acks can fall a million behind
/// (docs/benchmarks.md, run H).
#[derive(Clone, Copy, Debug)]
struct Ack {
    pkid: u16,
    qos: QoS,
}

fn ack_only(publish: &Publish) -> Ack {
    Ack {
        pkid: publish.pkid,
        qos: publish.qos,
    }
}

impl Ack {
    /// The message shape `AsyncClient::try_ack` takes (no topic, no payload: nothing allocated).
    fn publish(self) -> Publish {
        let mut p = Publish::new("", self.qos, Vec::new(), None);
        p.pkid = self.pkid;
        p
    }
}

/// Why the loop ended.
#[derive(Debug)]
pub enum Exit {
    /// SIGTERM or SIGINT: ingestd stopped consuming and disconnected.
    Shutdown,
}

/// Runs until SIGTERM/SIGINT. Errors are fatal problems with the ring; MQTT errors are retried.
pub async fn run(config: &Config, mut ingest: Ingest) -> Result<Exit, Box<dyn std::error::Error>> {
    let opts = mqtt::options(&config.ingestd)?;
    let filters = mqtt::filters(&config.ingestd);
    let (client, mut eventloop) = AsyncClient::new(opts, mqtt::REQUEST_CAPACITY);
    let mut backoff = Backoff::new(
        Duration::from_millis(config.ingestd.reconnect_min_ms),
        Duration::from_millis(config.ingestd.reconnect_max_ms),
    );
    let budget = Duration::from_micros(config.ingestd.batch_budget_us);
    let mut pacing = Pacing::new(budget, config.ingestd.longest_pause(), Instant::now());
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;

    let liveness = Liveness::default();
    let ticker = tokio::spawn(
        liveness
            .clone()
            .tick(ingest.stats.heartbeat_handle(), Duration::from_millis(500)),
    );
    let mut subscribed = false;

    let mut received_ms = stage_runtime::unix_ms();
    let exit = loop {
        let event = {
            // Not cancelled below except on shutdown (see `shutdown`); unconstrained so that
            // tokio's cooperative budget does not report a readable socket as pending.
            let mut poll = pin!(tokio::task::unconstrained(eventloop.poll()));
            let mut ready = poll_once(poll.as_mut()).await;
            if ready.is_pending() {
                // Drained for now: hand over this pass's batch. If that queued acks, the same
                // poll() writes them now (in one flush), before any pause.
                let acks = ingest.flush(&client)?;
                liveness.turned();
                if acks > 0 {
                    ready = poll_once(poll.as_mut()).await;
                }
            }
            match ready {
                Poll::Ready(event) => event,
                Poll::Pending => {
                    let pause = pacing.drained(Instant::now());
                    if !pause.is_zero() {
                        std::thread::sleep(pause);
                    }
                    liveness.waiting();
                    let event = tokio::select! {
                        event = &mut poll => event,
                        _ = term.recv() => break Exit::Shutdown,
                        _ = int.recv() => break Exit::Shutdown,
                    };
                    liveness.working();
                    received_ms = stage_runtime::unix_ms();
                    event
                }
            }
        };
        match event {
            Ok(Event::Incoming(Packet::Publish(p))) => {
                pacing.took(p.qos != QoS::AtMostOnce);
                ingest.take(p, received_ms);
                if ingest.batch.len() >= MAX_BATCH {
                    ingest.flush(&client)?;
                    liveness.turned();
                    received_ms = stage_runtime::unix_ms();
                }
            }
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                info!(session_present = ack.session_present, "connected; subscribing");
                ingest.connected(ack.session_present);
                backoff.reset();
                // rumqttc never re-subscribes by itself, and a broker restart can lose even
                // a persistent session's shared subscriptions: subscribe on every ConnAck.
                client.try_subscribe_many(filters.clone())?;
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                let refused: Vec<_> = ack
                    .return_codes
                    .iter()
                    .filter(|c| !matches!(c, rumqttc::v5::mqttbytes::v5::SubscribeReasonCode::Success(_)))
                    .collect();
                if refused.is_empty() {
                    if !subscribed {
                        ingest.stats.set_state(StageState::Running);
                        subscribed = true;
                    }
                    info!(filters = filters.len(), "subscribed");
                } else {
                    error!(?refused, "the broker refused subscriptions");
                }
            }
            Ok(Event::Incoming(Packet::Disconnect(d))) => {
                warn!(reason = ?d.reason_code, "broker disconnected us");
            }
            Ok(_) => {}
            Err(e) => {
                let delay = backoff.next_delay();
                warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "MQTT connection failed");
                ingest.stats.add(ingest.ids.connection_errors, 1);
                ingest.flush(&client)?;
                liveness.waiting();
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {},
                    _ = term.recv() => break Exit::Shutdown,
                    _ = int.recv() => break Exit::Shutdown,
                }
            }
        }
    };
    ticker.abort();
    shutdown(&client, &mut eventloop, &mut ingest).await?;
    Ok(exit)
}

/// Polls `future` once with the task's own waker: `Ready` with its output, or `Pending` (it will
/// wake the task when it can progress, and must be awaited later rather than dropped).
async fn poll_once<F: Future>(mut future: Pin<&mut F>) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx))).await
}

/// Stops consuming first: unsubscribes nothing (the session may be persistent), hands what it
/// holds to the ring, lets rumqttc send the outstanding acks and a DISCONNECT, and returns.
/// A message the broker was sending at that moment is not acked, so the broker redelivers it to
/// the next session (persistent sessions) or it is lost with the clean session, as MQTT defines.
async fn shutdown(client: &AsyncClient, eventloop: &mut EventLoop, ingest: &mut Ingest) -> Result<(), shm_ring::Error> {
    ingest.stats.set_state(StageState::Stopping);
    while let Some(event) = eventloop.state.events.pop_front() {
        if let Event::Incoming(Packet::Publish(p)) = event {
            ingest.take(p, stage_runtime::unix_ms());
        }
    }
    ingest.flush(client)?;
    let _ = client.try_disconnect();
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_ring_ahead_by_at_most_one_batch_is_corrected() {
        assert_eq!(unrecorded(10, 10), 0);
        assert_eq!(unrecorded(13, 10), 3);
        assert_eq!(unrecorded(10 + MAX_BATCH as u64, 10), MAX_BATCH as u64);
        // Further ahead, or behind: the ring or the page was recreated; not ours to fix.
        assert_eq!(unrecorded(11 + MAX_BATCH as u64, 10), 0);
        assert_eq!(unrecorded(5, 10), 0);
    }
}
