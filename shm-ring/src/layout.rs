//! The byte layout shared by every segment this crate writes, and the checks that a mapped segment
//! really is what the caller expects before any slot is touched.
//!
//! Every segment starts with one 128-byte line holding [`HeaderFields`]. Its first word, `magic`,
//! is zero until the creator has written everything else, and is then stored with `Release`; an
//! opener loads it with `Acquire` before it trusts any other byte. Once published, the header is
//! never written again.
//!
//! A ring (kind [`KIND_RING`]) continues with three more lines and the slots:
//!
//! | offset | size | contents |
//! |---|---|---|
//! | 0 | 128 | [`HeaderFields`] |
//! | 128 | 128 | [`ProducerLine`]: the write position, written only by the producer |
//! | 256 | 128 | [`ConsumerLine`]: the read position, written only by the consumer |
//! | 384 | 128 | [`WaitLine`]: the two futex words, written rarely |
//! | 512 | capacity × record size | the slots |

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::record::Record;

/// `"SHMRING1"`, little-endian: the value of `magic` once a segment is ready.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"SHMRING1");
/// Bumped whenever any offset or field in this file changes meaning.
pub const LAYOUT_VERSION: u32 = 1;
/// A cache line, doubled: adjacent-line prefetching makes 64 bytes too little to stop false sharing.
pub(crate) const LINE: usize = 128;
/// Segment kind: a ring.
pub(crate) const KIND_RING: u32 = 1;
/// Segment kind: a stats page.
pub(crate) const KIND_STATS: u32 = 2;
/// Segment kind: a table (see `table.rs`).
pub(crate) const KIND_TABLE: u32 = 3;
/// Offset of the first row in a table: after the header and one line of user words.
pub(crate) const TABLE_ROWS_OFFSET: usize = 2 * LINE;
/// Offset of the first slot in a ring.
pub(crate) const RING_SLOTS_OFFSET: usize = 4 * LINE;
/// Longest record type name stored in a header.
pub(crate) const TYPE_NAME_LEN: usize = 64;
/// Largest record a ring accepts. Records are copied by value, so anything larger is a mistake.
pub(crate) const MAX_RECORD_SIZE: usize = 1 << 20;
/// Largest capacity a ring accepts (2^32 slots).
pub(crate) const MAX_CAPACITY: u64 = 1 << 32;

/// The first line of every segment, as plain data. The segment's copy is read with a volatile copy
/// into one of these, so a hostile or half-written segment can never make us read past its end.
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
pub(crate) struct HeaderFields {
    /// [`MAGIC`] once the segment is ready, 0 before.
    pub magic: u64,
    /// [`LAYOUT_VERSION`] of the writer.
    pub layout_version: u32,
    /// [`KIND_RING`] or [`KIND_STATS`].
    pub kind: u32,
    /// `size_of::<T>()` for a ring; 0 for a stats page.
    pub record_size: u32,
    /// `align_of::<T>()` for a ring; 0 for a stats page.
    pub record_align: u32,
    /// Number of slots (a power of two) for a ring; number of stage slots for a stats page.
    pub capacity: u64,
    /// The total length the creator gave the segment.
    pub segment_bytes: u64,
    /// The position both sides started at (a ring whose write position equals it has never held
    /// a record).
    pub start_position: u64,
    /// `T::TYPE_NAME`, NUL-padded.
    pub record_type: [u8; TYPE_NAME_LEN],
    pub reserved: [u8; LINE - 112],
}

const _: () = assert!(std::mem::size_of::<HeaderFields>() == LINE);

/// What a caller expects a ring to be; compared against [`HeaderFields`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct RingShape<'a> {
    pub type_name: &'a str,
    pub record_size: usize,
    pub record_align: usize,
}

impl RingShape<'_> {
    pub(crate) fn describe(&self) -> String {
        format!(
            "record {} size {} align {} layout {}",
            self.type_name, self.record_size, self.record_align, LAYOUT_VERSION
        )
    }
}

