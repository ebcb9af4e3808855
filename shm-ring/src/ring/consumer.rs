//! The reading end of a ring.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::futex;
use super::protocol::{self, Std};
use super::wait::{wait_until, WaitStrategy};
use super::{checked_depth, RingMap};
use crate::error::{Error, Result};
use crate::layout::CONSUMER_LOCK_BYTE;
use crate::record::Record;
use crate::segment::SegmentName;

/// The only reader of one ring. At most one live `Consumer` exists per ring across all processes.
///
/// Records are read in place and released by a separate commit, so a consumer that dies between
/// reading and committing leaves them in the ring for its successor (at-least-once delivery).
///
/// ```
/// # use shm_ring::ring::{create, PopError, RingOptions};
/// # use shm_ring::{Consumer, Producer, Record, SegmentName};
/// # #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)] #[repr(C)] struct Sample { seq: u64 }
/// # impl Record for Sample { const TYPE_NAME: &'static str = "Sample/1"; }
/// let name = SegmentName::new(&format!("doc-consumer-{}", std::process::id()), "samples")?;
/// create::<Sample>(&name, &RingOptions::new(8))?;
/// let mut producer = Producer::<Sample>::attach(&name)?;
/// let mut consumer = Consumer::<Sample>::attach(&name)?;
/// producer.push_slice(&[Sample { seq: 1 }, Sample { seq: 2 }])?;
/// assert_eq!(consumer.pop().unwrap(), Sample { seq: 1 });
/// assert_eq!(consumer.pop().unwrap(), Sample { seq: 2 });
/// assert!(matches!(consumer.pop(), Err(PopError::Empty)));
/// shm_ring::segment::remove_all(name.prefix())?;
/// # Ok::<(), shm_ring::Error>(())
/// ```
pub struct Consumer<T: Record> {
    ring: RingMap<T>,
    /// Our own copy of the read position: the shared one is only ever stored by us.
    read: u64,
    /// The producer's write position as last loaded; it can be stale (too low), which only hides
    /// records that are already there, and is refreshed when that matters.
    cached_write: u64,
}

/// Why [`Consumer::pop`] returned no record.
#[derive(Debug)]
pub enum PopError {
    /// The ring is empty.
    Empty,
    /// The producer's position is impossible: the segment is corrupt.
    Corrupt(Error),
}

impl<T: Record> Consumer<T> {
    /// Takes the consumer role of the ring `name`, which must hold records of type `T`.
    ///
    /// Fails with [`Error::RoleHeld`] while another live consumer exists. A role left by a dead
    /// process is free. The new consumer resumes at the shared read position: it sees every
    /// record its predecessor had not committed, including any it had read but not committed.
    pub fn attach(name: &SegmentName) -> Result<Self> {
        let ring = RingMap::<T>::open(name, true)?;
        let line = ring.consumer_line();
        if !ring.mapping().try_lock_byte(CONSUMER_LOCK_BYTE)? {
            return Err(Error::RoleHeld {
                segment: name.to_string(),
                role: "consumer",
                pid: line.pid.load(Ordering::Relaxed),
            });
        }
        line.pid.store(std::process::id(), Ordering::Relaxed);
        line.attaches.fetch_add(1, Ordering::Relaxed);
        let read = line.read_pos.load(Ordering::Acquire);
        let write = ring.producer_line().write_pos.load(Ordering::Acquire);
        checked_depth(name, write, read, ring.geo.capacity)?;
        Ok(Consumer {
            ring,
            read,
            cached_write: write,
        })
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.ring.geo.capacity as usize
    }

    /// The ring's name.
    pub fn name(&self) -> &SegmentName {
        self.ring.name()
    }

    /// The position of the next record this consumer will read. Together with the record counts
    /// of [`ReadChunk`]s it identifies every record uniquely, which lets a stage skip records it
    /// already handled before a restart.
    pub fn position(&self) -> u64 {
        self.read
    }

    /// Records ready to read now. Always reloads the producer's position (one atomic load).
    pub fn available(&mut self) -> Result<usize> {
        self.refresh()?;
        Ok(self.cached_write.wrapping_sub(self.read) as usize)
    }

    fn refresh(&mut self) -> Result<()> {
        let write = self.ring.producer_line().write_pos.load(Ordering::Acquire);
        checked_depth(self.ring.name(), write, self.read, self.ring.geo.capacity)?;
        self.cached_write = write;
        Ok(())
    }

