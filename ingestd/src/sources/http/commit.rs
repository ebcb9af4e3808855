//! The HTTP requests' readings on their way to the raw ring. Handlers hand their batch to one
//! committer task and wait for its answer; the committer takes every batch waiting at that
//! moment into one ring commit (one wake-up of decoded, one counters flush), up to
//! [`MAX_BATCH`] records. A request is taken whole or refused whole: one that the ring has no
//! room for is answered [`Outcome::RingFull`] (503), and a request never spans two commits, so
//! it is in the ring entirely or not at all, also when ingestd is killed.
//!
//! The counters of a commit (`received`, `forwarded`, `http.requests`, `http.accepted`,
//! `http.rejected.ring_full`) are published under the same lock right after it, before any
//! handler learns its outcome: a 2xx is never sent for a record that is not in the ring.

use std::ops::Range;

use bytes::Bytes;
use records::names::http;
use records::{ContentType, RawRecord};
use shm_ring::stats::CounterId;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::sources::raw_ring::{SharedRing, MAX_BATCH};

/// The topic every HTTP reading's raw record carries (decoded picks the format from the
/// record's content type, so it only shows where the record came from).
pub const HTTP_TOPIC: &[u8] = b"http/v1/readings";

/// Batches waiting for the committer; handlers past it wait for room (bounded memory).
const QUEUE: usize = 256;

/// What became of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every reading is in the raw ring; how many.
    Committed(usize),
    /// The raw ring has no room for the whole batch; nothing of it was written.
    RingFull,
    /// The committer is gone (the stage is stopping); nothing was written.
    Stopping,
}

/// One request's readings: ranges into its body.
struct Batch {
    body: Bytes,
    items: Vec<Range<usize>>,
    content_type: ContentType,
    received_ms: u64,
    reply: oneshot::Sender<Outcome>,
}

/// The HTTP counters, registered in the stage's slot.
#[derive(Clone, Copy, Debug)]
pub struct HttpCounters {
    /// `http.requests`.
    pub requests: CounterId,
    /// `http.accepted`.
    pub accepted: CounterId,
    /// `http.rejected.<reason>`, in the order of [`http::REJECTIONS`].
    pub rejected: [CounterId; http::REJECTIONS.len()],
    /// `http.connections.<event>`, in the order of [`CONNECTION_EVENTS`].
    pub connections: [CounterId; CONNECTION_EVENTS.len()],
}

/// The connection counters (outside the requests' balance).
const CONNECTION_EVENTS: [&str; 3] = [
    http::CONNECTIONS_EVICTED,
    http::CONNECTIONS_REFUSED,
    http::CONNECTIONS_TIMED_OUT,
];

impl HttpCounters {
    /// Registers (or finds, after a restart) the HTTP counters.
    pub fn register(ring: &SharedRing) -> Result<HttpCounters, shm_ring::Error> {
        let mut r = ring.lock();
        let mut rejected = [r.received; http::REJECTIONS.len()];
        for (id, name) in rejected.iter_mut().zip(http::REJECTIONS) {
            *id = r.stats.id(name)?;
        }
        let mut connections = [r.received; CONNECTION_EVENTS.len()];
        for (id, name) in connections.iter_mut().zip(CONNECTION_EVENTS) {
            *id = r.stats.id(name)?;
        }
        let counters = HttpCounters {
            requests: r.stats.id(http::REQUESTS)?,
            accepted: r.stats.id(http::ACCEPTED)?,
            rejected,
            connections,
        };
        r.stats.flush();
        Ok(counters)
    }

    /// The counter of refusal `reason` (one of [`http::REJECTIONS`]).
    pub fn rejected(&self, reason: &str) -> CounterId {
        let i = http::REJECTIONS
            .iter()
            .position(|r| *r == reason)
            .expect("a known reason");
        self.rejected[i]
    }

    /// Counts one connection event (one of `http::CONNECTIONS_*`), and publishes it.
    pub fn count_connection(&self, ring: &SharedRing, event: &str) {
        let i = CONNECTION_EVENTS
            .iter()
            .position(|e| *e == event)
            .expect("a known connection event");
        let mut r = ring.lock();
        r.stats.add(self.connections[i], 1);
        r.stats.flush();
    }

    /// Counts one refused request, and publishes it.
    pub fn count_rejection(&self, ring: &SharedRing, reason: &str) {
        let mut r = ring.lock();
        r.stats.add(self.requests, 1);
        r.stats.add(self.rejected(reason), 1);
        r.stats.flush();
    }
}