/// The shape of `T`, checked against what a segment can hold: size, alignment, type name.
pub(crate) fn shape_of<T: Record>() -> Result<RingShape<'static>> {
    let shape = RingShape {
        type_name: T::TYPE_NAME,
        record_size: std::mem::size_of::<T>(),
        record_align: std::mem::align_of::<T>(),
    };
    if shape.record_size == 0 || shape.record_size > MAX_RECORD_SIZE {
        return Err(Error::InvalidParameter {
            reason: format!(
                "record {} has size {}, outside 1..=1 MiB",
                T::TYPE_NAME,
                shape.record_size
            ),
        });
    }
    if shape.record_align > LINE {
        return Err(Error::InvalidParameter {
            reason: format!(
                "record {} is aligned to {} bytes, more than {LINE}",
                T::TYPE_NAME,
                shape.record_align
            ),
        });
    }
    if T::TYPE_NAME.is_empty() || T::TYPE_NAME.len() > TYPE_NAME_LEN || T::TYPE_NAME.contains('\0') {
        return Err(Error::InvalidParameter {
            reason: format!("record type name {:?} must be 1 to 64 bytes without NUL", T::TYPE_NAME),
        });
    }
    Ok(shape)
}

/// A ring geometry that has been checked against the mapping it lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RingGeometry {
    pub capacity: u64,
    pub record_size: usize,
}

impl HeaderFields {
    pub(crate) fn new(kind: u32, shape: Option<RingShape<'_>>, capacity: u64, segment_bytes: usize) -> Self {
        let mut h = HeaderFields::zeroed();
        h.layout_version = LAYOUT_VERSION;
        h.kind = kind;
        h.capacity = capacity;
        h.segment_bytes = segment_bytes as u64;
        if let Some(shape) = shape {
            h.record_size = shape.record_size as u32;
            h.record_align = shape.record_align as u32;
            let n = shape.type_name.len().min(TYPE_NAME_LEN);
            h.record_type[..n].copy_from_slice(&shape.type_name.as_bytes()[..n]);
        }
        h
    }

    /// The stored type name, up to its first NUL; non-UTF-8 bytes are shown escaped.
    pub(crate) fn type_name(&self) -> String {
        let end = self.record_type.iter().position(|&b| b == 0).unwrap_or(TYPE_NAME_LEN);
        String::from_utf8_lossy(&self.record_type[..end]).into_owned()
    }

    fn describe(&self) -> String {
        format!(
            "record {} size {} align {} layout {}",
            self.type_name(),
            self.record_size,
            self.record_align,
            self.layout_version
        )
    }

    /// Checks the parts every kind shares: magic, version, kind, and that the segment is as long
    /// as its creator said. `Err` carries the reason as text; callers wrap it in an [`crate::Error`].
    pub(crate) fn check_common(&self, kind: u32, mapped_len: usize) -> Result<(), CheckError> {
        if self.magic == 0 {
            return Err(CheckError::NotReady);
        }
        if self.magic != MAGIC {
            return Err(CheckError::Corrupt(format!("bad magic {:#018x}", self.magic)));
        }
        if self.layout_version != LAYOUT_VERSION {
            return Err(CheckError::Mismatch(self.describe()));
        }
        if self.kind != kind {
            return Err(CheckError::Corrupt(format!(
                "segment kind {} where {} was expected",
                self.kind, kind
            )));
        }
        if self.segment_bytes != mapped_len as u64 {
            return Err(CheckError::Corrupt(format!(
                "header says {} bytes but the segment has {mapped_len}",
                self.segment_bytes
            )));
        }
        Ok(())
    }

