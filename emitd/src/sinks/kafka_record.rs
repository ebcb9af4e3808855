//! An aggregate as a Kafka record: key, value and headers. Independent of the Kafka client, so
//! it is built and tested without the `kafka` feature.
//!
//! - **Key**: `<device>/<sensor>`, each id escaped as a NATS subject token (`subject`) and `/`
//!   as `%2F` too, so the key splits at its one `/` and each half unescapes to the id
//!   ([`split_key`]). The
//!   producer's partitioner hashes the key, so one key's aggregates stay in one partition, in
//!   order.
//! - **Value**: the JSON or CBOR document published on NATS (`payload`).
//! - **Headers**: `instance`, `window_end_ms` (decimal) and `dedup_id`, the id JetStream uses
//!   as `Nats-Msg-Id` (`msg_id`): the same for every copy of an aggregate, so a consumer can
//!   drop what a restarted emitd sent twice.
//!
//! ```
//! let agg = records::Aggregate::new(b"a/b.c", b"temp", b"C").unwrap();
//! assert_eq!(emitd::sinks::kafka_record::key(&agg).unwrap(), "a%2Fb%2Ec/temp");
//! ```

use bytes::{Bytes, BytesMut};
use records::{Aggregate, FixedText};

use crate::msg_id;
use crate::payload::PayloadEncoder;
use crate::subject;

/// Header names.
pub mod header {
    /// The pipeline instance that produced the aggregate.
    pub const INSTANCE: &str = "instance";
    /// The end of the aggregate's window, milliseconds since the epoch, in decimal.
    pub const WINDOW_END_MS: &str = "window_end_ms";
    /// Instance, device, sensor and window end: identical for every copy of one aggregate.
    pub const DEDUP_ID: &str = "dedup_id";
}

/// One record, kept until the broker acknowledged it (a retry sends it again as it is).
#[derive(Clone, Debug)]
pub struct KafkaRecord {
    /// `<device>/<sensor>`, escaped.
    pub key: String,
    /// The encoded aggregate.
    pub value: Bytes,
    /// `window_end_ms` in decimal.
    pub window_end_ms: String,
    /// The deduplication id.
    pub dedup_id: String,
}

/// The key of `agg`, or `None` if an id is empty.
pub fn key(agg: &Aggregate) -> Option<String> {
    let (device, sensor) = (agg.device(), agg.sensor());
    if device.bytes().is_empty() || sensor.bytes().is_empty() {
        return None;
    }
    let part = |id: &[u8]| subject::escape(id).replace('/', "%2F");
    Some(format!("{}/{}", part(device.bytes()), part(sensor.bytes())))
}

/// The device and sensor ids of a key written by [`key`]; `None` if it is not such a key.
///
/// ```
/// let (d, s) = emitd::sinks::kafka_record::split_key("a%2Fb%2Ec/temp").unwrap();
/// assert_eq!((d.as_slice(), s.as_slice()), (&b"a/b.c"[..], &b"temp"[..]));
/// ```
pub fn split_key(key: &str) -> Option<(Vec<u8>, Vec<u8>)> {
    let (device, sensor) = key.split_once('/')?;
    let part = |p: &str| subject::unescape(&p.replace("%2F", "/")).filter(|id| !id.is_empty());
    Some((part(device)?, part(sensor)?))
}

/// Builds the records of one instance and format.
#[derive(Debug)]
pub struct RecordBuilder {
    instance: String,
    payloads: PayloadEncoder,
    arena: BytesMut,
}

impl RecordBuilder {
    /// Records of `instance`, with values encoded by `payloads`.
    pub fn new(instance: &str, payloads: PayloadEncoder) -> Self {
        RecordBuilder {
            instance: instance.to_owned(),
            payloads,
            arena: BytesMut::new(),
        }
    }

    /// The instance header's value.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The record of `agg`, or `None` if an id is empty.
    pub fn build(&mut self, agg: &Aggregate) -> Option<KafkaRecord> {
        let key = key(agg)?;
        let dedup_id = msg_id::of(&self.instance, agg)?;
        if self.arena.capacity() < 1024 {
            self.arena = BytesMut::with_capacity(64 * 1024);
        }
        self.payloads.encode(agg, &mut self.arena);
        Some(KafkaRecord {
            key,
            value: self.arena.split().freeze(),
            window_end_ms: agg.window_end_ms.to_string(),
            dedup_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use telemetry_config::AggregateFormat;

    #[test]
    fn keys_split_at_one_slash_and_unescape_to_the_ids() {
        for (device, sensor) in [("dev1", "temp"), ("a/b", "c/d"), ("50%", "x.y"), ("é ", ">*")] {
            let agg = Aggregate::new(device.as_bytes(), sensor.as_bytes(), b"").unwrap();
            let k = key(&agg).unwrap();
            assert_eq!(k.matches('/').count(), 1, "{k}");
            let (d, s) = split_key(&k).unwrap();
            assert_eq!(
                (d.as_slice(), s.as_slice()),
                (device.as_bytes(), sensor.as_bytes()),
                "{k}"
            );
        }
        assert_eq!(key(&Aggregate::new(b"", b"s", b"").unwrap()), None);
    }

    #[test]
    fn records_carry_the_payload_and_the_dedup_id() {
        let mut b = RecordBuilder::new("edge-1", PayloadEncoder::new(AggregateFormat::Json, "edge-1", &[]));
        let mut agg = Aggregate::new(b"d.1", b"t", b"C").unwrap();
        agg.window_end_ms = 42;
        let r = b.build(&agg).unwrap();
        assert_eq!(r.key, "d%2E1/t");
        assert_eq!(r.window_end_ms, "42");
        assert_eq!(r.dedup_id, "edge-1.d%2E1.t.42");
        let v: serde_json::Value = serde_json::from_slice(&r.value).unwrap();
        assert_eq!(v["device"], "d.1");
        assert_eq!(v["window_end_ms"], 42);
    }
}
