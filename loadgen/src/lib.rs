//! The load generator's logic: which readings it sends (a deterministic formula, so a checker
//! can verify every mean), how it encodes them (CBOR as ciborium and Go's cbor.Marshal would,
//! JSON, or protobuf through prost), and the MQTT 5 frames it writes.
//!
//! The formula is the seed reference's (`shared/reference/README.md`), so the two pipelines can
//! be driven and checked alike: key k = d·S + s, device `dev%05d`, sensor `sen%03d`, unit
//! `[C % hPa V A][s % 5]`, topic `site/site%03d/sensor/sen%03d` with site = d % 10, and
//! value = d·100 + s + amp·((seq % 11) − 5)/5.

#![deny(missing_docs)]

pub mod cbor;
pub mod mqtt;
pub mod proto;
pub mod readings;
