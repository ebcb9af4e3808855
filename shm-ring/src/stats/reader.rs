//! The observers' side of the stats page: a read-only mapping and lock-free snapshots of every
//! stage slot and ring gauge, retrying each slot until its seqlock shows a batch boundary.

use std::sync::atomic::{fence, Ordering};

use crate::clock::monotonic_ms;
use crate::error::Result;
use crate::segment::SegmentName;
use crate::stats::layout::{name_str, read_name, Page, MAX_COUNTERS, MAX_RINGS};
#[cfg(doc)]
use crate::stats::StatsControl;
use crate::stats::{StageState, CONTROL_WORDS};

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
