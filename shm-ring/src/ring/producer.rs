//! The writing end of a ring.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::futex;
use super::protocol::{self, Std};
use super::wait::{wait_until, WaitStrategy};
use super::{checked_depth, RingMap};
use crate::error::{Error, Result};
use crate::layout::PRODUCER_LOCK_BYTE;
use crate::record::Record;
use crate::segment::SegmentName;

/// The only writer of one ring. At most one live `Producer` exists per ring across all processes.
///
/// ```
/// # use shm_ring::ring::{create, RingOptions};
/// # use shm_ring::{Error, Producer, Record, SegmentName};
/// # #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)] #[repr(C)] struct Sample { seq: u64 }
/// # impl Record for Sample { const TYPE_NAME: &'static str = "Sample/1"; }
/// let name = SegmentName::new(&format!("doc-producer-{}", std::process::id()), "samples")?;
/// create::<Sample>(&name, &RingOptions::new(4))?;
/// let mut producer = Producer::<Sample>::attach(&name)?;
/// // A second producer, in this process or any other, is refused while this one lives.
/// assert!(matches!(Producer::<Sample>::attach(&name), Err(Error::RoleHeld { .. })));
/// assert!(producer.push(Sample { seq: 1 }).is_ok());
/// assert_eq!(producer.free_slots()?, 3);
/// shm_ring::segment::remove_all(name.prefix())?;
/// # Ok::<(), shm_ring::Error>(())
/// ```
pub struct Producer<T: Record> {
    ring: RingMap<T>,
    /// Our own copy of the write position: the shared one is only ever stored by us.
    write: u64,
    /// The consumer's read position as last loaded; it can be stale (too low), which only makes
    /// us see less free space than there is, and is refreshed when that matters.
    cached_read: u64,
}

/// Why [`Producer::push`] did not take a record.
#[derive(Debug)]
pub enum PushError<T> {
    /// The ring is full; here is the record back.
    Full(T),
    /// The consumer's position is impossible: the segment is corrupt.
    Corrupt(T, Error),
}

