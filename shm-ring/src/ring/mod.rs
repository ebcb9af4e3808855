//! The ring: a lock-free single-producer single-consumer queue of fixed-size
//! [`Record`]s in a segment of its own. [`create`] makes one (see [`RingOptions`]);
//! a [`Producer`] and a [`Consumer`], usually in two processes, attach to it; a [`RingObserver`]
//! watches it read-only; a [`WaitStrategy`] says how a blocked side waits.
//!
//! ```
//! use shm_ring::ring::{create, RingOptions};
//! use shm_ring::{Consumer, Producer, Record, SegmentName};
//! # #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)] #[repr(C)] struct Sample { seq: u64 }
//! # impl Record for Sample { const TYPE_NAME: &'static str = "Sample/1"; }
//! let name = SegmentName::new(&format!("doc-ring-{}", std::process::id()), "samples")?;
//! let _guard = shm_ring::segment::PrefixGuard::new(name.prefix());
//! create::<Sample>(&name, &RingOptions::new(8))?;
//! Producer::<Sample>::attach(&name)?.push_slice(&[Sample { seq: 1 }])?;
//! assert_eq!(Consumer::<Sample>::attach(&name)?.pop().unwrap(), Sample { seq: 1 });
//! # Ok::<(), shm_ring::Error>(())
//! ```
//!
//! Inside: `producer.rs` and `consumer.rs` are the two ends; `protocol.rs` is the publish and
//! sleep protocol they share (checked with loom); `wait.rs` and `futex.rs` are the waiting; this
//! file creates rings and holds the checked, typed mapping (`RingMap`) that all of them use.

mod consumer;
mod futex;
mod observer;
mod producer;
mod protocol;
mod wait;

pub use consumer::{Consumer, PopError, ReadChunk};
pub use observer::RingObserver;
pub use producer::{Producer, PushError, WriteChunk};
pub use wait::WaitStrategy;

use std::marker::PhantomData;
use std::sync::atomic::Ordering;

use crate::error::{Error, Result};
use crate::layout::shape_of;
use crate::layout::{
    self, ConsumerLine, HeaderFields, ProducerLine, RingGeometry, RingShape, WaitLine, KIND_RING, LINE, MAX_CAPACITY,
    RING_SLOTS_OFFSET,
};
use crate::record::Record;
use crate::segment::{Access, Created, IfExists, Mapping, SegmentName};

/// How to create a ring. `capacity` must be a power of two between 2 and 2^32.
///
/// ```
/// use shm_ring::ring::RingOptions;
/// use shm_ring::segment::IfExists;
/// let opts = RingOptions::new(1024).if_exists(IfExists::Adopt);
/// assert_eq!(opts.capacity(), 1024);
/// ```
#[derive(Clone, Debug)]
pub struct RingOptions {
    capacity: u64,
    if_exists: IfExists,
    start_position: u64,
}

impl RingOptions {
    /// A ring of `capacity` slots, mode 0600, failing if the name is taken.
    pub fn new(capacity: u64) -> Self {
        RingOptions {
            capacity,
            if_exists: IfExists::Fail,
            start_position: 0,
        }
    }

    /// What to do with an existing segment of the same name.
    pub fn if_exists(mut self, if_exists: IfExists) -> Self {
        self.if_exists = if_exists;
        self
    }

    /// The position both sides start at. Positions are 64-bit and only grow, so this matters only
    /// to tests that want to cross the 2^64 wrap.
    pub fn start_position(mut self, position: u64) -> Self {
        self.start_position = position;
        self
    }

    /// The requested capacity.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }
}

