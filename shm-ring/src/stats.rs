//! The stats page: one fixed-layout segment where every stage writes its counters and heartbeat,
//! whoever manages the stages keeps a few words of its own per stage, and observers read
//! everything without locks.
//!
//! Because the counters live in shared memory they survive a stage's restart: the new process
//! re-attaches its slot and keeps counting from where the old one stopped.
//!
//! # Consistency
//!
//! - Every field is a single atomic word, so no single value is ever read torn.
//! - A stage publishes its counter updates in batches through [`StageWriter::flush`], inside a
//!   seqlock. [`StatsReader::snapshot`] retries until it reads a batch boundary, so the counters
//!   of one stage in a snapshot are mutually consistent (for example `received = forwarded +
//!   dropped` holds exactly if the stage keeps it per batch). If the stage was killed inside a
//!   flush, the seqlock stays odd until the stage restarts; the snapshot then says
//!   `consistent: false` and still returns each counter as last written.
//! - Counters of different stages, and ring depths, are read at slightly different moments; a
//!   check across stages must allow for records in flight.
//!
//! # Layout
//!
//! | offset | contents |
//! |---|---|
//! | 0 | header (kind = stats page, capacity = number of stage slots) |
//! | 128 | [`MAX_RINGS`] ring gauges, 128 bytes each |
//! | 128 + 128 × MAX_RINGS | [`MAX_STAGES`] stage slots |
//!
//! # Who writes what in a stage slot
//!
//! | field | written by |
//! |---|---|
//! | counters, heartbeat, ring gauges | the stage ([`StageWriter`]), the only writer |
//! | pid, start time | the stage on attach; the pid also by its manager ([`StatsControl`]) |
//! | state ([`StageState`]) | the manager, and the stage when it becomes ready or stops |
//! | [`CONTROL_WORDS`] control words | the manager ([`StatsControl`]); this crate gives them no meaning |
//!
//! The control words are how the process that starts the stages (the pipeline's supervisor)
//! keeps per-stage bookkeeping where every observer can read it: restarts, the last exit, requests
//! from operators. This crate only stores and reads them; the supervisor's `lifecycle` module says
//! what each one means.

use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

use crate::clock::{monotonic_ms, unix_ms};
use crate::error::{Error, Result};
use crate::layout::{self, HeaderFields, KIND_STATS, LINE};
use crate::segment::{Access, Mapping, SegmentName};
#[cfg(doc)]
use crate::StatsControl;

/// Most stages a page holds.
pub const MAX_STAGES: usize = 8;
/// Most named counters per stage.
pub const MAX_COUNTERS: usize = 48;
/// Most rings a page reports on.
pub const MAX_RINGS: usize = 8;
/// Longest stage, counter or ring name, in bytes.
pub const MAX_NAME_LEN: usize = 32;

