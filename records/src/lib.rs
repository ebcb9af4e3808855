//! The records the stages hand to each other, and the names they share (rings, stages, counters).
//!
//! Every stage depends on this crate and on `shm-ring`; no stage depends on another stage. A
//! record's `TYPE_NAME` carries a version: change the number whenever a field changes meaning,
//! and a stage built against the old layout will refuse the ring with a clear error instead of
//! misreading it.

#![deny(missing_docs)]

mod aggregate;
pub mod exp_histogram;
pub mod merge;
mod moments;
pub mod names;
mod raw;
mod reading;
pub mod statistics;
mod text;

pub use aggregate::Aggregate;
pub use exp_histogram::ExpHistogram;
pub use merge::{is_later, merge_partials, NotMergeable};
pub use moments::Moments;
pub use raw::{ContentType, RawRecord, TooLarge, RAW_PAYLOAD_MAX, RAW_TOPIC_MAX};
pub use reading::{Field, Reading, DEVICE_MAX, SENSOR_MAX, UNIT_MAX};
pub use statistics::Statistics;
pub use text::FixedText;
