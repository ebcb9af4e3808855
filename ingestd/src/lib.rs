//! ingestd: the pipeline's MQTT 5 subscriber. It turns every message into a `RawRecord` in the
//! raw ring, or counts it as dropped with a reason. At QoS 1 a full ring holds acks (by
//! default), so the broker keeps what the ring cannot take yet.
//!
//! - `mqtt`: connection options (TLS, credentials) and subscription filters from the config;
//! - `failure`: why a connection attempt failed (TLS, credentials, network);
//! - `intake`: one message to a raw record or a drop reason;
//! - `ingest`: the batch on its way to the raw ring, held or dropped when the ring is full, and
//!   the acks of what is settled;
//! - `redelivery`: which of the broker's redeliveries ingestd already took;
//! - `liveness`: the heartbeat while the loop waits on its socket;
//! - `pacing`: how long the loop pauses once its socket is drained;
//! - `stage`: the loop.

#![deny(missing_docs)]

pub mod failure;
pub mod ingest;
pub mod intake;
pub mod liveness;
pub mod mqtt;
pub mod pacing;
pub mod redelivery;
pub mod stage;
