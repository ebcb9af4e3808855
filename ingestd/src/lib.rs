//! ingestd: the pipeline's MQTT 5 subscriber. It turns every message into a `RawRecord` in the
//! raw ring, or counts it as dropped with a reason, and never blocks the network read.
//!
//! - `mqtt`: connection options and subscription filters from the config;
//! - `intake`: one message to a raw record or a drop reason;
//! - `liveness`: the heartbeat while the loop waits on its socket;
//! - `pacing`: how long the loop pauses once its socket is drained;
//! - `stage`: the loop.

#![deny(missing_docs)]

pub mod intake;
pub mod liveness;
pub mod mqtt;
pub mod pacing;
pub mod stage;
