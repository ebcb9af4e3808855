//! A read-only view of a ring, for tools such as `telemetryctl` that must work without write
//! permission and without disturbing the pipeline.

use std::sync::atomic::Ordering;

use super::{check, checked_depth, lines};
use crate::error::Result;
use crate::layout::{self, HeaderFields};
use crate::segment::{Mapping, SegmentName};

/// Watches a ring of any record type through an `O_RDONLY`, `PROT_READ` mapping. It holds no
/// role and takes no lock, so any number of observers can watch while the pipeline runs.
///
/// ```
/// # use shm_ring::ring::{create, RingObserver, RingOptions};
/// # use shm_ring::{Producer, Record, SegmentName};
/// # #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)] #[repr(C)] struct Sample { seq: u64 }
/// # impl Record for Sample { const TYPE_NAME: &'static str = "Sample/1"; }
/// let name = SegmentName::new(&format!("doc-observer-{}", std::process::id()), "samples")?;
/// create::<Sample>(&name, &RingOptions::new(16))?;
/// Producer::<Sample>::attach(&name)?.push_slice(&[Sample { seq: 1 }; 3])?;
/// let observer = RingObserver::attach(&name)?;
/// assert_eq!(observer.record_type(), "Sample/1");
/// assert_eq!((observer.depth()?, observer.capacity()), (3, 16));
/// shm_ring::segment::remove_all(name.prefix())?;
/// # Ok::<(), shm_ring::Error>(())
/// ```
pub struct RingObserver {
    map: Mapping,
    header: HeaderFields,
}

impl RingObserver {
    /// Opens the ring `name` read-only and checks its header (of any record type).
    pub fn attach(name: &SegmentName) -> Result<Self> {
        let map = Mapping::open(name, false)?;
        check(&map, None)?;
        // SAFETY: `check` proved the mapping holds a complete, published ring header.
        let header = unsafe { layout::read_header(map.ptr()) };
        Ok(RingObserver { map, header })
    }

    /// The uid that owns the ring and its directory (see [`crate::stats::StatsReader::owner_uid`]).
    pub fn owner_uid(&self) -> u32 {
        self.map.owner()
    }

    /// The record type name stored in the header.
    pub fn record_type(&self) -> String {
        self.header.type_name()
    }

    /// Bytes per record.
    pub fn record_size(&self) -> usize {
        self.header.record_size as usize
    }

    /// Number of slots.
    pub fn capacity(&self) -> u64 {
        self.header.capacity
    }

    /// Records queued now. An error means the positions are inconsistent (corrupt segment).
    pub fn depth(&self) -> Result<u64> {
        let (w, r) = self.positions();
        checked_depth(self.map.name(), w, r, self.header.capacity)
    }

    /// `(write position, read position)` as loaded now; they only grow.
    pub fn positions(&self) -> (u64, u64) {
        let (p, c, _) = lines(&self.map);
        // Read the consumer first: a later, larger write position can only make depth larger,
        // never negative.
        let r = c.read_pos.load(Ordering::Acquire);
        let w = p.write_pos.load(Ordering::Acquire);
        (w, r)
    }

    /// The position of the record the consumer is handling, or was handling when it died, if
    /// that record is still in the ring (not committed). `None` when the consumer is between
    /// chunks or has not used [`ReadChunk::iter`](crate::ring::ReadChunk::iter).
    pub fn processing(&self) -> Option<u64> {
        let (_, c, _) = lines(&self.map);
        let marker = c.processing.load(Ordering::Relaxed);
        let (w, r) = self.positions();
        let depth = w.wrapping_sub(r);
        (marker.wrapping_sub(r) < depth).then_some(marker)
    }

    /// Pids that took the producer and consumer roles last (0 = never). Informational: the
    /// process may have exited since.
    pub fn last_pids(&self) -> (u32, u32) {
        let (p, c, _) = lines(&self.map);
        (p.pid.load(Ordering::Relaxed), c.pid.load(Ordering::Relaxed))
    }

    /// How many times a producer and a consumer have attached; each restart adds one.
    pub fn attaches(&self) -> (u32, u32) {
        let (p, c, _) = lines(&self.map);
        (p.attaches.load(Ordering::Relaxed), c.attaches.load(Ordering::Relaxed))
    }
}
