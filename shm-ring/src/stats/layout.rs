//! The stats page's bytes: its limits, the stage slot and ring gauge structs at fixed offsets,
//! the checked mapping ([`Page`]) that the writer, the reader and the manager's control all go
//! through, and the creation of a page. The table of offsets and of who writes which field is
//! in the module docs of `stats`.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::layout::{self, HeaderFields, KIND_STATS, LINE};
use crate::segment::{Access, Mapping, SegmentName};
#[cfg(doc)]
use crate::stats::{StageWriter, StatsControl};

/// Most stages a page holds.
pub const MAX_STAGES: usize = 8;
/// Most named counters per stage.
pub const MAX_COUNTERS: usize = 48;
/// Most rings a page reports on.
pub const MAX_RINGS: usize = 8;
/// Longest stage, counter or ring name, in bytes.
pub const MAX_NAME_LEN: usize = 32;

pub(super) type Name = [u8; MAX_NAME_LEN];

/// A stage's state word: written by its manager (see [`StatsControl`]) and by a stage about itself
/// (`Running` once ready, `Stopping` when it drains).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum StageState {
    /// Never started.
    Idle = 0,
    /// Spawned, not yet ready.
    Starting = 1,
    /// Ready and processing.
    Running = 2,
    /// Draining or shutting down.
    Stopping = 3,
    /// Exited (its manager may record how in its control words).
    Exited = 4,
    /// Waiting out a restart backoff.
    Backoff = 5,
}

impl StageState {
    pub(super) fn from_raw(v: u32) -> Option<StageState> {
        Some(match v {
            0 => StageState::Idle,
            1 => StageState::Starting,
            2 => StageState::Running,
            3 => StageState::Stopping,
            4 => StageState::Exited,
            5 => StageState::Backoff,
            _ => return None,
        })
    }

    /// Lower-case name, as shown by `telemetryctl`.
    pub fn as_str(self) -> &'static str {
        match self {
            StageState::Idle => "idle",
            StageState::Starting => "starting",
            StageState::Running => "running",
            StageState::Stopping => "stopping",
            StageState::Exited => "exited",
            StageState::Backoff => "backoff",
        }
    }
}

/// One ring's gauge: written by the ring's consumer stage whenever it reads a batch.
#[repr(C, align(128))]
pub(super) struct RingGauge {
    /// Set at page creation; never changed.
    pub(super) name: Name,
    /// Slots in the ring; set at page creation.
    pub(super) capacity: AtomicU64,
    /// Records queued when the consumer last looked.
    pub(super) depth: AtomicU64,
}

/// Words per stage slot that the stages' manager keeps (see [`StatsControl`]).
pub const CONTROL_WORDS: usize = 8;

/// One stage's slot.
#[repr(C, align(128))]
pub(super) struct StageSlot {
    /// Seqlock over `counters`: odd while the stage is inside [`StageWriter::flush`]. Written only
    /// by the stage that holds the slot.
    pub(super) seq: AtomicU64,
    /// CLOCK_MONOTONIC milliseconds of the stage's last sign of life; written by the stage.
    pub(super) heartbeat_ms: AtomicU64,
    /// Pid of the stage process; written by the stage on attach and by its manager.
    pub(super) pid: AtomicU32,
    /// A [`StageState`]; written by the manager, and by the stage when it becomes ready.
    pub(super) state: AtomicU32,
    /// Wall-clock milliseconds since the epoch when the current process started.
    pub(super) started_unix_ms: AtomicU64,
    /// Number of registered counter names; stored with `Release` after the name is written, and
    /// names below it never change.
    pub(super) counter_count: AtomicU32,
    _pad: u32,
    /// The manager's words: stored and shown, never interpreted here (see [`StatsControl`]).
    pub(super) control: [AtomicU64; CONTROL_WORDS],
    /// Set at page creation; never changed.
    pub(super) name: Name,
    pub(super) counter_names: [Name; MAX_COUNTERS],
    pub(super) counters: [AtomicU64; MAX_COUNTERS],
}