    /// Check of a ring header without knowing its record type, for read-only observers: the
    /// shape must merely be self-consistent and fit the mapping.
    pub(crate) fn check_ring_any(&self, mapped_len: usize) -> Result<RingGeometry, CheckError> {
        let size = self.record_size as usize;
        let align = self.record_align as usize;
        if size == 0
            || size > MAX_RECORD_SIZE
            || !align.is_power_of_two()
            || align > LINE
            || !size.is_multiple_of(align)
        {
            return Err(CheckError::Corrupt(format!(
                "record size {size} align {align} is impossible"
            )));
        }
        let name = self.type_name();
        let shape = RingShape {
            type_name: &name,
            record_size: size,
            record_align: align,
        };
        self.check_ring(&shape, mapped_len)
    }

    /// Full check of a ring header against the expected record shape and the mapped length.
    /// Never panics, whatever the bytes; on `Ok`, every slot lies inside the mapping.
    pub(crate) fn check_ring(&self, shape: &RingShape<'_>, mapped_len: usize) -> Result<RingGeometry, CheckError> {
        self.check_common(KIND_RING, mapped_len)?;
        self.check_shape(shape)?;
        let cap = self.capacity;
        if !(2..=MAX_CAPACITY).contains(&cap) || !cap.is_power_of_two() {
            return Err(CheckError::Corrupt(format!(
                "capacity {cap} is not a power of two in 2..=2^32"
            )));
        }
        let need = ring_bytes(shape.record_size, cap)
            .ok_or_else(|| CheckError::Corrupt(format!("capacity {cap} overflows the segment size")))?;
        if need != mapped_len {
            return Err(CheckError::Corrupt(format!(
                "capacity {cap} × {} bytes needs {need} bytes but the segment has {mapped_len}",
                shape.record_size
            )));
        }
        Ok(RingGeometry {
            capacity: cap,
            record_size: shape.record_size,
        })
    }

    /// Full check of a table header: kind, record shape, and rows × size fitting the mapping.
    pub(crate) fn check_table(&self, shape: &RingShape<'_>, mapped_len: usize) -> Result<u64, CheckError> {
        self.check_common(KIND_TABLE, mapped_len)?;
        self.check_shape(shape)?;
        let rows = self.capacity;
        let need = table_bytes(shape.record_size, rows)
            .ok_or_else(|| CheckError::Corrupt(format!("{rows} rows overflow the segment size")))?;
        if rows == 0 || rows > MAX_CAPACITY || need != mapped_len {
            return Err(CheckError::Corrupt(format!(
                "{rows} rows × {} bytes do not fill the segment's {mapped_len} bytes",
                shape.record_size
            )));
        }
        Ok(rows)
    }

    fn check_shape(&self, shape: &RingShape<'_>) -> Result<(), CheckError> {
        let found_name = self.type_name();
        if found_name != shape.type_name
            || self.record_size as usize != shape.record_size
            || self.record_align as usize != shape.record_align
        {
            return Err(CheckError::Mismatch(self.describe()));
        }
        Ok(())
    }
}

/// Why a header was rejected, before the segment's name is attached.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CheckError {
    NotReady,
    Corrupt(String),
    /// Carries the description of what the segment holds.
    Mismatch(String),
}

impl CheckError {
    /// The public [`Error`] for this rejection of the segment named `segment`. `mismatch` turns
    /// the segment's own description into the `(found, expected)` pair the message shows, so
    /// each kind of segment words a mismatch in its own terms.
    pub(crate) fn into_error(self, segment: String, mismatch: impl FnOnce(String) -> (String, String)) -> Error {
        match self {
            CheckError::NotReady => Error::NotReady { segment },
            CheckError::Corrupt(reason) => Error::Corrupt { segment, reason },
            CheckError::Mismatch(description) => {
                let (found, expected) = mismatch(description);
                Error::Mismatch {
                    segment,
                    found,
                    expected,
                }
            }
        }
    }
}

/// Total bytes of a table with this record size and row count, or `None` if it overflows.
pub(crate) fn table_bytes(record_size: usize, rows: u64) -> Option<usize> {
    let rows = usize::try_from(rows).ok()?;
    record_size.checked_mul(rows)?.checked_add(TABLE_ROWS_OFFSET)
}

