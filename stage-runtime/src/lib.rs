//! What every stage process does besides its own work: structured logs on stderr, a shutdown
//! flag set by SIGTERM/SIGINT, its slot in the stats page (and the wake-up that tells the
//! supervisor it is ready), and how it waits on its input ring.
//!
//! A stage's `main` wires these to its own loop; see `ingestd`, `decoded`, `aggd` and `emitd`.

#![deny(missing_docs)]

pub mod backoff;
mod counters;
#[cfg(feature = "net")]
pub mod linger;
mod logging;
mod ready;
mod rings;
mod shutdown;

pub use backoff::Backoff;
pub use counters::StageCounters;
pub use logging::init_logging;
pub use ready::READY_FD_ENV;
pub use rings::{attach_consumer, attach_producer, patiently, segment, wait_strategy};
/// The wall clock every stage stamps with, defined once in the lowest crate.
pub use shm_ring::unix_ms;
pub use shutdown::Shutdown;