type Name = [u8; MAX_NAME_LEN];

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
    pub(crate) fn from_raw(v: u32) -> Option<StageState> {
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
struct RingGauge {
    /// Set at page creation; never changed.
    name: Name,
    /// Slots in the ring; set at page creation.
    capacity: AtomicU64,
    /// Records queued when the consumer last looked.
    depth: AtomicU64,
}

/// Words per stage slot that the stages' manager keeps (see [`StatsControl`]).
pub const CONTROL_WORDS: usize = 8;

/// One stage's slot.
#[repr(C, align(128))]
pub(crate) struct StageSlot {
    /// Seqlock over `counters`: odd while the stage is inside [`StageWriter::flush`]. Written only
    /// by the stage that holds the slot.
    seq: AtomicU64,
    /// CLOCK_MONOTONIC milliseconds of the stage's last sign of life; written by the stage.
    pub(crate) heartbeat_ms: AtomicU64,
    /// Pid of the stage process; written by the stage on attach and by its manager.
    pub(crate) pid: AtomicU32,
    /// A [`StageState`]; written by the manager, and by the stage when it becomes ready.
    pub(crate) state: AtomicU32,
    /// Wall-clock milliseconds since the epoch when the current process started.
    started_unix_ms: AtomicU64,
    /// Number of registered counter names; stored with `Release` after the name is written, and
    /// names below it never change.
    counter_count: AtomicU32,
    _pad: u32,
    /// The manager's words: stored and shown, never interpreted here (see [`StatsControl`]).
    pub(crate) control: [AtomicU64; CONTROL_WORDS],
    /// Set at page creation; never changed.
    name: Name,
    counter_names: [Name; MAX_COUNTERS],
    counters: [AtomicU64; MAX_COUNTERS],
}

impl StageSlot {
    /// One counter's value as last published, by name: a single atomic load, without waiting for
    /// a batch boundary (so it never waits on a writer that died inside a flush).
    pub(crate) fn counter_value(&self, counter: &str) -> Option<u64> {
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
const STAGE_LOCK_BASE: u64 = 16;

const _: () = assert!(std::mem::size_of::<RingGauge>() == LINE);
const _: () = assert!(std::mem::size_of::<StageSlot>().is_multiple_of(LINE));

fn name_bytes(s: &str, what: &str) -> Result<Name> {
    if s.is_empty() || s.len() > MAX_NAME_LEN || s.contains('\0') {
        return Err(Error::InvalidParameter {
            reason: format!("{what} name {s:?} must be 1 to {MAX_NAME_LEN} bytes without NUL"),
        });
    }
    let mut n = [0u8; MAX_NAME_LEN];
    n[..s.len()].copy_from_slice(s.as_bytes());
    Ok(n)
}

fn name_str(n: &Name) -> String {
    let end = n.iter().position(|&b| b == 0).unwrap_or(MAX_NAME_LEN);
    String::from_utf8_lossy(&n[..end]).into_owned()
}

/// Reads a name that may sit in memory another process maps writable.
fn read_name(n: &Name) -> Name {
    // SAFETY: `n` is a valid reference to initialised bytes; volatile because another process
    // could (wrongly) be writing it, and a torn name is harmless to us.
    unsafe { std::ptr::read_volatile(n) }
}

/// A checked mapping of a stats page.
pub(crate) struct Page {
    map: Mapping,
    stages: usize,
}

impl Page {
    pub(crate) fn open(name: &SegmentName, writable: bool) -> Result<Page> {
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

    fn gauge(&self, i: usize) -> &RingGauge {
        assert!(i < MAX_RINGS);
        // SAFETY: the page was checked to be PAGE_BYTES long; gauge i lies inside it, is 128-byte
        // aligned, and holds only atomics and plain bytes, valid for any bit pattern.
        unsafe { &*(self.map.ptr().add(GAUGES_OFFSET + i * LINE) as *const RingGauge) }
    }

    fn slot_ptr(&self, i: usize) -> *mut StageSlot {
        assert!(i < self.stages);
        // SAFETY: slot i lies inside the page, which was checked to be PAGE_BYTES long.
        unsafe { self.map.ptr().add(STAGES_OFFSET + i * std::mem::size_of::<StageSlot>()) as *mut StageSlot }
    }

    pub(crate) fn slot(&self, i: usize) -> &StageSlot {
        // SAFETY: as for `gauge`: slot i is inside the checked page, aligned, and any bits are valid.
        unsafe { &*self.slot_ptr(i) }
    }

    pub(crate) fn find_stage(&self, stage: &str) -> Option<usize> {
        (0..self.stages).find(|&i| name_str(&read_name(&self.slot(i).name)) == stage)
    }

    fn find_ring(&self, ring: &str) -> Option<usize> {
        (0..MAX_RINGS).find(|&i| name_str(&read_name(&self.gauge(i).name)) == ring)
    }
}

/// Creates a stats page with one slot per stage and one gauge per ring (name, capacity), mode
/// 0640 so that a reader in the owner's group can observe. An existing page is kept when it has
/// the same layout and names (its counters carry on), and replaced otherwise.
///
/// ```
/// # use shm_ring::*;
/// let name = SegmentName::new(&format!("doc-stats-{}", std::process::id()), "stats")?;
/// create_stats_page(&name, &["ingestd", "decoded"], &[("raw", 1024)])?;
/// let mut writer = StageWriter::attach(&name, "ingestd")?;
/// let received = writer.counter("received")?;
/// let mut batch = CounterBatch::default();
/// batch.add(received, 10);
/// writer.flush(&mut batch);
/// let snap = StatsReader::open(&name)?.snapshot();
/// assert_eq!(snap.stage("ingestd").unwrap().counter("received"), Some(10));
/// shm_ring::remove_all(name.prefix())?;
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

/// A read-only view of the page (`O_RDONLY`, `PROT_READ`): works when the supervisor is hung or
/// gone and needs no write permission.
pub struct StatsReader {
    page: Page,
}

/// One stage as read by [`StatsReader::snapshot`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageSnapshot {
    /// The stage's name.
    pub name: String,
    /// Its state, or `None` if the page holds a value this version does not know.
    pub state: Option<StageState>,
    /// Pid of the current (or last) process.
    pub pid: u32,
    /// Milliseconds since its last heartbeat (CLOCK_MONOTONIC), or `None` if it never beat.
    pub heartbeat_age_ms: Option<u64>,
    /// Wall-clock start of the current process, ms since the epoch (0 = never started).
    pub started_unix_ms: u64,
    /// The manager's control words as last written (their meaning is the manager's; see
    /// [`StatsControl`]).
    pub control: [u64; CONTROL_WORDS],
    /// Named counters, in registration order.
    pub counters: Vec<(String, u64)>,
    /// False if the seqlock never showed a batch boundary (the stage died inside a flush and has
    /// not restarted); the counters are then each correct but possibly from different batches.
    pub consistent: bool,
}

impl StageSnapshot {
    /// A counter's value by name.
    pub fn counter(&self, name: &str) -> Option<u64> {
        self.counters.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }
}

/// One ring gauge as read by [`StatsReader::snapshot`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingSnapshot {
    /// The ring's name.
    pub name: String,
    /// Records queued when its consumer last looked.
    pub depth: u64,
    /// Slots.
    pub capacity: u64,
}

/// Everything on the page at one moment (see the module docs for what is consistent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Every named stage slot.
    pub stages: Vec<StageSnapshot>,
    /// Every named ring gauge.
    pub rings: Vec<RingSnapshot>,
}

impl StatsSnapshot {
    /// A stage by name.
    pub fn stage(&self, name: &str) -> Option<&StageSnapshot> {
        self.stages.iter().find(|s| s.name == name)
    }
}

/// How often a snapshot retries a stage whose writer is inside a flush. A writer preempted
/// mid-flush holds the seqlock odd for a whole time slice, so after a short spin the reader
/// yields and then sleeps; a writer that died mid-flush costs the reader about 20 ms.
const SNAPSHOT_ATTEMPTS: u32 = 1_000;

fn retry_pause(attempt: u32) {
    match attempt {
        0..=63 => std::hint::spin_loop(),
        64..=979 => std::thread::yield_now(),
        _ => std::thread::sleep(std::time::Duration::from_millis(1)),
    }
}

impl StatsReader {
    /// Opens the page read-only and checks its header.
    pub fn open(name: &SegmentName) -> Result<Self> {
        Ok(StatsReader {
            page: Page::open(name, false)?,
        })
    }

    /// The uid that owns the page and its directory. An observer that runs as another user
    /// (an operator reading the pipeline's stats) checks it is the pipeline's user: the page
    /// was only checked to belong to its directory's owner.
    pub fn owner_uid(&self) -> u32 {
        self.page.map.owner()
    }

    /// Reads every stage and ring, without locks.
    pub fn snapshot(&self) -> StatsSnapshot {
        let now = monotonic_ms();
        let mut stages = Vec::new();
        for i in 0..self.page.stages {
            let s = self.page.slot(i);
            let name = name_str(&read_name(&s.name));
            if name.is_empty() {
                continue;
            }
            let count = (s.counter_count.load(Ordering::Acquire) as usize).min(MAX_COUNTERS);
            let names: Vec<String> = (0..count).map(|c| name_str(&read_name(&s.counter_names[c]))).collect();
            let mut values = vec![0u64; count];
            let mut consistent = false;
            for attempt in 0..SNAPSHOT_ATTEMPTS {
                let before = s.seq.load(Ordering::Acquire);
                for (v, c) in values.iter_mut().zip(&s.counters) {
                    *v = c.load(Ordering::Relaxed);
                }
                fence(Ordering::Acquire);
                let after = s.seq.load(Ordering::Relaxed);
                if before == after && before.is_multiple_of(2) {
                    consistent = true;
                    break;
                }
                retry_pause(attempt);
            }
            let beat = s.heartbeat_ms.load(Ordering::Relaxed);
            stages.push(StageSnapshot {
                name,
                state: StageState::from_raw(s.state.load(Ordering::Acquire)),
                pid: s.pid.load(Ordering::Relaxed),
                heartbeat_age_ms: (beat != 0).then(|| now.saturating_sub(beat)),
                started_unix_ms: s.started_unix_ms.load(Ordering::Relaxed),
                control: std::array::from_fn(|w| s.control[w].load(Ordering::Acquire)),
                counters: names.into_iter().zip(values).collect(),
                consistent,
            });
        }
        let rings = (0..MAX_RINGS)
            .filter_map(|i| {
                let g = self.page.gauge(i);
                let name = name_str(&read_name(&g.name));
                (!name.is_empty()).then(|| RingSnapshot {
                    name,
                    depth: g.depth.load(Ordering::Relaxed),
                    capacity: g.capacity.load(Ordering::Relaxed),
                })
            })
            .collect();
        StatsSnapshot { stages, rings }
    }
}