    /// Reads and releases one record. For many records, [`read_chunk`] releases a batch with one
    /// store.
    ///
    /// [`read_chunk`]: Consumer::read_chunk
    pub fn pop(&mut self) -> Result<T, PopError> {
        if self.cached_write == self.read {
            self.refresh().map_err(PopError::Corrupt)?;
            if self.cached_write == self.read {
                return Err(PopError::Empty);
            }
        }
        // SAFETY: read < cached_write, which the producer published with Release after writing
        // the slot, and we loaded with Acquire; the producer will not touch the slot until we
        // advance the read position below. T is Pod, so the bytes are a valid T whatever they are.
        let record = unsafe { self.ring.slot(self.read).read() };
        self.release(1);
        Ok(record)
    }

    /// Borrows up to `max` ready records, in order, without releasing them. Release them with
    /// [`ReadChunk::commit`]; dropping the chunk releases nothing, so they are read again.
    ///
    /// ```
    /// # use shm_ring::ring::{create, RingOptions};
    /// # use shm_ring::{Consumer, Producer, Record, SegmentName};
    /// # #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)] #[repr(C)] struct Sample { seq: u64 }
    /// # impl Record for Sample { const TYPE_NAME: &'static str = "Sample/1"; }
    /// # let name = SegmentName::new(&format!("doc-read-chunk-{}", std::process::id()), "samples")?;
    /// # create::<Sample>(&name, &RingOptions::new(8))?;
    /// # let mut producer = Producer::<Sample>::attach(&name)?;
    /// # let mut consumer = Consumer::<Sample>::attach(&name)?;
    /// producer.push_slice(&[Sample { seq: 7 }, Sample { seq: 8 }, Sample { seq: 9 }])?;
    /// let chunk = consumer.read_chunk(usize::MAX)?;
    /// let seqs: Vec<u64> = chunk.iter().map(|s| s.seq).collect();
    /// assert_eq!(seqs, [7, 8, 9]);
    /// chunk.commit(2); // the 9 stays for the next read
    /// assert_eq!(consumer.read_chunk(usize::MAX)?.len(), 1);
    /// # shm_ring::segment::remove_all(name.prefix())?;
    /// # Ok::<(), shm_ring::Error>(())
    /// ```
    pub fn read_chunk(&mut self, max: usize) -> Result<ReadChunk<'_, T>> {
        let mut ready = self.cached_write.wrapping_sub(self.read) as usize;
        if ready < max {
            self.refresh()?;
            ready = self.cached_write.wrapping_sub(self.read) as usize;
        }
        let n = ready.min(max);
        let cap = self.capacity();
        let start = (self.read & (self.ring.geo.capacity - 1)) as usize;
        let first_len = n.min(cap - start);
        let first = self.ring.slot(self.read);
        let second = self.ring.slot(self.read.wrapping_add(first_len as u64));
        // SAFETY: the n slots from `read` were published by the producer (Release/Acquire on
        // write_pos) and stay untouched until we release them; both slices are in bounds because
        // they are split at the end of the slot array. T is Pod, so any bytes are valid.
        let (first, second) = unsafe {
            (
                std::slice::from_raw_parts(first as *const T, first_len),
                std::slice::from_raw_parts(second as *const T, n - first_len),
            )
        };
        Ok(ReadChunk {
            consumer_read: &mut self.read,
            ring: &self.ring,
            first,
            second,
        })
    }

    /// Waits until at least one record is ready (or `timeout` passes), following `strategy`.
    /// Returns the number ready, which is 0 only on timeout.
    pub fn wait_for_records(&mut self, strategy: &WaitStrategy, timeout: Duration) -> Result<usize> {
        let read = self.read;
        let cap = self.ring.geo.capacity;
        let ring = &self.ring;
        let mut write = self.cached_write;
        wait_until(strategy, timeout, &ring.wait_line().consumer_sleeping, || {
            write = ring.producer_line().write_pos.load(Ordering::Acquire);
            Ok(checked_depth(ring.name(), write, read, cap)? > 0)
        })?;
        self.cached_write = write;
        Ok(write.wrapping_sub(read) as usize)
    }

    /// Replaces the ready, not yet committed record at `position` with `record` and returns the
    /// record that was there. Every position stays where it was, so the records around it, and
    /// any bookkeeping a stage keeps by position, are untouched. Only the consumer owns the slots
    /// between the read and write positions, so this is safe while the producer runs. The
    /// supervisor uses it to neutralise a poison record a stage keeps dying on: it puts an empty
    /// record in its place, which the stage then counts as bad input.
    ///
    /// ```
    /// # use shm_ring::ring::{create, RingOptions};
    /// # use shm_ring::segment::PrefixGuard;
    /// # use shm_ring::{Consumer, Producer, Record, SegmentName};
    /// # #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)] #[repr(C)] struct Sample { seq: u64 }
    /// # impl Record for Sample { const TYPE_NAME: &'static str = "Sample/1"; }
    /// # let name = SegmentName::new(&format!("doc-replace-at-{}", std::process::id()), "samples")?;
    /// # let _guard = PrefixGuard::new(name.prefix());
    /// # create::<Sample>(&name, &RingOptions::new(8))?;
    /// # let mut producer = Producer::<Sample>::attach(&name)?;
    /// let mut consumer = Consumer::<Sample>::attach(&name)?;
    /// producer.push_slice(&[Sample { seq: 1 }, Sample { seq: 2 }, Sample { seq: 3 }])?;
    /// let second = consumer.position() + 1;
    /// assert_eq!(consumer.replace_at(second, Sample { seq: 0 })?, Sample { seq: 2 });
    /// let now: Vec<u64> = consumer.read_chunk(8)?.iter().map(|s| s.seq).collect();
    /// assert_eq!(now, [1, 0, 3]);
    /// # Ok::<(), shm_ring::Error>(())
    /// ```
    pub fn replace_at(&mut self, position: u64, record: T) -> Result<T> {
        self.refresh()?;
        let offset = position.wrapping_sub(self.read);
        let ready = self.cached_write.wrapping_sub(self.read);
        if offset >= ready {
            return Err(Error::InvalidParameter {
                reason: format!(
                    "position {position} is not a ready record (read {}, ready {ready})",
                    self.read
                ),
            });
        }
        let slot = self.ring.slot(position);
        // SAFETY: the slot holds a published record that only the consumer may change until it
        // advances the read position past it (the producer may still copy it, see
        // `Producer::recent`); T is Pod, so the copies are plain byte copies. Volatile, because
        // another process may read the slot meanwhile.
        Ok(unsafe {
            let old = std::ptr::read_volatile(slot);
            std::ptr::write_volatile(slot, record);
            old
        })
    }

    fn release(&mut self, n: u64) {
        self.read = self.read.wrapping_add(n);
        release_to(&self.ring, self.read);
    }
}