impl<T: Record> Producer<T> {
    /// Takes the producer role of the ring `name`, which must hold records of type `T`.
    ///
    /// Fails with [`Error::RoleHeld`] while another live process (or another `Producer` in this
    /// one) holds the role. A role left by a process that died, even by SIGKILL, is free: the
    /// kernel released its lock. The new producer resumes at the shared write position, so
    /// nothing already in the ring is lost or overwritten.
    pub fn attach(name: &SegmentName) -> Result<Self> {
        let ring = RingMap::<T>::open(name, true)?;
        let line = ring.producer_line();
        if !ring.mapping().try_lock_byte(PRODUCER_LOCK_BYTE)? {
            return Err(Error::RoleHeld {
                segment: name.to_string(),
                role: "producer",
                pid: line.pid.load(Ordering::Relaxed),
            });
        }
        line.pid.store(std::process::id(), Ordering::Relaxed);
        line.attaches.fetch_add(1, Ordering::Relaxed);
        let write = line.write_pos.load(Ordering::Acquire);
        let read = ring.consumer_line().read_pos.load(Ordering::Acquire);
        checked_depth(name, write, read, ring.geo.capacity)?;
        Ok(Producer {
            ring,
            write,
            cached_read: read,
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

    /// The last record published into this ring by any producer, or `None` if the ring never held
    /// one. A restarted producer uses it to learn how far its predecessor got, so it neither
    /// skips nor repeats work (for example, a stage stores its input position in each record).
    ///
    /// ```
    /// # use shm_ring::ring::{create, RingOptions};
    /// # use shm_ring::{Producer, Record, SegmentName};
    /// # #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)] #[repr(C)] struct Sample { seq: u64 }
    /// # impl Record for Sample { const TYPE_NAME: &'static str = "Sample/1"; }
    /// # let name = SegmentName::new(&format!("doc-last-{}", std::process::id()), "samples")?;
    /// # create::<Sample>(&name, &RingOptions::new(8))?;
    /// let mut producer = Producer::<Sample>::attach(&name)?;
    /// assert_eq!(producer.last_published(), None);
    /// producer.push(Sample { seq: 41 }).unwrap();
    /// drop(producer); // or killed
    /// let producer = Producer::<Sample>::attach(&name)?;
    /// assert_eq!(producer.last_published(), Some(Sample { seq: 41 }));
    /// # shm_ring::segment::remove_all(name.prefix())?;
    /// # Ok::<(), shm_ring::Error>(())
    /// ```
    pub fn last_published(&self) -> Option<T> {
        if self.write == self.ring.start_position {
            return None;
        }
        // SAFETY: the slot before `write` holds a complete record that we (or a predecessor)
        // published; the consumer only reads it and no one but us will write it, and only after
        // this read has finished. T is Pod, so the bytes are a valid T.
        Some(unsafe { self.ring.slot(self.write.wrapping_sub(1)).read() })
    }

    /// How many records have been published into this ring since it was created, by this
    /// producer and its predecessors. A producer that keeps its own count elsewhere (a stats
    /// page) can compare the two after a restart: a predecessor killed between publishing a
    /// batch and recording it leaves this ahead.
    ///
    /// ```
    /// # use shm_ring::ring::{create, RingOptions};
    /// # use shm_ring::segment::PrefixGuard;
    /// # use shm_ring::{Producer, Record, SegmentName};
    /// # #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)] #[repr(C)] struct Sample { seq: u64 }
    /// # impl Record for Sample { const TYPE_NAME: &'static str = "Sample/1"; }
    /// # let name = SegmentName::new(&format!("doc-published-{}", std::process::id()), "samples")?;
    /// # let _guard = PrefixGuard::new(name.prefix());
    /// # create::<Sample>(&name, &RingOptions::new(4).start_position(u64::MAX - 1))?;
    /// let mut producer = Producer::<Sample>::attach(&name)?;
    /// assert_eq!(producer.published(), 0);
    /// producer.push_slice(&[Sample { seq: 1 }, Sample { seq: 2 }, Sample { seq: 3 }])?;
    /// drop(producer); // or killed
    /// assert_eq!(Producer::<Sample>::attach(&name)?.published(), 3);
    /// # Ok::<(), shm_ring::Error>(())
    /// ```
    pub fn published(&self) -> u64 {
        self.write.wrapping_sub(self.ring.start_position)
    }

    /// Copies of the last `n` records published into this ring, newest first (fewer if the ring
    /// has not held that many). They may have been consumed already; they are still in their
    /// slots until the producer writes over them. ingestd uses this to recognise a message the
    /// broker redelivers after a restart (MQTT's DUP flag) that is already in the ring.
    ///
    /// A copy of a record that is still queued can be torn if a supervisor replaces that very
    /// record at the same moment (`Consumer::replace_at`): use the copies as hints only.
    ///
    /// ```
    /// # use shm_ring::ring::{create, RingOptions};
    /// # use shm_ring::segment::PrefixGuard;
    /// # use shm_ring::{Producer, Record, SegmentName};
    /// # #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)] #[repr(C)] struct Sample { seq: u64 }
    /// # impl Record for Sample { const TYPE_NAME: &'static str = "Sample/1"; }
    /// # let name = SegmentName::new(&format!("doc-recent-{}", std::process::id()), "samples")?;
    /// # let _guard = PrefixGuard::new(name.prefix());
    /// # create::<Sample>(&name, &RingOptions::new(4))?;
    /// let mut producer = Producer::<Sample>::attach(&name)?;
    /// producer.push_slice(&[Sample { seq: 1 }, Sample { seq: 2 }])?;
    /// let seqs: Vec<u64> = producer.recent(10).map(|s| s.seq).collect();
    /// assert_eq!(seqs, [2, 1]);
    /// # Ok::<(), shm_ring::Error>(())
    /// ```
    pub fn recent(&self, n: usize) -> impl Iterator<Item = T> + '_ {
        let held = self
            .write
            .wrapping_sub(self.ring.start_position)
            .min(self.ring.geo.capacity);
        let n = (n as u64).min(held);
        (1..=n).map(move |back| {
            // SAFETY: the slot `back` places before `write` holds a record published by this or
            // an earlier producer, in bounds and aligned, and this producer does not write it
            // again until it wraps around to it. The consumer only reads it, with one exception:
            // `Consumer::replace_at` (the supervisor neutralising a poison record while the
            // consumer is dead) may overwrite a slot that is still queued, and then this copy
            // can mix old and new bytes. T is Pod, so the mix is still a valid T; it is wrong
            // data, and callers must treat a copy as a hint (ingestd only compares it, to drop
            // a redelivered duplicate). The copy is volatile so that it is one read of memory
            // another process may change, not something the compiler may split or repeat.
            unsafe { std::ptr::read_volatile(self.ring.slot(self.write.wrapping_sub(back))) }
        })
    }

    /// Slots free for writing now. Always reloads the consumer's position (one atomic load).
    pub fn free_slots(&mut self) -> Result<usize> {
        self.refresh()?;
        Ok(self.cached_free())
    }

    /// Free slots according to the cached consumer position: a lower bound.
    fn cached_free(&self) -> usize {
        (self.ring.geo.capacity - self.write.wrapping_sub(self.cached_read)) as usize
    }

    fn refresh(&mut self) -> Result<()> {
        let read = self.ring.consumer_line().read_pos.load(Ordering::Acquire);
        checked_depth(self.ring.name(), self.write, read, self.ring.geo.capacity)?;
        self.cached_read = read;
        Ok(())
    }

    /// Writes one record and publishes it at once. For many records, [`write_chunk`] publishes a
    /// whole batch with one store (and at most one wake-up), which is several times faster.
    ///
    /// [`write_chunk`]: Producer::write_chunk
    pub fn push(&mut self, record: T) -> Result<(), PushError<T>> {
        let free = match self.cached_free() {
            0 => self.free_slots(),
            n => Ok(n),
        };
        match free {
            Ok(0) => Err(PushError::Full(record)),
            Ok(_) => {
                // SAFETY: one free slot exists, so the slot at `write` is not in the consumer's
                // readable range and no one else writes it (we hold the producer role).
                unsafe { self.ring.slot(self.write).write(record) };
                self.publish(1);
                Ok(())
            }
            Err(e) => Err(PushError::Corrupt(record, e)),
        }
    }

    /// Copies as many records from `records` as fit, publishes them with one store, and returns
    /// how many were taken.
    pub fn push_slice(&mut self, records: &[T]) -> Result<usize> {
        let mut chunk = self.write_chunk(records.len())?;
        let n = chunk.len();
        let (a, b) = chunk.as_mut_slices();
        let split = a.len();
        a.copy_from_slice(&records[..split]);
        b.copy_from_slice(&records[split..n]);
        chunk.commit_all();
        Ok(n)
    }

    /// Borrows up to `max` free slots for writing. Nothing becomes visible to the consumer until
    /// [`WriteChunk::commit`]; dropping the chunk publishes nothing.
    ///
    /// ```
    /// # use shm_ring::ring::{create, RingOptions};
    /// # use shm_ring::{Producer, Record, SegmentName};
    /// # #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)] #[repr(C)] struct Sample { seq: u64 }
    /// # impl Record for Sample { const TYPE_NAME: &'static str = "Sample/1"; }
    /// # let name = SegmentName::new(&format!("doc-chunk-{}", std::process::id()), "samples")?;
    /// # create::<Sample>(&name, &RingOptions::new(8))?;
    /// let mut producer = Producer::<Sample>::attach(&name)?;
    /// let mut chunk = producer.write_chunk(5)?;
    /// let mut seq = 0;
    /// for slot in chunk.iter_mut() {
    ///     *slot = Sample { seq };
    ///     seq += 1;
    /// }
    /// chunk.commit_all(); // one store publishes all five
    /// assert_eq!(producer.free_slots()?, 3);
    /// # shm_ring::segment::remove_all(name.prefix())?;
    /// # Ok::<(), shm_ring::Error>(())
    /// ```
    pub fn write_chunk(&mut self, max: usize) -> Result<WriteChunk<'_, T>> {
        let mut free = self.cached_free();
        if free < max {
            free = self.free_slots()?;
        }
        let n = free.min(max);
        let cap = self.capacity();
        let start = (self.write & (self.ring.geo.capacity - 1)) as usize;
        let first_len = n.min(cap - start);
        let first = self.ring.slot(self.write);
        let second = self.ring.slot(self.write.wrapping_add(first_len as u64));
        // SAFETY: the n slots from `write` are free: the consumer will not read them until we
        // publish, and we are the only producer. They are split at the end of the slot array, so
        // both slices are in bounds; T is Pod, so whatever bytes they hold are valid T values.
        let (first, second) = unsafe {
            (
                std::slice::from_raw_parts_mut(first, first_len),
                std::slice::from_raw_parts_mut(second, n - first_len),
            )
        };
        Ok(WriteChunk {
            producer_write: &mut self.write,
            ring: &self.ring,
            first,
            second,
        })
    }

    /// Waits until at least `n` slots are free (or `timeout` passes), following `strategy`.
    /// Returns the number of free slots, which is less than `n` only on timeout.
    pub fn wait_for_slots(&mut self, n: usize, strategy: &WaitStrategy, timeout: Duration) -> Result<usize> {
        let n = n.min(self.capacity()).max(1);
        let cap = self.ring.geo.capacity;
        let write = self.write;
        let ring = &self.ring;
        let mut read = self.cached_read;
        wait_until(strategy, timeout, &ring.wait_line().producer_sleeping, || {
            read = ring.consumer_line().read_pos.load(Ordering::Acquire);
            let used = checked_depth(ring.name(), write, read, cap)?;
            Ok((cap - used) as usize >= n)
        })?;
        self.cached_read = read;
        self.free_slots()
    }

    fn publish(&mut self, n: u64) {
        self.write = self.write.wrapping_add(n);
        publish_to(&self.ring, self.write);
    }
}

fn publish_to<T>(ring: &RingMap<T>, write: u64) {
    let wait = ring.wait_line();
    if protocol::advance::<Std>(&ring.producer_line().write_pos, write, &wait.consumer_sleeping) {
        futex::wake_all(&wait.consumer_sleeping);
    }
}

/// Free slots borrowed from a [`Producer`], as up to two slices (the second is non-empty when
/// the run of slots wraps around the end of the ring).
pub struct WriteChunk<'a, T: Record> {
    producer_write: &'a mut u64,
    ring: &'a RingMap<T>,
    first: &'a mut [T],
    second: &'a mut [T],
}

impl<T: Record> WriteChunk<'_, T> {
    /// Number of slots in the chunk.
    pub fn len(&self) -> usize {
        self.first.len() + self.second.len()
    }

    /// True when the ring had no free slot.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The slots, in order. Their previous contents are stale records.
    pub fn as_mut_slices(&mut self) -> (&mut [T], &mut [T]) {
        (&mut self.first[..], &mut self.second[..])
    }

    /// The slots, in order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.first.iter_mut().chain(self.second.iter_mut())
    }

    /// Publishes the first `n` slots (clamped to the chunk's length) with one store.
    pub fn commit(self, n: usize) {
        let n = n.min(self.len()) as u64;
        if n > 0 {
            *self.producer_write = self.producer_write.wrapping_add(n);
            publish_to(self.ring, *self.producer_write);
        }
    }

    /// Publishes every slot of the chunk.
    pub fn commit_all(self) {
        let n = self.len();
        self.commit(n)
    }
}
