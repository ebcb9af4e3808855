//! Where emitted aggregates go: the aggregates ring (to emitd), or a vector in tests.
//!
//! A sink never waits. What does not fit now is refused, and the caller counts it
//! (`dropped.aggregates_ring_full`) and moves on, so a slow emitd or NATS can never hold up the
//! readings ring. A dropped aggregate is superseded by the same key's next one, which covers the
//! same window shifted by one pane.

use records::Aggregate;
use shm_ring::Producer;

/// A destination for aggregates.
pub trait Sink {
    /// Hands on as many of `aggs` as fit now, in order, and returns how many were taken.
    fn offer(&mut self, aggs: &[Aggregate]) -> usize;

    /// The last aggregate ever handed on (by this process or a predecessor), if known: after a
    /// kill in the middle of an emission it says how far the emission got.
    fn last_handed_on(&self) -> Option<Aggregate>;
}

impl Sink for Producer<Aggregate> {
    fn offer(&mut self, aggs: &[Aggregate]) -> usize {
        match self.push_slice(aggs) {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "cannot write the aggregates ring");
                0
            }
        }
    }

    fn last_handed_on(&self) -> Option<Aggregate> {
        self.last_published()
    }
}

/// Keeps everything (tests).
impl Sink for Vec<Aggregate> {
    fn offer(&mut self, aggs: &[Aggregate]) -> usize {
        self.extend_from_slice(aggs);
        aggs.len()
    }

    fn last_handed_on(&self) -> Option<Aggregate> {
        self.last().copied()
    }
}

/// Takes at most `room` more aggregates (tests of a full ring).
#[derive(Default)]
pub struct Bounded {
    /// What was taken.
    pub taken: Vec<Aggregate>,
    /// How many more it takes.
    pub room: usize,
}

impl Sink for Bounded {
    fn offer(&mut self, aggs: &[Aggregate]) -> usize {
        let n = aggs.len().min(self.room);
        self.taken.extend_from_slice(&aggs[..n]);
        self.room -= n;
        n
    }

    fn last_handed_on(&self) -> Option<Aggregate> {
        self.taken.last().copied()
    }
}
