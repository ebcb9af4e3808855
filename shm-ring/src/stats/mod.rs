//! The stats page: one fixed-layout segment where every stage writes its counters and heartbeat,
//! whoever manages the stages keeps a few words of its own per stage, and observers read
//! everything without locks.
//!
//! Because the counters live in shared memory they survive a stage's restart: the new process
//! re-attaches its slot and keeps counting from where the old one stopped.
//!
//! ```
//! use shm_ring::stats::{create_stats_page, CounterBatch, StageState, StageWriter, StatsControl, StatsReader};
//! use shm_ring::SegmentName;
//!
//! let name = SegmentName::new(&format!("doc-stats-mod-{}", std::process::id()), "stats")?;
//! let _guard = shm_ring::segment::PrefixGuard::new(name.prefix());
//! create_stats_page(&name, &["decoded"], &[("raw", 1024)])?;
//!
//! // The manager, before it spawns the stage:
//! StatsControl::open(&name)?.stage("decoded")?.set_state(StageState::Starting, 0);
//! // The stage:
//! let mut writer = StageWriter::attach(&name, "decoded")?;
//! let decoded = writer.counter("decoded")?;
//! let mut batch = CounterBatch::default();
//! batch.add(decoded, 3);
//! writer.flush(&mut batch);
//! writer.set_ring_depth("raw", 5);
//! writer.set_state(StageState::Running);
//! // Any observer, read-only:
//! let snap = StatsReader::open(&name)?.snapshot();
//! let stage = snap.stage("decoded").unwrap();
//! assert_eq!(stage.state, Some(StageState::Running));
//! assert_eq!((stage.counter("decoded"), stage.consistent), (Some(3), true));
//! assert_eq!((snap.rings[0].depth, snap.rings[0].capacity), (5, 1024));
//! # Ok::<(), shm_ring::Error>(())
//! ```
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

mod control;
mod layout;
mod reader;
mod writer;

pub use control::{ControlSlot, StatsControl};
pub use layout::{create_stats_page, StageState, CONTROL_WORDS, MAX_COUNTERS, MAX_NAME_LEN, MAX_RINGS, MAX_STAGES};
pub use reader::{RingSnapshot, StageSnapshot, StatsReader, StatsSnapshot};
pub use writer::{CounterBatch, CounterId, Heartbeat, StageWriter};