fn release_to<T>(ring: &RingMap<T>, read: u64) {
    let wait = ring.wait_line();
    if protocol::advance::<Std>(&ring.consumer_line().read_pos, read, &wait.producer_sleeping) {
        futex::wake_all(&wait.producer_sleeping);
    }
}

/// Ready records borrowed from a [`Consumer`], as up to two slices (the second is non-empty when
/// the run wraps around the end of the ring).
pub struct ReadChunk<'a, T: Record> {
    consumer_read: &'a mut u64,
    ring: &'a RingMap<T>,
    first: &'a [T],
    second: &'a [T],
}

impl<T: Record> ReadChunk<'_, T> {
    /// Number of records in the chunk.
    pub fn len(&self) -> usize {
        self.first.len() + self.second.len()
    }

    /// True when no record was ready.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The records, in order. The borrow ends before the chunk can be committed, so a slot can
    /// never be read after the producer may reuse it.
    pub fn as_slices(&self) -> (&[T], &[T]) {
        (self.first, self.second)
    }

    /// The records, in order. As it yields each one, it records that record's position in the
    /// ring (one store to the consumer's own cache line), so that if the process dies while
    /// handling it, a supervisor can tell which record it died on (see
    /// [`RingObserver::processing`](crate::ring::RingObserver::processing)).
    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        let marker = &self.ring.consumer_line().processing;
        let start = *self.consumer_read;
        self.first
            .iter()
            .chain(self.second.iter())
            .enumerate()
            .map(move |(i, r)| {
                marker.store(start.wrapping_add(i as u64), Ordering::Relaxed);
                r
            })
    }

    /// Releases the first `n` records (clamped to the chunk's length) with one store, letting the
    /// producer reuse their slots.
    pub fn commit(self, n: usize) {
        let n = n.min(self.len()) as u64;
        if n > 0 {
            *self.consumer_read = self.consumer_read.wrapping_add(n);
            release_to(self.ring, *self.consumer_read);
        }
    }

    /// Releases every record of the chunk.
    pub fn commit_all(self) {
        let n = self.len();
        self.commit(n)
    }
}
