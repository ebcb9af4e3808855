//! Protobuf readings from an encoder nobody here wrote: prost (through prost-reflect's dynamic
//! messages of the shipped `reading.proto`, compiled by protox). Every reason of the issue's
//! list is produced here from real encoder output: unknown fields skipped, wrong wire type,
//! truncated varint, length past the end, missing device/sensor, non-finite value, ids too long,
//! empty message. Schema evolution (a newer sender with more fields, an older one with other
//! types) is tested with other `.proto` files compiled the same way.

mod support;

use decoded::{decode, Format, Reason};
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, Value};
use records::FixedText;
use support::reference_proto::{encode_batch, message, prost_decodes, ProtoReading};
use test_brokers::TempDir;

fn full() -> ProtoReading {
    ProtoReading {
        unit: Some("C".into()),
        seq: Some(7),
        time_ms: Some(1_700_000_000_123),
        ..ProtoReading::new("dev00001", "sen002", 21.5)
    }
}

#[test]
fn the_schema_is_the_issues() {
    let reading = message("Reading");
    let fields: Vec<(u32, String, String)> = reading
        .fields()
        .map(|f| (f.number(), f.name().to_owned(), format!("{:?}", f.kind())))
        .collect();
    assert_eq!(
        fields,
        [
            (1, "device", "string"),
            (2, "sensor", "string"),
            (3, "value", "double"),
            (4, "unit", "string"),
            (5, "seq", "uint64"),
            (6, "time_ms", "uint64"),
        ]
        .map(|(n, name, kind)| (n, name.to_owned(), kind.to_owned()))
    );
    let batch = message("ReadingBatch").get_field(1).unwrap();
    assert!(batch.is_list() && batch.name() == "readings");
}

#[test]
fn a_full_reading() {
    let r = decode(&full().encode(), Format::Protobuf).unwrap();
    assert_eq!(
        (r.device().text(), r.sensor().text(), r.unit().text()),
        ("dev00001".into(), "sen002".into(), "C".into())
    );
    assert_eq!(
        (r.value, r.seq, r.event_ms, r.received_ms, r.source),
        (21.5, 7, 1_700_000_000_123, 0, 0)
    );
}

#[test]
fn values_and_integers_of_every_size() {
    for v in [0.1, -40.0, 1e300, -1e-300, f64::MIN_POSITIVE, 5e-324, f64::MAX, -0.5] {
        let r = decode(&ProtoReading::new("d", "s", v).encode(), Format::Protobuf).unwrap();
        assert_eq!(r.value.to_bits(), v.to_bits(), "{v}");
    }
    for n in [0, 1, 127, 128, 16_383, 16_384, u64::from(u32::MAX), 1 << 63, u64::MAX] {
        let p = ProtoReading {
            seq: Some(n),
            time_ms: Some(n),
            ..ProtoReading::new("d", "s", 1.0)
        };
        let r = decode(&p.encode(), Format::Protobuf).unwrap();
        assert_eq!((r.seq, r.event_ms), (n, n));
    }
}

#[test]
fn prost_leaves_out_a_zero_value_and_it_reads_as_zero() {
    // proto3 writes no field holding its default: a reading of 0.0 has no field 3 on the wire.
    // Counting that as missing_field would drop every legitimate zero, so absent means 0.0.
    for zero in [0.0, -0.0] {
        let payload = ProtoReading::new("dev1", "temp", zero).encode();
        let without_value = ProtoReading {
            value: None,
            ..ProtoReading::new("dev1", "temp", 0.0)
        };
        assert_eq!(payload, without_value.encode(), "prost omits {zero}");
        assert_eq!(decode(&payload, Format::Protobuf).unwrap().value, 0.0);
    }
}

#[test]
fn optional_fields_default_to_empty_and_zero() {
    let r = decode(&ProtoReading::new("dev1", "temp", 3.0).encode(), Format::Protobuf).unwrap();
    assert_eq!((r.unit().text().as_ref(), r.value, r.seq, r.event_ms), ("", 3.0, 0, 0));
}