impl StageSlot {
    /// One counter's value as last published, by name: a single atomic load, without waiting for
    /// a batch boundary (so it never waits on a writer that died inside a flush).
    pub(super) fn counter_value(&self, counter: &str) -> Option<u64> {
        let bytes = name_bytes(counter, "counter").ok()?;
        let count = (self.counter_count.load(Ordering::Acquire) as usize).min(MAX_COUNTERS);
        let i = (0..count).find(|&i| read_name(&self.counter_names[i]) == bytes)?;
        Some(self.counters[i].load(Ordering::Relaxed))
    }
}

const GAUGES_OFFSET: usize = LINE;
const STAGES_OFFSET: usize = GAUGES_OFFSET + MAX_RINGS * std::mem::size_of::<RingGauge>();
const PAGE_BYTES: usize = STAGES_OFFSET + MAX_STAGES * std::mem::size_of::<StageSlot>();
/// Byte offset of a stage's writer lock (OFD lock, one byte per stage).
pub(super) const STAGE_LOCK_BASE: u64 = 16;

const _: () = assert!(std::mem::size_of::<RingGauge>() == LINE);
const _: () = assert!(std::mem::size_of::<StageSlot>().is_multiple_of(LINE));

pub(super) fn name_bytes(s: &str, what: &str) -> Result<Name> {
    if s.is_empty() || s.len() > MAX_NAME_LEN || s.contains('\0') {
        return Err(Error::InvalidParameter {
            reason: format!("{what} name {s:?} must be 1 to {MAX_NAME_LEN} bytes without NUL"),
        });
    }
    let mut n = [0u8; MAX_NAME_LEN];
    n[..s.len()].copy_from_slice(s.as_bytes());
    Ok(n)
}

pub(super) fn name_str(n: &Name) -> String {
    let end = n.iter().position(|&b| b == 0).unwrap_or(MAX_NAME_LEN);
    String::from_utf8_lossy(&n[..end]).into_owned()
}

/// Reads a name that may sit in memory another process maps writable.
pub(super) fn read_name(n: &Name) -> Name {
    // SAFETY: `n` is a valid reference to initialised bytes; volatile because another process
    // could (wrongly) be writing it, and a torn name is harmless to us.
    unsafe { std::ptr::read_volatile(n) }
}

/// A checked mapping of a stats page.
pub(super) struct Page {
    pub(super) map: Mapping,
    pub(super) stages: usize,
}

impl Page {
    pub(super) fn open(name: &SegmentName, writable: bool) -> Result<Page> {
        let map = Mapping::open(name, writable)?;
        let seg = name.to_string();
        if map.len() < LINE {
            return Err(Error::corrupt(&seg, "shorter than a header"));
        }
        // SAFETY: at least LINE bytes, page-aligned.
        let header = unsafe { layout::read_header(map.ptr()) };
        header.check_common(KIND_STATS, map.len()).map_err(|e| {
            e.into_error(seg.clone(), |found| {
                (
                    format!("stats page of {found}"),
                    format!("stats page of layout {}", layout::LAYOUT_VERSION),
                )
            })
        })?;
        if map.len() != PAGE_BYTES || header.capacity as usize != MAX_STAGES {
            return Err(Error::corrupt(
                &seg,
                format!("{} bytes, expected {PAGE_BYTES}", map.len()),
            ));
        }
        let page = Page {
            map,
            stages: MAX_STAGES,
        };
        Ok(page)
    }

    pub(super) fn gauge(&self, i: usize) -> &RingGauge {
        assert!(i < MAX_RINGS);
        // SAFETY: the page was checked to be PAGE_BYTES long; gauge i lies inside it, is 128-byte
        // aligned, and holds only atomics and plain bytes, valid for any bit pattern.
        unsafe { &*(self.map.ptr().add(GAUGES_OFFSET + i * LINE) as *const RingGauge) }
    }

    pub(super) fn slot_ptr(&self, i: usize) -> *mut StageSlot {
        assert!(i < self.stages);
        // SAFETY: slot i lies inside the page, which was checked to be PAGE_BYTES long.
        unsafe { self.map.ptr().add(STAGES_OFFSET + i * std::mem::size_of::<StageSlot>()) as *mut StageSlot }
    }

