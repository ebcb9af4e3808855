//! Protobuf payloads: `telemetry.v1.Reading` (`proto/telemetry/v1/reading.proto`) encoded by
//! prost. The message type mirrors the schema file field for field; a test compiles the file
//! with protox and checks that prost-reflect reads these bytes back as the same reading. One
//! message per key is kept and only its value and sequence number change, so encoding into the
//! reused buffer allocates nothing.

use prost::Message;

/// `telemetry.v1.Reading`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Reading {
    /// The device id (`d` in CBOR/JSON).
    #[prost(string, tag = "1")]
    pub device: String,
    /// The sensor (`s`).
    #[prost(string, tag = "2")]
    pub sensor: String,
    /// The value (`v`).
    #[prost(double, tag = "3")]
    pub value: f64,
    /// The unit (`u`).
    #[prost(string, tag = "4")]
    pub unit: String,
    /// The sender's sequence number (`n`).
    #[prost(uint64, tag = "5")]
    pub seq: u64,
    /// Event time in ms since the epoch (`t`).
    #[prost(uint64, tag = "6")]
    pub time_ms: u64,
}

/// `telemetry.v1.ReadingBatch`: several readings in one message, for sources that split batches
/// (HTTP), not for MQTT, where one message is one reading.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReadingBatch {
    /// The readings.
    #[prost(message, repeated, tag = "1")]
    pub readings: Vec<Reading>,
}

impl Reading {
    /// Encodes this reading into `out` (cleared first).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.clear();
        self.encode(out).expect("a Vec grows as needed");
    }
}

/// A malformed payload: a reading cut in the middle of its sensor string.
pub fn encode_bad(out: &mut Vec<u8>, seq: u64) {
    let r = Reading {
        device: "dev00000".into(),
        sensor: "sen000".into(),
        value: 1.5,
        unit: "C".into(),
        seq,
        time_ms: 0,
    };
    r.encode_into(out);
    // device: tag, length, 8 bytes; sensor: tag, length, then its 6 bytes, cut after 2.
    out.truncate(14);
}

#[cfg(test)]
mod tests {
    use prost_reflect::{DescriptorPool, DynamicMessage};

    use super::*;

    fn message(name: &str) -> prost_reflect::MessageDescriptor {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../proto");
        let set = protox::compile(["telemetry/v1/reading.proto"], [dir]).unwrap();
        let pool = DescriptorPool::from_file_descriptor_set(set).unwrap();
        pool.get_message_by_name(&format!("telemetry.v1.{name}")).unwrap()
    }

    fn schema() -> prost_reflect::MessageDescriptor {
        message("Reading")
    }

    #[test]
    fn the_shipped_schema_reads_our_bytes_as_the_same_reading() {
        let desc = schema();
        let r = Reading {
            device: "dev00001".into(),
            sensor: "sen002".into(),
            value: 301.6,
            unit: "hPa".into(),
            seq: 70_000,
            time_ms: 1_700_000_000_000,
        };
        let mut out = Vec::new();
        r.encode_into(&mut out);
        let m = DynamicMessage::decode(desc, &out[..]).unwrap();
        let get = |name: &str| m.get_field_by_name(name).unwrap().into_owned();
        assert_eq!(get("device").as_str(), Some("dev00001"));
        assert_eq!(get("sensor").as_str(), Some("sen002"));
        assert_eq!(get("value").as_f64(), Some(301.6));
        assert_eq!(get("unit").as_str(), Some("hPa"));
        assert_eq!(get("seq").as_u64(), Some(70_000));
        assert_eq!(get("time_ms").as_u64(), Some(1_700_000_000_000));
        // And no field the schema does not know.
        assert_eq!(m.unknown_fields().count(), 0);
    }

    #[test]
    fn a_batch_is_the_schemas_reading_batch() {
        let one = |seq| Reading {
            device: "d".into(),
            sensor: "s".into(),
            value: 1.5,
            seq,
            ..Reading::default()
        };
        let bytes = ReadingBatch {
            readings: vec![one(1), one(2)],
        }
        .encode_to_vec();
        let m = DynamicMessage::decode(message("ReadingBatch"), &bytes[..]).unwrap();
        let readings = m.get_field_by_name("readings").unwrap();
        let list = readings.as_list().unwrap();
        assert_eq!(list.len(), 2);
        let second = list[1].as_message().unwrap();
        assert_eq!(second.get_field_by_name("seq").unwrap().as_u64(), Some(2));
        assert_eq!(m.unknown_fields().count(), 0);
    }

    #[test]
    fn bad_payloads_do_not_decode() {
        let mut out = Vec::new();
        encode_bad(&mut out, 3);
        assert!(DynamicMessage::decode(schema(), &out[..]).is_err());
        assert!(Reading::decode(&out[..]).is_err());
    }
}