#[test]
fn missing_device_or_sensor_and_the_empty_message() {
    let no_device = ProtoReading { device: None, ..full() };
    let no_sensor = ProtoReading { sensor: None, ..full() };
    // An empty string is what an absent one looks like: prost does not write it.
    let empty_device = ProtoReading {
        device: Some(String::new()),
        ..full()
    };
    assert_eq!(empty_device.encode(), no_device.encode());
    for p in [no_device, no_sensor, empty_device, ProtoReading::default()] {
        assert_eq!(
            decode(&p.encode(), Format::Protobuf).unwrap_err(),
            Reason::MissingField,
            "{p:?}"
        );
    }
    assert!(ProtoReading::default().encode().is_empty());
    assert_eq!(decode(b"", Format::Protobuf).unwrap_err(), Reason::MissingField);
}

#[test]
fn non_finite_values() {
    for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let p = ProtoReading::new("dev1", "temp", v).encode();
        assert_eq!(decode(&p, Format::Protobuf).unwrap_err(), Reason::NonFinite, "{v}");
    }
}

#[test]
fn id_lengths_at_and_beyond_the_limits() {
    let at = ProtoReading {
        unit: Some("u".repeat(16)),
        ..ProtoReading::new(&"d".repeat(48), &"s".repeat(32), 1.0)
    };
    let r = decode(&at.encode(), Format::Protobuf).unwrap();
    assert_eq!(
        (
            r.device().bytes().len(),
            r.sensor().bytes().len(),
            r.unit().bytes().len()
        ),
        (48, 32, 16)
    );
    let long = "x".repeat(300);
    for p in [
        ProtoReading {
            device: Some("d".repeat(49)),
            ..at.clone()
        },
        ProtoReading {
            sensor: Some("é".repeat(17)),
            ..at.clone()
        },
        ProtoReading {
            unit: Some("u".repeat(17)),
            ..at.clone()
        },
        ProtoReading {
            device: Some(long),
            value: Some(f64::NAN),
            ..at.clone()
        },
    ] {
        assert_eq!(
            decode(&p.encode(), Format::Protobuf).unwrap_err(),
            Reason::IdTooLong,
            "{p:?}"
        );
    }
}

#[test]
fn every_truncation_is_malformed_or_a_shorter_valid_message() {
    let payload = full().encode();
    let mut boundaries = 0;
    for len in 0..payload.len() {
        let cut = &payload[..len];
        match prost_decodes(cut) {
            // A cut between two fields is a valid message with fewer fields, for prost and us.
            Some(_) => {
                boundaries += 1;
                assert!(decoded::proto::parse(cut).is_ok(), "len {len}");
            }
            // A cut inside a tag, a varint (truncated), a length (past the end) or a double.
            None => assert_eq!(
                decode(cut, Format::Protobuf).unwrap_err(),
                Reason::Malformed,
                "len {len}"
            ),
        }
    }
    assert_eq!(
        boundaries, 6,
        "the empty prefix and the five after each field but the last"
    );
}

#[test]
fn a_length_past_the_end_and_a_truncated_varint() {
    let mut payload = full().encode();
    // device's length byte (after tag 0x0a) claims more than is there.
    assert_eq!(payload[0], 0x0a);
    payload[1] = 0x7f;
    assert!(prost_decodes(&payload).is_none());
    assert_eq!(decode(&payload, Format::Protobuf).unwrap_err(), Reason::Malformed);
    // seq as the last field, its varint cut before its last byte.
    let p = ProtoReading {
        seq: Some(u64::MAX),
        ..ProtoReading::new("d", "s", 1.0)
    }
    .encode();
    assert_eq!(p[p.len() - 11], 0x28);
    let cut = &p[..p.len() - 1];
    assert!(prost_decodes(cut).is_none());
    assert_eq!(decode(cut, Format::Protobuf).unwrap_err(), Reason::Malformed);
}

/// Compiles `source` as `telemetry/v1/reading.proto` in a scratch include directory.
fn other_schema(source: &str) -> DescriptorPool {
    let dir = TempDir::new("decoded-proto-schema");
    let file = dir.path().join("telemetry/v1/reading.proto");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, source).unwrap();
    let set = protox::compile(["telemetry/v1/reading.proto"], [dir.path()]).unwrap();
    DescriptorPool::from_file_descriptor_set(set).unwrap()
}

