//! The raw ring and the stage's counters, shared by every source (MQTT, HTTP): the one producer
//! of the raw ring, behind a lock that each source takes for the length of one commit.
//!
//! A commit and the counters that count it are published under the same lock, one after the
//! other, so `forwarded` equals what the ring has published except for at most the one commit a
//! killed process did not live to count ([`unrecorded`]). That bound holds because every source
//! commits at most [`MAX_BATCH`] records before it publishes its counters.

use std::sync::{Arc, Mutex, MutexGuard};

use records::names::counter;
use records::RawRecord;
use shm_ring::stats::CounterId;
use shm_ring::Producer;
use stage_runtime::StageCounters;
use tracing::warn;

/// Most records handed to the ring in one commit (and counted with one counters flush).
pub const MAX_BATCH: usize = 1024;

/// The raw ring's producer and the stage's stats slot.
pub struct RawRing {
    /// The raw ring (ingestd is its only producer).
    pub producer: Producer<RawRecord>,
    /// The stage's counters, state and heartbeat.
    pub stats: StageCounters,
    /// `received`.
    pub received: CounterId,
    /// `forwarded`.
    pub forwarded: CounterId,
}

/// [`RawRing`] shared between the sources; cheap to clone.
#[derive(Clone)]
pub struct SharedRing(Arc<Mutex<RawRing>>);

impl SharedRing {
    /// Wraps the raw ring's producer and the stage's stats slot. First counts a batch a
    /// predecessor committed but did not count (see [`unrecorded`]).
    pub fn new(producer: Producer<RawRecord>, mut stats: StageCounters) -> Result<Self, shm_ring::Error> {
        let received = stats.id(counter::RECEIVED)?;
        let forwarded = stats.id(counter::FORWARDED)?;
        let unrecorded = unrecorded(producer.published(), stats.published(forwarded));
        if unrecorded > 0 {
            warn!(
                records = unrecorded,
                "the raw ring holds a batch its producer did not live to count; counted now"
            );
            stats.add(received, unrecorded);
            stats.add(forwarded, unrecorded);
        }
        stats.flush();
        Ok(SharedRing(Arc::new(Mutex::new(RawRing {
            producer,
            stats,
            received,
            forwarded,
        }))))
    }

    /// Takes the ring for one commit (or a few counter updates). A source that panicked while
    /// holding it leaves the process on its way down; the others may still finish their commit.
    pub fn lock(&self) -> MutexGuard<'_, RawRing> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
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