/// Hands batches to the committer task; cheap to clone, one per connection.
#[derive(Clone)]
pub struct Committer {
    tx: mpsc::Sender<Batch>,
}

impl Committer {
    /// Starts the committer task on the current runtime. The task ends with an error if the
    /// ring fails (which ends the source); until then it runs as long as a `Committer` lives.
    pub fn start(ring: SharedRing, counters: HttpCounters) -> (Committer, JoinHandle<Result<(), shm_ring::Error>>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(run(ring, counters, rx));
        (Committer { tx }, task)
    }

    /// Hands over one request's readings (`items`, ranges into `body`; at most [`MAX_BATCH`],
    /// each fitting a raw record) and waits until they are committed or refused. Sets `handed`
    /// once the committer has the batch (from then on the committer counts the request).
    pub async fn commit(
        &self,
        body: Bytes,
        items: Vec<Range<usize>>,
        content_type: ContentType,
        received_ms: u64,
        handed: &AtomicBool,
    ) -> Outcome {
        debug_assert!(items.len() <= MAX_BATCH);
        let (reply, answer) = oneshot::channel();
        let batch = Batch {
            body,
            items,
            content_type,
            received_ms,
            reply,
        };
        if self.tx.send(batch).await.is_err() {
            return Outcome::Stopping;
        }
        handed.store(true, Ordering::Release);
        answer.await.unwrap_or(Outcome::Stopping)
    }
}

async fn run(ring: SharedRing, counters: HttpCounters, mut rx: mpsc::Receiver<Batch>) -> Result<(), shm_ring::Error> {
    let mut carry: Option<Batch> = None;
    loop {
        let first = match carry.take() {
            Some(b) => b,
            None => match rx.recv().await {
                Some(b) => b,
                None => return Ok(()),
            },
        };
        let mut total = first.items.len();
        let mut round = vec![first];
        while let Ok(b) = rx.try_recv() {
            if total + b.items.len() > MAX_BATCH {
                carry = Some(b);
                break;
            }
            total += b.items.len();
            round.push(b);
        }
        let outcomes = commit_round(&ring, &counters, &round);
        // A broken ring (unlinked or corrupted): nothing was written; every waiting request is
        // answered 503 and the source ends with the error.
        let each = |i: usize| outcomes.as_ref().map_or(Outcome::Stopping, |o| o[i]);
        for (i, batch) in round.into_iter().enumerate() {
            let _ = batch.reply.send(each(i));
        }
        outcomes?;
    }
}

/// Writes every batch of `round` that fits (in arrival order) as one commit, counts, publishes
/// the counters, and returns each batch's outcome.
fn commit_round(ring: &SharedRing, counters: &HttpCounters, round: &[Batch]) -> Result<Vec<Outcome>, shm_ring::Error> {
    let total: usize = round.iter().map(|b| b.items.len()).sum();
    let mut r = ring.lock();
    let r = &mut *r;
    let mut chunk = r.producer.write_chunk(total)?;
    let mut room = chunk.len();
    let outcomes: Vec<Outcome> = round
        .iter()
        .map(|b| {
            if b.items.len() <= room {
                room -= b.items.len();
                Outcome::Committed(b.items.len())
            } else {
                Outcome::RingFull
            }
        })
        .collect();
    let taken = round
        .iter()
        .zip(&outcomes)
        .filter(|(_, o)| matches!(o, Outcome::Committed(_)))
        .flat_map(|(b, _)| b.items.iter().map(move |range| (b, range)));
    let mut written = 0;
    for (slot, (b, range)) in chunk.iter_mut().zip(taken) {
        write(slot, b, range);
        written += 1;
    }
    chunk.commit(written);
    let accepted = outcomes.iter().filter(|o| matches!(o, Outcome::Committed(_))).count() as u64;
    let refused = round.len() as u64 - accepted;
    r.stats.add(r.received, written as u64);
    r.stats.add(r.forwarded, written as u64);
    r.stats.add(counters.requests, round.len() as u64);
    r.stats.add(counters.accepted, accepted);
    r.stats.add(counters.rejected(http::RING_FULL), refused);
    r.stats.flush();
    Ok(outcomes)
}

fn write(slot: &mut RawRecord, batch: &Batch, range: &Range<usize>) {
    slot.fill(
        HTTP_TOPIC,
        &batch.body[range.clone()],
        batch.content_type,
        batch.received_ms,
    )
    .expect("items are checked against max_payload before they are handed over");
}
