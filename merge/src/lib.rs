//! `telemetry-merge`: several pipelines behind one MQTT shared subscription (`$share/...`) each
//! emit a *partial* aggregate per key and window; this crate turns them back into one aggregate
//! per key and window, exactly the one a single pipeline given the whole stream would emit
//! (`records::merge`'s rules, histograms included).
//!
//! This is the merger's core, with no I/O: what it is fed (partials, as pipelines publish them,
//! and watermarks) and what it decides (a (key, window) is complete and merged, a late partial
//! corrects a merged one as its next revision, a partial is a duplicate). The binary that
//! consumes the partials from JetStream, publishes the merged aggregates with `Nats-Msg-Id`s and
//! keeps the merged state across restarts is issue 22's next step (docs/decisions.md D27).
//!
//! - [`partial`]: a published aggregate document back into a `records::Aggregate`.
//! - [`instances`]: each pipeline's watermark and liveness.
//! - [`merger`]: pending windows, completeness, merged results and revisions.

#![deny(missing_docs)]

pub mod instances;
pub mod merger;
pub mod partial;

pub use instances::Instances;
pub use merger::{Merged, Merger, Verdict};
pub use partial::{BadPartial, Partial};
