//! The stage's side of the stats page: the one writer of a stage slot's counters (published in
//! batches inside a seqlock), heartbeat, state and ring gauges.

use std::sync::atomic::{fence, Ordering};

use crate::clock::{monotonic_ms, unix_ms};
use crate::error::{Error, Result};
use crate::segment::SegmentName;
use crate::stats::layout::{name_bytes, read_name, Page, StageSlot, MAX_COUNTERS, STAGE_LOCK_BASE};
use crate::stats::StageState;

/// Identifies one of a stage's counters; returned by [`StageWriter::counter`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CounterId(usize);

/// Counter increments gathered locally (no shared memory traffic) and published together by
/// [`StageWriter::flush`]. Keep one per stage loop and flush it once per batch.
#[derive(Clone, Debug)]
pub struct CounterBatch {
    deltas: [u64; MAX_COUNTERS],
    dirty: bool,
}

impl Default for CounterBatch {
    fn default() -> Self {
        CounterBatch {
            deltas: [0; MAX_COUNTERS],
            dirty: false,
        }
    }
}

impl CounterBatch {
    /// Adds `n` to a counter in this batch.
    #[inline]
    pub fn add(&mut self, id: CounterId, n: u64) {
        self.deltas[id.0] = self.deltas[id.0].wrapping_add(n);
        self.dirty = true;
    }

    /// The increment gathered so far for one counter.
    pub fn get(&self, id: CounterId) -> u64 {
        self.deltas[id.0]
    }
}

/// The exclusive writer of one stage's counters and heartbeat. At most one per stage exists
/// across all processes (an OFD lock, released by the kernel if the process dies).
pub struct StageWriter {
    page: std::sync::Arc<Page>,
    index: usize,
}

/// A handle that beats a stage's heartbeat, for a stage whose main loop can block in a
/// place where it cannot beat itself (ingestd waiting on its socket). Give it to a ticker that
/// beats only while the loop is known to be healthy, or hang detection loses its meaning.
#[derive(Clone)]
pub struct Heartbeat {
    page: std::sync::Arc<Page>,
    index: usize,
}

impl Heartbeat {
    /// Records a sign of life (CLOCK_MONOTONIC).
    pub fn beat(&self) {
        self.page
            .slot(self.index)
            .heartbeat_ms
            .store(monotonic_ms(), Ordering::Relaxed);
    }

    /// Sets the stage's state, as [`StageWriter::set_state`] does: for the frame a stage runs in,
    /// which reports it ready and stopping while the stage's own code holds the writer.
    pub fn set_state(&self, state: StageState) {
        self.page.slot(self.index).state.store(state as u32, Ordering::Release);
    }
}

impl StageWriter {
    /// Takes the writer role of `stage`'s slot. A seqlock left odd by a killed predecessor is
    /// closed here, so snapshots become consistent again.
    pub fn attach(name: &SegmentName, stage: &str) -> Result<Self> {
        let page = Page::open(name, true)?;
        let index = page.find_stage(stage).ok_or_else(|| Error::InvalidParameter {
            reason: format!("stats page {name} has no slot for stage {stage:?}"),
        })?;
        let slot = page.slot(index);
        if !page.map.try_lock_byte(STAGE_LOCK_BASE + index as u64)? {
            return Err(Error::RoleHeld {
                segment: name.to_string(),
                role: "stage writer",
                pid: slot.pid.load(Ordering::Relaxed),
            });
        }
        let seq = slot.seq.load(Ordering::Relaxed);
        if !seq.is_multiple_of(2) {
            slot.seq.store(seq.wrapping_add(1), Ordering::Release);
        }
        slot.pid.store(std::process::id(), Ordering::Relaxed);
        slot.started_unix_ms.store(unix_ms(), Ordering::Relaxed);
        let writer = StageWriter {
            page: std::sync::Arc::new(page),
            index,
        };
        writer.heartbeat();
        Ok(writer)
    }

    fn slot(&self) -> &StageSlot {
        self.page.slot(self.index)
    }

    /// Finds the counter `counter` of this stage, registering it on first use. Ids stay the same
    /// across restarts, so counts carry on.
    pub fn counter(&mut self, counter: &str) -> Result<CounterId> {
        let bytes = name_bytes(counter, "counter")?;
        let count = self.slot().counter_count.load(Ordering::Acquire) as usize;
        let count = count.min(MAX_COUNTERS);
        if let Some(i) = (0..count).find(|&i| read_name(&self.slot().counter_names[i]) == bytes) {
            return Ok(CounterId(i));
        }
        if count == MAX_COUNTERS {
            return Err(Error::InvalidParameter {
                reason: format!("stage has more than {MAX_COUNTERS} counters"),
            });
        }
        let slot = self.page.slot_ptr(self.index);
        // SAFETY: we hold this slot's writer lock, so no other process writes its names; names at
        // index ≥ counter_count are not read by anyone (readers stop at counter_count, loaded with
        // Acquire), and this one becomes visible only with the Release store below. The page is
        // mapped writable (attach opened it so).
        unsafe {
            std::ptr::write_volatile(std::ptr::addr_of_mut!((*slot).counter_names[count]), bytes);
        }
        self.slot().counter_count.store(count as u32 + 1, Ordering::Release);
        Ok(CounterId(count))
    }

    /// The published value of one of this stage's counters: what its predecessors left plus
    /// what this writer has flushed. A restarted stage compares it with its rings to count work
    /// a killed predecessor did not live to count.
    pub fn value(&self, id: CounterId) -> u64 {
        self.slot().counters[id.0].load(Ordering::Relaxed)
    }

    /// Publishes a batch of counter increments as one consistent step, and clears the batch.
    /// Also refreshes the heartbeat. Does nothing to the counters if the batch is empty.
    pub fn flush(&self, batch: &mut CounterBatch) {
        self.heartbeat();
        if !batch.dirty {
            return;
        }
        let slot = self.slot();
        let seq = slot.seq.load(Ordering::Relaxed);
        slot.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        let used = (slot.counter_count.load(Ordering::Relaxed) as usize).min(MAX_COUNTERS);
        for (c, d) in slot.counters[..used].iter().zip(batch.deltas.iter_mut()) {
            if *d != 0 {
                // Single writer: a load and a store, no read-modify-write needed.
                c.store(c.load(Ordering::Relaxed).wrapping_add(*d), Ordering::Relaxed);
                *d = 0;
            }
        }
        slot.seq.store(seq.wrapping_add(2), Ordering::Release);
        batch.dirty = false;
    }

    /// A handle that beats this stage's heartbeat from elsewhere (see [`Heartbeat`]).
    pub fn heartbeat_handle(&self) -> Heartbeat {
        Heartbeat {
            page: self.page.clone(),
            index: self.index,
        }
    }

    /// Records a sign of life (CLOCK_MONOTONIC). The supervisor treats a stage whose heartbeat is
    /// older than its hang timeout as hung.
    pub fn heartbeat(&self) {
        self.slot().heartbeat_ms.store(monotonic_ms(), Ordering::Relaxed);
    }

    /// Sets this stage's state (a stage reports `Running` once it is ready).
    pub fn set_state(&self, state: StageState) {
        self.slot().state.store(state as u32, Ordering::Release);
    }

    /// Records the depth of the ring `ring` (call from the ring's consumer). Unknown rings are
    /// ignored.
    pub fn set_ring_depth(&self, ring: &str, depth: u64) {
        if let Some(i) = self.page.find_ring(ring) {
            self.page.gauge(i).depth.store(depth, Ordering::Relaxed);
        }
    }
}
