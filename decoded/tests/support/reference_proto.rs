//! The reference protobuf encoder for decoded's tests: protox (a protobuf compiler in Rust, so no
//! `protoc`) compiles the shipped `proto/telemetry/v1/reading.proto`, and prost-reflect encodes
//! `DynamicMessage`s of it with prost's wire-format code. Nothing here writes a protobuf byte by
//! hand, and the test data follows the schema file itself: renumber a field there and the tests
//! see it.

use std::sync::OnceLock;

use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, Value};

/// The schema's directory, relative to this crate.
const PROTO_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../proto");

fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        let set = protox::compile(["telemetry/v1/reading.proto"], [PROTO_DIR]).expect("reading.proto compiles");
        DescriptorPool::from_file_descriptor_set(set).expect("a valid descriptor set")
    })
}

/// The descriptor of `telemetry.v1.<name>`.
pub fn message(name: &str) -> MessageDescriptor {
    pool()
        .get_message_by_name(&format!("telemetry.v1.{name}"))
        .unwrap_or_else(|| panic!("telemetry.v1.{name} in reading.proto"))
}

/// A `Reading`'s fields; `None` leaves a field unset.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProtoReading {
    pub device: Option<String>,
    pub sensor: Option<String>,
    pub value: Option<f64>,
    pub unit: Option<String>,
    pub seq: Option<u64>,
    pub time_ms: Option<u64>,
}

impl ProtoReading {
    /// device, sensor and value set.
    pub fn new(device: &str, sensor: &str, value: f64) -> ProtoReading {
        ProtoReading {
            device: Some(device.into()),
            sensor: Some(sensor.into()),
            value: Some(value),
            ..ProtoReading::default()
        }
    }

    /// The `DynamicMessage` of this reading.
    pub fn message(&self) -> DynamicMessage {
        let mut m = DynamicMessage::new(message("Reading"));
        let text = |s: &Option<String>| s.clone().map(Value::String);
        for (name, value) in [
            ("device", text(&self.device)),
            ("sensor", text(&self.sensor)),
            ("value", self.value.map(Value::F64)),
            ("unit", text(&self.unit)),
            ("seq", self.seq.map(Value::U64)),
            ("time_ms", self.time_ms.map(Value::U64)),
        ] {
            if let Some(v) = value {
                m.set_field_by_name(name, v);
            }
        }
        m
    }

    /// The reading encoded by prost.
    pub fn encode(&self) -> Vec<u8> {
        self.message().encode_to_vec()
    }
}

/// A `ReadingBatch` of `readings`, encoded by prost.
pub fn encode_batch(readings: &[ProtoReading]) -> Vec<u8> {
    let mut batch = DynamicMessage::new(message("ReadingBatch"));
    let list = readings.iter().map(|r| Value::Message(r.message())).collect();
    batch.set_field_by_name("readings", Value::List(list));
    batch.encode_to_vec()
}

/// Decodes `payload` as a `Reading` with prost, as a reference verdict: `None` if prost refuses it.
pub fn prost_decodes(payload: &[u8]) -> Option<DynamicMessage> {
    DynamicMessage::decode(message("Reading"), payload).ok()
}