/// Creates the ring segment `name` for records of type `T`. Neither role is taken: the producer
/// and consumer [`attach`](crate::Producer::attach) afterwards, usually from other processes.
///
/// A segment is never replaced while a live process holds one of its roles; that is
/// [`Error::RoleHeld`].
///
/// ```
/// use shm_ring::ring::{create, RingOptions};
/// use shm_ring::segment::{remove, Created, IfExists};
/// use shm_ring::SegmentName;
/// # #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)] #[repr(C)] struct Sample { seq: u64 }
/// # impl shm_ring::Record for Sample { const TYPE_NAME: &'static str = "Sample/1"; }
/// let name = SegmentName::new(&format!("doc-create-{}", std::process::id()), "samples")?;
/// assert_eq!(create::<Sample>(&name, &RingOptions::new(64))?, Created::New);
/// let again = RingOptions::new(64).if_exists(IfExists::Adopt);
/// assert_eq!(create::<Sample>(&name, &again)?, Created::Adopted { depth: 0 });
/// shm_ring::segment::remove_all(name.prefix())?;
/// # Ok::<(), shm_ring::Error>(())
/// ```
pub fn create<T: Record>(name: &SegmentName, opts: &RingOptions) -> Result<Created> {
    let shape = shape_of::<T>()?;
    let cap = opts.capacity;
    if !(2..=MAX_CAPACITY).contains(&cap) || !cap.is_power_of_two() {
        return Err(Error::InvalidParameter {
            reason: format!("ring capacity {cap} is not a power of two in 2..=2^32"),
        });
    }
    let len = layout::ring_bytes(shape.record_size, cap).ok_or_else(|| Error::InvalidParameter {
        reason: format!("ring of {cap} × {} bytes does not fit in memory", shape.record_size),
    })?;

    let mut outcome = Created::New;
    let mapping = match Mapping::create(name, len, Access::OwnerOnly) {
        Ok(m) => m,
        Err(Error::AlreadyExists { .. }) if opts.if_exists != IfExists::Fail => {
            let reason = match RingMap::<T>::open(name, true) {
                Ok(existing) => {
                    ensure_roles_free(&existing, name)?;
                    if opts.if_exists == IfExists::Adopt && existing.geo.capacity == cap {
                        let depth = existing.depth()?;
                        return Ok(Created::Adopted { depth });
                    }
                    if opts.if_exists == IfExists::Adopt {
                        format!("capacity {} where {cap} was asked for", existing.geo.capacity)
                    } else {
                        "asked to replace".to_owned()
                    }
                }
                Err(e @ (Error::ForeignOwner { .. } | Error::Untrusted { .. } | Error::Os { .. })) => return Err(e),
                Err(e) => e.to_string(),
            };
            crate::segment::remove(name)?;
            outcome = Created::Replaced { reason };
            Mapping::create(name, len, Access::OwnerOnly)?
        }
        Err(e) => return Err(e),
    };

    let base = mapping.ptr();
    // SAFETY: the mapping is fresh, zero-filled, writable and `len` ≥ RING_SLOTS_OFFSET bytes;
    // the position words are aligned (the lines are 128-byte aligned in a page-aligned mapping)
    // and nobody trusts the segment before `publish_header` stores the magic.
    unsafe {
        let p = &*(base.add(LINE) as *const ProducerLine);
        let c = &*(base.add(2 * LINE) as *const ConsumerLine);
        p.write_pos.store(opts.start_position, Ordering::Relaxed);
        c.read_pos.store(opts.start_position, Ordering::Relaxed);
        let mut header = HeaderFields::new(KIND_RING, Some(shape), cap, len);
        header.start_position = opts.start_position;
        layout::publish_header(base, header);
    }
    Ok(outcome)
}

/// Refuses to replace a ring that a live process is using: its records would silently vanish
/// into an unlinked segment. Takes and immediately releases both role locks.
fn ensure_roles_free<T: Record>(ring: &RingMap<T>, name: &SegmentName) -> Result<()> {
    // A separate descriptor, closed at the end of this function, so the probe releases the locks.
    let probe = Mapping::open(name, true)?;
    for (byte, role, pid) in [
        (
            layout::PRODUCER_LOCK_BYTE,
            "producer",
            ring.producer_line().pid.load(Ordering::Relaxed),
        ),
        (
            layout::CONSUMER_LOCK_BYTE,
            "consumer",
            ring.consumer_line().pid.load(Ordering::Relaxed),
        ),
    ] {
        if !probe.try_lock_byte(byte)? {
            return Err(Error::RoleHeld {
                segment: name.to_string(),
                role,
                pid,
            });
        }
    }
    Ok(())
}

/// A mapped ring whose header has been checked against `T`.
pub(crate) struct RingMap<T> {
    map: Mapping,
    pub(crate) geo: RingGeometry,
    pub(crate) start_position: u64,
    mask: u64,
    _record: PhantomData<T>,
}