    pub(super) fn slot(&self, i: usize) -> &StageSlot {
        // SAFETY: as for `gauge`: slot i is inside the checked page, aligned, and any bits are valid.
        unsafe { &*self.slot_ptr(i) }
    }

    pub(super) fn find_stage(&self, stage: &str) -> Option<usize> {
        (0..self.stages).find(|&i| name_str(&read_name(&self.slot(i).name)) == stage)
    }

    pub(super) fn find_ring(&self, ring: &str) -> Option<usize> {
        (0..MAX_RINGS).find(|&i| name_str(&read_name(&self.gauge(i).name)) == ring)
    }
}

/// Creates a stats page with one slot per stage and one gauge per ring (name, capacity), mode
/// 0640 so that a reader in the owner's group can observe. An existing page is kept when it has
/// the same layout and names (its counters carry on), and replaced otherwise.
///
/// ```
/// # use shm_ring::stats::{create_stats_page, CounterBatch, StageWriter, StatsReader};
/// # use shm_ring::SegmentName;
/// let name = SegmentName::new(&format!("doc-stats-{}", std::process::id()), "stats")?;
/// create_stats_page(&name, &["ingestd", "decoded"], &[("raw", 1024)])?;
/// let mut writer = StageWriter::attach(&name, "ingestd")?;
/// let received = writer.counter("received")?;
/// let mut batch = CounterBatch::default();
/// batch.add(received, 10);
/// writer.flush(&mut batch);
/// let snap = StatsReader::open(&name)?.snapshot();
/// assert_eq!(snap.stage("ingestd").unwrap().counter("received"), Some(10));
/// shm_ring::segment::remove_all(name.prefix())?;
/// # Ok::<(), shm_ring::Error>(())
/// ```
pub fn create_stats_page(name: &SegmentName, stages: &[&str], rings: &[(&str, u64)]) -> Result<()> {
    if stages.len() > MAX_STAGES || rings.len() > MAX_RINGS {
        return Err(Error::InvalidParameter {
            reason: format!("a stats page holds at most {MAX_STAGES} stages and {MAX_RINGS} rings"),
        });
    }
    let stage_names = stages
        .iter()
        .map(|s| name_bytes(s, "stage"))
        .collect::<Result<Vec<_>>>()?;
    let ring_names = rings
        .iter()
        .map(|(r, _)| name_bytes(r, "ring"))
        .collect::<Result<Vec<_>>>()?;
    match Page::open(name, true) {
        Ok(page) => {
            let same = stages.iter().all(|s| page.find_stage(s).is_some())
                && rings.iter().all(|(r, cap)| {
                    page.find_ring(r)
                        .is_some_and(|i| page.gauge(i).capacity.load(Ordering::Relaxed) == *cap)
                });
            if same {
                return Ok(());
            }
            crate::segment::remove(name)?;
        }
        Err(Error::NotFound { .. }) => {}
        Err(e @ (Error::ForeignOwner { .. } | Error::Untrusted { .. } | Error::Os { .. })) => return Err(e),
        Err(_) => {
            crate::segment::remove(name)?;
        }
    }
    let map = Mapping::create(name, PAGE_BYTES, Access::GroupRead)?;
    let base = map.ptr();
    // SAFETY: the mapping is fresh, PAGE_BYTES long, zero-filled and not yet published (magic 0),
    // so nobody reads these bytes concurrently; every write below is inside the page and aligned.
    unsafe {
        for (i, (n, (_, cap))) in ring_names.iter().zip(rings).enumerate() {
            let g = base.add(GAUGES_OFFSET + i * LINE) as *mut RingGauge;
            (*g).name = *n;
            (*g).capacity.store(*cap, Ordering::Relaxed);
        }
        for (i, n) in stage_names.iter().enumerate() {
            let s = base.add(STAGES_OFFSET + i * std::mem::size_of::<StageSlot>()) as *mut StageSlot;
            (*s).name = *n;
        }
        layout::publish_header(base, HeaderFields::new(KIND_STATS, None, MAX_STAGES as u64, PAGE_BYTES));
    }
    Ok(())
}
