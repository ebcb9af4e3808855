//! decoded: the pipeline stage that turns raw MQTT payloads into typed readings.
//!
//! It consumes the raw ring (`records::RawRecord`, written by ingestd), decodes each payload as
//! CBOR, JSON or protobuf, and produces into the readings ring (`records::Reading`, read by aggd). A payload
//! that does not make a reading is counted under exactly one `error.<reason>` and goes no further.
//!
//! | module | concept |
//! |---|---|
//! | [`format`](mod@format) | which parser a payload gets: content type, per-topic lists, first byte |
//! | [`cbor`] | a non-allocating CBOR reader for the reading document |
//! | [`json`] | the same document as JSON, through serde_json without a `Value` tree |
//! | [`proto`] | the same reading as protobuf (`telemetry.v1.Reading`), a non-allocating wire-format reader |
//! | `cursor` | the checked read position in a payload that the CBOR and protobuf readers share |
//! | [`fields`] | what every parser produces: the document's keys, typed as the wire says |
//! | [`decode`](mod@decode) | payload → [`records::Reading`] or one [`Reason`] |
//! | [`reason`] | the reasons and their counters |
//! | [`resume`] | exactly-once across a restart: which raw records were already forwarded |
//! | [`stage`] | the loop over the rings, backpressure, counters and shutdown |
//! | [`fault`] | a fault-injection hook for the supervisor's poison tests (inert unless set) |
//!
//! `src/main.rs` only names [`stage::Stage`], decoded's part of the frame every stage runs in
//! (`stage_runtime`).

#![deny(missing_docs)]

pub mod cbor;
mod cursor;
pub mod decode;
pub mod fault;
pub mod fields;
pub mod format;
pub mod json;
pub mod proto;
pub mod reason;
pub mod resume;
pub mod stage;

pub use decode::{decode, Format};
pub use reason::Reason;