/// Total bytes of a ring with this record size and capacity, or `None` if it overflows.
pub(crate) fn ring_bytes(record_size: usize, capacity: u64) -> Option<usize> {
    let cap = usize::try_from(capacity).ok()?;
    record_size.checked_mul(cap)?.checked_add(RING_SLOTS_OFFSET)
}

/// The producer's line.
#[repr(C, align(128))]
pub(crate) struct ProducerLine {
    /// Position of the next slot the producer will fill. Written only by the producer, with
    /// `Release`, after the records before it are complete; it never decreases (modulo 2^64).
    /// Always in `read_pos ..= read_pos + capacity`, which a consumer checks rather than trusts.
    pub write_pos: AtomicU64,
    /// The pid that took the producer role last; for error messages only (the role itself is an
    /// OFD lock on [`PRODUCER_LOCK_BYTE`]).
    pub pid: AtomicU32,
    /// How many times a producer has attached; a restarted producer shows up as a jump here.
    pub attaches: AtomicU32,
}

/// The consumer's line.
#[repr(C, align(128))]
pub(crate) struct ConsumerLine {
    /// Position of the next slot the consumer will read. Written only by the consumer, with
    /// `Release`, after it has finished with the records before it; it never decreases.
    pub read_pos: AtomicU64,
    /// The pid that took the consumer role last; informational, as for the producer.
    pub pid: AtomicU32,
    /// How many times a consumer has attached.
    pub attaches: AtomicU32,
    /// Position of the record the consumer is handling now (stored as `ReadChunk::iter` yields
    /// it). Meaningful only while it lies in `read_pos..write_pos`: after a crash it names the
    /// record the consumer died on, which is how a supervisor finds a poison record.
    pub processing: AtomicU64,
}

/// The futex words. On their own line because they change only when a side goes to sleep or is
/// woken, so reading them on every commit costs a cache hit rather than a miss.
#[repr(C, align(128))]
pub(crate) struct WaitLine {
    /// 1 while the consumer sleeps (or is about to) waiting for records. Set by the consumer,
    /// cleared by whichever side sees it first; the producer wakes the futex only when it clears it.
    pub consumer_sleeping: AtomicU32,
    /// 1 while the producer sleeps waiting for space; the mirror image of `consumer_sleeping`.
    pub producer_sleeping: AtomicU32,
}

/// Byte of the segment on which the producer holds its OFD lock.
pub(crate) const PRODUCER_LOCK_BYTE: u64 = 0;
/// Byte of the segment on which the consumer holds its OFD lock.
pub(crate) const CONSUMER_LOCK_BYTE: u64 = 1;

const _: () = assert!(std::mem::size_of::<ProducerLine>() == LINE);
const _: () = assert!(std::mem::size_of::<ConsumerLine>() == LINE);
const _: () = assert!(std::mem::size_of::<WaitLine>() == LINE);

/// Copies the header out of a mapping. The magic word is loaded with `Acquire` first, so when it
/// reads [`MAGIC`] the rest of the copy is what the creator wrote.
///
/// # Safety
/// `base` must point to a live mapping of at least [`LINE`] bytes, aligned to 8.
pub(crate) unsafe fn read_header(base: *const u8) -> HeaderFields {
    // SAFETY: the caller guarantees LINE readable bytes at `base`, aligned for u64; the magic is
    // the first field and is only ever written atomically.
    let magic = unsafe { (*(base as *const AtomicU64)).load(Ordering::Acquire) };
    // SAFETY: as above; a volatile copy because another process may (wrongly) be writing these
    // bytes, and a torn copy is then caught by the checks rather than being undefined behaviour
    // in our own process's view of memory.
    let mut h: HeaderFields = unsafe { std::ptr::read_volatile(base as *const HeaderFields) };
    h.magic = magic;
    h
}