impl<T: Record> RingMap<T> {
    pub(crate) fn open(name: &SegmentName, writable: bool) -> Result<Self> {
        let shape = shape_of::<T>()?;
        let map = Mapping::open(name, writable)?;
        let geo = check(&map, Some(&shape))?;
        // SAFETY: `check` proved the mapping holds a complete, published ring header.
        let start_position = unsafe { layout::read_header(map.ptr()) }.start_position;
        Ok(RingMap {
            map,
            start_position,
            mask: geo.capacity - 1,
            geo,
            _record: PhantomData,
        })
    }

    /// Pointer to the slot that holds position `pos`.
    #[inline]
    pub(crate) fn slot(&self, pos: u64) -> *mut T {
        let index = (pos & self.mask) as usize;
        // SAFETY: the header check proved RING_SLOTS_OFFSET + capacity × size_of::<T>() equals the
        // mapping's length and index < capacity, so the slot is in bounds; the offset is a multiple
        // of 128 and of size_of::<T>(), hence aligned for T (align ≤ 128, size a multiple of align).
        unsafe { (self.map.ptr().add(RING_SLOTS_OFFSET) as *mut T).add(index) }
    }
}

impl<T> RingMap<T> {
    pub(crate) fn name(&self) -> &SegmentName {
        self.map.name()
    }

    pub(crate) fn mapping(&self) -> &Mapping {
        &self.map
    }

    pub(crate) fn producer_line(&self) -> &ProducerLine {
        lines(&self.map).0
    }

    pub(crate) fn consumer_line(&self) -> &ConsumerLine {
        lines(&self.map).1
    }

    pub(crate) fn wait_line(&self) -> &WaitLine {
        lines(&self.map).2
    }

    /// Records queued now, checked against the capacity.
    pub(crate) fn depth(&self) -> Result<u64> {
        let w = self.producer_line().write_pos.load(Ordering::Acquire);
        let r = self.consumer_line().read_pos.load(Ordering::Acquire);
        checked_depth(self.name(), w, r, self.geo.capacity)
    }
}

/// The three control lines of a checked ring mapping.
pub(crate) fn lines(map: &Mapping) -> (&ProducerLine, &ConsumerLine, &WaitLine) {
    let base = map.ptr();
    // SAFETY: only called on mappings whose header check passed, so the mapping is at least
    // RING_SLOTS_OFFSET bytes; the lines sit at fixed 128-byte-aligned offsets and consist of
    // atomics only, which are valid for any bit pattern and may be shared between processes.
    unsafe {
        (
            &*(base.add(LINE) as *const ProducerLine),
            &*(base.add(2 * LINE) as *const ConsumerLine),
            &*(base.add(3 * LINE) as *const WaitLine),
        )
    }
}

/// Checks a mapping's ring header; with `shape`, also that it holds exactly that record type.
pub(crate) fn check(map: &Mapping, shape: Option<&RingShape<'_>>) -> Result<RingGeometry> {
    let seg = map.name().to_string();
    if map.len() < RING_SLOTS_OFFSET {
        return Err(Error::corrupt(
            &seg,
            format!("only {} bytes, shorter than a ring header", map.len()),
        ));
    }
    // SAFETY: the mapping is at least RING_SLOTS_OFFSET ≥ LINE bytes and page-aligned.
    let header = unsafe { layout::read_header(map.ptr()) };
    let result = match shape {
        Some(shape) => header.check_ring(shape, map.len()),
        None => header.check_ring_any(map.len()),
    };
    result.map_err(|e| e.into_error(seg, |found| (found, shape.map(RingShape::describe).unwrap_or_default())))
}

/// `write - read`, or [`Error::Corrupt`] if that is more than the capacity (which only a foreign
/// or broken writer can cause).
#[inline]
pub(crate) fn checked_depth(name: &SegmentName, write: u64, read: u64, capacity: u64) -> Result<u64> {
    let depth = write.wrapping_sub(read);
    if depth > capacity {
        return Err(Error::corrupt(
            &name.to_string(),
            format!(
                "write position {write} and read position {read} are {depth} apart, more than the capacity {capacity}"
            ),
        ));
    }
    Ok(depth)
}