#[test]
fn a_newer_senders_unknown_fields_are_skipped() {
    let pool = other_schema(
        r#"syntax = "proto3";
        package telemetry.v1;
        message Location { double lat = 1; double lon = 2; }
        message Reading {
          string note = 7;
          string device = 1; string sensor = 2; double value = 3; string unit = 4;
          uint64 seq = 5; uint64 time_ms = 6;
          Location where = 8; fixed32 crc = 9; repeated sint64 history = 10; bytes raw = 11;
          float quality = 536870911;
        }"#,
    );
    let desc = pool.get_message_by_name("telemetry.v1.Reading").unwrap();
    let location = pool.get_message_by_name("telemetry.v1.Location").unwrap();
    let mut m = DynamicMessage::decode(desc, &full().encode()[..]).unwrap();
    let mut loc = DynamicMessage::new(location);
    loc.set_field_by_name("lat", Value::F64(48.1));
    m.set_field_by_name("note", Value::String("x".repeat(200)));
    m.set_field_by_name("where", Value::Message(loc));
    m.set_field_by_name("crc", Value::U32(0xdead_beef));
    m.set_field_by_name("history", Value::List(vec![Value::I64(-1), Value::I64(i64::MIN)]));
    m.set_field_by_name("raw", Value::Bytes(vec![0xff, 0xfe].into()));
    m.set_field_by_name("quality", Value::F32(0.5));
    let payload = m.encode_to_vec();
    assert!(payload.len() > full().encode().len() + 200);
    let r = decode(&payload, Format::Protobuf).unwrap();
    assert_eq!((r.device().text(), r.value, r.seq), ("dev00001".into(), 21.5, 7));
}

#[test]
fn an_older_senders_wrong_wire_types_are_bad_type() {
    // Field numbers reused with other types: each one is a wire type the schema does not expect.
    for (decl, value) in [
        ("sint64 value = 3;", Value::I64(-3)),
        ("float value = 3;", Value::F32(1.5)),
        ("string value = 3;", Value::String("21.5".into())),
        ("fixed64 seq = 5;", Value::U64(9)),
        ("string time_ms = 6;", Value::String("now".into())),
        ("double unit = 4;", Value::F64(1.0)),
        (
            "repeated double value = 3;",
            Value::List(vec![Value::F64(1.0), Value::F64(2.0)]),
        ),
    ] {
        let pool = other_schema(&format!(
            r#"syntax = "proto3"; package telemetry.v1;
            message Reading {{ string device = 1; string sensor = 2; {decl} }}"#
        ));
        let desc = pool.get_message_by_name("telemetry.v1.Reading").unwrap();
        let field = desc.fields().find(|f| f.number() > 2).unwrap();
        let mut m = DynamicMessage::new(desc);
        m.set_field_by_name("device", Value::String("dev1".into()));
        m.set_field_by_name("sensor", Value::String("temp".into()));
        m.set_field(&field, value);
        let payload = m.encode_to_vec();
        assert_eq!(
            decode(&payload, Format::Protobuf).unwrap_err(),
            Reason::BadType,
            "{decl}"
        );
        // prost refuses it too.
        assert!(prost_decodes(&payload).is_none(), "{decl}");
    }
}

#[test]
fn a_batch_given_as_one_reading_is_counted_not_split() {
    // decoded makes one reading of one raw record; batches are split by the source. A
    // ReadingBatch over MQTT reads as a Reading whose device (field 1) holds the first item's
    // bytes: malformed if they are not UTF-8 (a double's bytes rarely are), else, with no field 2,
    // missing_field. Either way it is refused and counted, never taken for a reading.
    let batch = encode_batch(&[full(), full()]);
    assert_eq!(decode(&batch, Format::Protobuf).unwrap_err(), Reason::Malformed);
    let ascii_only = ProtoReading::new("dev1", "temp", 0.0);
    let batch = encode_batch(&[ascii_only.clone(), ascii_only]);
    assert_eq!(decode(&batch, Format::Protobuf).unwrap_err(), Reason::MissingField);
}

#[test]
fn cbor_and_json_given_as_protobuf_are_refused() {
    let json = br#"{"d":"dev1","s":"temp","v":1}"#;
    assert!(decode(json, Format::Protobuf).is_err());
    let cbor = [0xa1, 0x61, b'v', 0x01];
    assert!(decode(&cbor, Format::Protobuf).is_err());
}
