//! What the pipeline's stats page means above shm-ring's bytes, for the two programs that read it
//! as a whole: the supervisor (which writes its control words and serves the page as Prometheus
//! text) and `telemetryctl` (which shows it and asks for restarts through it). Neither of them
//! depends on the other; both depend on this.
//!
//! - [`lifecycle`]: the supervisor's control words in each stage slot (restarts, hangs, last
//!   exit, restart requests, last hang) and their only interpreter;
//! - [`counters`]: the kinds of counters by name (`received`, `forwarded`, `dropped.*`,
//!   `error.*`, `gauge.*`) and the order in which stages are shown;
//! - `fixtures` (feature `fixtures`): stage snapshots built by hand, for tests.

#![deny(missing_docs)]

pub mod counters;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod lifecycle;
