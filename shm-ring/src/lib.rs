//! Crash-safe, lock-free single-producer single-consumer rings of fixed-size records in POSIX
//! shared memory (`/dev/shm`), a stats page that processes share for counters and heartbeats,
//! and tables of records that outlive the process writing them.
//!
//! The telemetry pipeline runs each stage as its own process so that one can crash or be
//! restarted while the others keep running. The rings between them therefore live outside every
//! process: a segment in `/dev/shm` that outlives its producer and its consumer.
//!
//! ```
//! use shm_ring::ring::{create, RingOptions};
//! use shm_ring::{Consumer, Producer, Record, SegmentName};
//!
//! #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
//! #[repr(C)]
//! struct Reading {
//!     seq: u64,
//!     value: f64,
//! }
//!
//! impl Record for Reading {
//!     const TYPE_NAME: &'static str = "Reading/1";
//! }
//!
//! let name = SegmentName::new(&format!("doc-crate-{}", std::process::id()), "readings")?;
//! create::<Reading>(&name, &RingOptions::new(1024))?;
//!
//! // Usually in two different processes:
//! let mut producer = Producer::<Reading>::attach(&name)?;
//! let mut consumer = Consumer::<Reading>::attach(&name)?;
//!
//! producer.push(Reading { seq: 1, value: 21.5 }).unwrap();
//! let chunk = consumer.read_chunk(64)?;
//! assert_eq!(chunk.iter().next(), Some(&Reading { seq: 1, value: 21.5 }));
//! chunk.commit_all();
//!
//! shm_ring::segment::remove_all(name.prefix())?;
//! # Ok::<(), shm_ring::Error>(())
//! ```
//!
//! # What is where
//!
//! | module | what |
//! |---|---|
//! | [`ring`] | the ring: [`create`](ring::create) and its options, the [`Producer`] and [`Consumer`] ends, a read-only [`RingObserver`](ring::RingObserver), [`WaitStrategy`](ring::WaitStrategy) |
//! | [`stats`] | the stats page: each stage's counters, heartbeat and state, ring gauges, its manager's control words |
//! | [`table`] | a table: a fixed number of records that survive their writer's restart |
//! | [`segment`] | what all three live in: [`SegmentName`], the pipeline's directory, what creation does with a taken name, listing and removal |
//!
//! The root re-exports only what nearly every user needs: [`Producer`], [`Consumer`], [`Record`],
//! [`SegmentName`], [`Error`] (the one error type of every module), [`unix_ms`] and `bytemuck`
//! (whose `Pod` derive a [`Record`] needs).
//!
//! # Guarantees when a process dies
//!
//! These hold whatever instruction a process is killed at, SIGKILL included; the cross-process
//! tests in `tests/kill.rs` check them with real processes.
//!
//! - **No torn records.** A producer writes slots first and publishes them afterwards by storing
//!   its write position (`Release`). A consumer reads only slots below the position it loaded
//!   (`Acquire`). A producer killed mid-write has published nothing of the record it was writing.
//! - **At-least-once, with a bounded duplicate window.** A consumer releases records by storing
//!   its read position after it has handled them ([`ReadChunk::commit`](ring::ReadChunk::commit)). If it dies before the
//!   commit, its successor reads those records again. The duplicates are at most the records
//!   read but not yet committed: one chunk, if the consumer commits each chunk once it has
//!   handled it. A stage that must not forward duplicates can use [`Consumer::position`] to
//!   remember, downstream, how far it got.
//! - **Nothing queued is lost.** Positions live in the segment. A restarted producer resumes at
//!   the shared write position and a restarted consumer at the shared read position; the records
//!   between them stay where they are.
//! - **A dead peer never wedges the survivor.** No lock is ever waited on across processes. Roles
//!   are held with open-file-description locks that the kernel drops when the holder dies, so a
//!   new producer or consumer can attach at once; a live holder is refused with
//!   [`Error::RoleHeld`]. Sleeping uses a futex with a flag protocol and a timeout, never a
//!   process-shared mutex.
//!
//! # Trust
//!
//! A pipeline's segments are files in its own directory, `/dev/shm/<prefix>/` (mode 0750, made
//! by the pipeline's user or at boot by tmpfiles.d), never loose names in the world-writable
//! `/dev/shm` that another user could take first. The directory is opened `O_NOFOLLOW` and
//! checked on its descriptor; segments are opened relative to it. To create or write, the
//! directory and the segment must belong to this process's euid; to read, the segment must
//! belong to its directory's owner (which the caller may check further:
//! [`StatsReader::owner_uid`](stats::StatsReader::owner_uid)); nothing writable by group or others is ever used. Anything else
//! is [`Error::ForeignOwner`] or [`Error::Untrusted`], naming the path: never adopted, replaced
//! or followed.
//!
//! Segments are created `O_CREAT|O_EXCL|O_NOFOLLOW` with mode 0600 (0640 for the stats page,
//! set with `fchmod`) and every page is reserved at creation (`posix_fallocate`), so a full
//! `/dev/shm` is [`Error::NoSpace`] at creation, never a SIGBUS on a later write. Every attach
//! checks the header (magic, layout version, record type name, size, alignment, capacity,
//! length) before any slot is touched, and the positions are checked against the capacity on
//! every load, so a corrupt or foreign segment yields [`Error::Corrupt`] or [`Error::Mismatch`],
//! never an out-of-bounds access. A segment shorter than its header says is refused before
//! anything past its end is read.
//!
//! # Positions
//!
//! Positions are `u64` counters that only grow; a slot's index is `position % capacity` with a
//! power-of-two capacity. All arithmetic is wrapping, so even the wrap at 2^64 (centuries away
//! at any real rate) is handled; the tests start positions near `u64::MAX`.
//!
//! # Waiting
//!
//! See [`WaitStrategy`](ring::WaitStrategy): spin, then nap for a latency budget, then sleep on a futex. The peer
//! makes the wake system call only when the sleeper has said it sleeps, so under load no system
//! call is made per record or per batch.

#![deny(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod clock;
mod error;
mod layout;
mod record;
pub mod ring;
pub mod segment;
pub mod stats;
pub mod table;

pub use clock::unix_ms;
pub use error::Error;
pub use record::Record;
pub use ring::{Consumer, Producer};
pub use segment::SegmentName;

pub use bytemuck;