/// Writes a header and then publishes it by storing the magic word with `Release`.
///
/// # Safety
/// `base` must point to a writable mapping of at least [`LINE`] bytes, aligned to 8, that no
/// other process trusts yet (its magic is still 0).
pub(crate) unsafe fn publish_header(base: *mut u8, header: HeaderFields) {
    let mut h = header;
    h.magic = 0;
    // SAFETY: the caller guarantees the region and that no reader trusts it before the magic.
    unsafe { std::ptr::write_volatile(base as *mut HeaderFields, h) };
    // SAFETY: as above; magic is the first field and u64-aligned.
    unsafe { (*(base as *const AtomicU64)).store(MAGIC, Ordering::Release) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SHAPE: RingShape<'static> = RingShape {
        type_name: "Test/1",
        record_size: 64,
        record_align: 8,
    };

    fn valid(cap: u64) -> HeaderFields {
        let mut h = HeaderFields::new(KIND_RING, Some(SHAPE), cap, ring_bytes(64, cap).unwrap());
        h.magic = MAGIC;
        h
    }

    #[test]
    fn a_valid_header_passes() {
        let len = ring_bytes(64, 1024).unwrap();
        assert_eq!(
            valid(1024).check_ring(&SHAPE, len),
            Ok(RingGeometry {
                capacity: 1024,
                record_size: 64
            })
        );
    }

    #[test]
    fn another_record_type_is_a_mismatch_naming_both() {
        let len = ring_bytes(64, 1024).unwrap();
        let other = RingShape {
            type_name: "Other/1",
            ..SHAPE
        };
        match valid(1024).check_ring(&other, len) {
            Err(CheckError::Mismatch(found)) => assert!(found.contains("Test/1"), "{found}"),
            r => panic!("expected a mismatch, got {r:?}"),
        }
    }

    #[test]
    fn a_truncated_segment_is_corrupt() {
        let len = ring_bytes(64, 1024).unwrap();
        assert!(matches!(
            valid(1024).check_ring(&SHAPE, len - 1),
            Err(CheckError::Corrupt(_))
        ));
    }

    #[test]
    fn an_unpublished_header_is_not_ready() {
        let mut h = valid(8);
        h.magic = 0;
        assert_eq!(
            h.check_ring(&SHAPE, ring_bytes(64, 8).unwrap()),
            Err(CheckError::NotReady)
        );
    }

    proptest! {
        /// Random headers never panic the check, and whatever passes fits inside the mapping.
        #[test]
        fn random_headers_are_rejected_or_fit(bytes in proptest::collection::vec(any::<u8>(), LINE),
                                              len in 0usize..(1 << 24),
                                              keep_magic in any::<bool>(),
                                              keep_shape in any::<bool>()) {
            let mut h: HeaderFields = bytemuck::pod_read_unaligned(&bytes);
            if keep_magic {
                h.magic = MAGIC;
                h.layout_version = LAYOUT_VERSION;
                h.kind = KIND_RING;
            }
            if keep_shape {
                let v = valid(1 << (h.capacity % 20).max(1));
                h.record_type = v.record_type;
                h.record_size = v.record_size;
                h.record_align = v.record_align;
                h.segment_bytes = len as u64;
            }
            if let Ok(g) = h.check_ring(&SHAPE, len) {
                let end = ring_bytes(g.record_size, g.capacity).unwrap();
                prop_assert!(end <= len);
                prop_assert!(g.capacity.is_power_of_two());
            }
        }

        /// A header with one random byte flipped is rejected, or still describes the same ring.
        #[test]
        fn single_byte_corruption_is_caught(cap_log in 1u32..20, at in 0usize..112, bit in 0u8..8) {
            let cap = 1u64 << cap_log;
            let len = ring_bytes(64, cap).unwrap();
            let mut bytes = bytemuck::bytes_of(&valid(cap)).to_vec();
            bytes[at] ^= 1 << bit;
            let h: HeaderFields = bytemuck::pod_read_unaligned(&bytes);
            if let Ok(g) = h.check_ring(&SHAPE, len) {
                prop_assert_eq!(g, RingGeometry { capacity: cap, record_size: 64 });
            }
        }
    }
}
