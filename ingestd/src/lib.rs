//! ingestd: the pipeline's front door. Its sources (MQTT 5, HTTP) turn every reading into a
//! `RawRecord` in the one raw ring, or count it as dropped with a reason (MQTT) or refuse the
//! request whole (HTTP). At QoS 1 a full ring holds acks (by default), so the broker keeps what
//! the ring cannot take yet; over HTTP it answers 503.
//!
//! - `stage`: runs the configured sources, beats the heartbeat, stops on a signal;
//! - `sources`: what a source is and which ones the config turns on, one folder per door
//!   (`sources/mqtt/`, `sources/http/`), and what they share: the raw ring with the counters
//!   (`sources/raw_ring.rs`) and the liveness the heartbeat follows (`sources/liveness.rs`).

#![deny(missing_docs)]

pub mod sources;
pub mod stage;
