//! Fuzzing that runs in CI: property tests over arbitrary bytes, over mutated valid CBOR, JSON and
//! protobuf payloads, and over generated documents of every shape. Whatever the input, `decode`
//! returns (no panic, no hang: every parser is linear in the payload's length) either a reading
//! that satisfies every invariant of the readings ring or exactly one reason; the same document
//! gets the same verdict in CBOR and in JSON, and the same reading in protobuf as in CBOR. For
//! protobuf, prost (the reference decoder) is asked too: what it refuses, decoded refuses, and
//! what decoded accepts, prost reads with the same values.
//!
//! CI runs 1,500 cases per property, a few seconds in all. A long run, for example overnight:
//!
//! ```sh
//! PROPTEST_CASES=5000000 cargo test -p decoded --release --test fuzz
//! ```

mod support;

use ciborium::Value as Cv;
use decoded::{decode, Format, Reason};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::Config;
use records::{FixedText, Reading, DEVICE_MAX, SENSOR_MAX, UNIT_MAX};
use support::reference_proto::{prost_decodes, ProtoReading};

fn config() -> Config {
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 1_500;
    }
    config
}

/// Checks a verdict: a reading must be one aggd can trust.
fn check(verdict: &Result<Reading, Reason>) {
    if let Ok(r) = verdict {
        for (field, max, may_be_empty) in [
            (r.device().bytes(), DEVICE_MAX, false),
            (r.sensor().bytes(), SENSOR_MAX, false),
            (r.unit().bytes(), UNIT_MAX, true),
        ] {
            assert!(field.len() <= max && (may_be_empty || !field.is_empty()), "{r:?}");
            assert!(std::str::from_utf8(field).is_ok(), "{r:?}");
        }
        assert!(r.value.is_finite(), "{r:?}");
        assert_eq!((r.received_ms, r.source), (0, 0));
    }
}

fn decode_both(payload: &[u8]) {
    check(&decode(payload, Format::Cbor));
    check(&decode(payload, Format::Json));
    check_proto(payload);
}

/// Decodes as protobuf, checks the verdict, and holds it against prost's.
fn check_proto(payload: &[u8]) {
    let ours = decode(payload, Format::Protobuf);
    check(&ours);
    let reference = prost_decodes(payload);
    match (&ours, reference) {
        (Ok(r), Some(m)) => {
            let text = |name: &str| m.get_field_by_name(name).unwrap().as_str().unwrap().to_owned();
            let number = |name: &str| m.get_field_by_name(name).unwrap().as_u64().unwrap();
            assert_eq!(r.device().text(), text("device"));
            assert_eq!(r.sensor().text(), text("sensor"));
            assert_eq!(r.unit().text(), text("unit"));
            let value = m.get_field_by_name("value").unwrap().as_f64().unwrap();
            assert_eq!(r.value.to_bits(), value.to_bits());
            assert_eq!((r.seq, r.event_ms), (number("seq"), number("time_ms")));
        }
        (Ok(r), None) => panic!("prost refuses {payload:02x?}, decoded made {r:?}"),
        (Err(_), _) => {}
    }
}

/// A reading as a protobuf sender fills it: any text, any value (finite or not), optional
/// fields set or not.
fn proto_reading() -> impl Strategy<Value = ProtoReading> {
    let float = prop_oneof![
        any::<f64>(),
        (-1000i32..1000).prop_map(|x| f64::from(x) / 4.0),
        Just(0.0),
        Just(f64::NAN),
        Just(f64::INFINITY),
    ];
    (
        proptest::option::of(text(60)),
        proptest::option::of(text(40)),
        proptest::option::of(float),
        proptest::option::of(text(20)),
        proptest::option::of(any::<u64>()),
        proptest::option::of(any::<u64>()),
    )
        .prop_map(|(device, sensor, value, unit, seq, time_ms)| ProtoReading {
            device,
            sensor,
            value,
            unit,
            seq,
            time_ms,
        })
}

/// The CBOR document a protobuf reading means: proto3 leaves out empty strings and zeros, so an
/// empty device or sensor is absent, and the value is +0.0 unless set to something else.
fn as_cbor_document(p: &ProtoReading) -> Cv {
    let mut entries = Vec::new();
    let mut text = |key: &str, t: &Option<String>| {
        if let Some(t) = t.as_ref().filter(|t| !t.is_empty()) {
            entries.push((Cv::Text(key.into()), Cv::Text(t.clone())));
        }
    };
    text("d", &p.device);
    text("s", &p.sensor);
    text("u", &p.unit);
    // -0.0 equals the default too, so prost leaves it out and it reads as +0.0.
    let value = p.value.filter(|v| *v != 0.0).unwrap_or(0.0);
    entries.push((Cv::Text("v".into()), Cv::Float(value)));
    entries.extend(p.seq.map(|n| (Cv::Text("n".into()), Cv::Integer(n.into()))));
    entries.extend(p.time_ms.map(|t| (Cv::Text("t".into()), Cv::Integer(t.into()))));
    Cv::Map(entries)
}

fn cbor(value: &Cv) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(value, &mut out).unwrap();
    out
}

/// The JSON form of a value made only of text keys, text, numbers, booleans, null, arrays, maps.
fn json(value: &Cv) -> Vec<u8> {
    struct J<'a>(&'a Cv);
    impl serde::Serialize for J<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::{SerializeMap, SerializeSeq};
            match self.0 {
                Cv::Text(t) => s.serialize_str(t),
                Cv::Float(f) => s.serialize_f64(*f),
                Cv::Integer(i) => s.serialize_i128(i128::from(*i)),
                Cv::Bool(b) => s.serialize_bool(*b),
                Cv::Null => s.serialize_unit(),
                Cv::Array(a) => {
                    let mut seq = s.serialize_seq(Some(a.len()))?;
                    for x in a {
                        seq.serialize_element(&J(x))?;
                    }
                    seq.end()
                }
                Cv::Map(m) => {
                    let mut map = s.serialize_map(Some(m.len()))?;
                    for (k, v) in m {
                        map.serialize_entry(&J(k), &J(v))?;
                    }
                    map.end()
                }
                other => panic!("no JSON form for {other:?}"),
            }
        }
    }
    serde_json::to_vec(&J(value)).unwrap()
}

fn text(max_chars: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        vec(prop::char::range('a', 'f'), 0..max_chars),
        vec(any::<char>(), 0..max_chars),
    ]
    .prop_map(|chars| chars.into_iter().collect())
}

/// A number as a sensor sends it: integers of every range, floats of every CBOR width.
fn number() -> impl Strategy<Value = Cv> {
    prop_oneof![
        (-1000i32..1000).prop_map(|x| Cv::Float(f64::from(x) / 4.0)), // f16
        any::<f32>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| Cv::Float(f64::from(f))),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Cv::Float),
        any::<u64>().prop_map(|u| Cv::Integer(u.into())),
        any::<i64>().prop_map(|i| Cv::Integer(i.into())),
        any::<u64>().prop_map(|n| Cv::Integer((-1 - i128::from(n)).try_into().unwrap())),
        (0u64..30).prop_map(|u| Cv::Integer(u.into())),
    ]
}

/// Any JSON-representable value, nested a little.
fn value() -> impl Strategy<Value = Cv> {
    let leaf = prop_oneof![
        number(),
        text(60).prop_map(Cv::Text),
        Just(Cv::Null),
        any::<bool>().prop_map(Cv::Bool)
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Cv::Array),
            vec((text(3), inner), 0..4).prop_map(|kv| Cv::Map(kv.into_iter().map(|(k, v)| (Cv::Text(k), v)).collect())),
        ]
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec!["d", "s", "v", "u", "n", "t"]).prop_map(str::to_owned),
        1 => text(3),
    ]
}

/// A document of any shape: known and unknown keys (perhaps repeated or missing) with values of
/// any type.
fn any_document() -> impl Strategy<Value = Cv> {
    vec((key(), value()), 0..8).prop_map(|kv| Cv::Map(kv.into_iter().map(|(k, v)| (Cv::Text(k), v)).collect()))
}

/// Text of 1..=max bytes.
fn id(max: usize) -> impl Strategy<Value = String> {
    text(max).prop_map(move |mut s| {
        while s.len() > max {
            s.pop();
        }
        if s.is_empty() {
            s.push('x');
        }
        s
    })
}

/// A valid document, its keys in any order with unknown keys mixed in, and the reading it makes.
fn valid_document() -> impl Strategy<Value = (Cv, Expected)> {
    (
        id(DEVICE_MAX),
        id(SENSOR_MAX),
        number(),
        proptest::option::of(text(UNIT_MAX).prop_map(|mut u| {
            while u.len() > UNIT_MAX {
                u.pop();
            }
            u
        })),
        proptest::option::of(any::<u64>()),
        proptest::option::of(any::<u64>()),
        vec((text(4).prop_map(|k| format!("x{k}")), value()), 0..3),
    )
        .prop_flat_map(|(d, s, v, u, n, t, extra)| {
            let value = match &v {
                Cv::Float(f) => *f,
                Cv::Integer(i) => i128::from(*i) as f64,
                _ => unreachable!(),
            };
            let expected = Expected {
                device: d.clone(),
                sensor: s.clone(),
                unit: u.clone().unwrap_or_default(),
                value,
                seq: n.unwrap_or(0),
                event_ms: t.unwrap_or(0),
            };
            let mut entries = vec![
                (Cv::Text("d".into()), Cv::Text(d)),
                (Cv::Text("s".into()), Cv::Text(s)),
                (Cv::Text("v".into()), v),
            ];
            entries.extend(u.map(|u| (Cv::Text("u".into()), Cv::Text(u))));
            entries.extend(n.map(|n| (Cv::Text("n".into()), Cv::Integer(n.into()))));
            entries.extend(t.map(|t| (Cv::Text("t".into()), Cv::Integer(t.into()))));
            entries.extend(extra.into_iter().map(|(k, v)| (Cv::Text(k), v)));
            (Just(entries).prop_shuffle(), Just(expected))
        })
        .prop_map(|(entries, expected)| (Cv::Map(entries), expected))
}

#[derive(Clone, Debug)]
struct Expected {
    device: String,
    sensor: String,
    unit: String,
    value: f64,
    seq: u64,
    event_ms: u64,
}

fn assert_reading(r: &Reading, e: &Expected) {
    assert_eq!(r.device().text(), e.device);
    assert_eq!(r.sensor().text(), e.sensor);
    assert_eq!(r.unit().text(), e.unit);
    assert_eq!(r.value.to_bits(), e.value.to_bits(), "{} vs {}", r.value, e.value);
    assert_eq!((r.seq, r.event_ms), (e.seq, e.event_ms));
}

/// Edits to a payload: overwrite, insert or delete a byte, or cut the payload short.
#[derive(Clone, Debug)]
enum Edit {
    Set(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
        (
            any::<usize>(),
            prop::sample::select(vec![
                0x00, 0x18, 0x1b, 0x1f, 0x3b, 0x7f, 0x9f, 0xbf, 0xf9, 0xfb, 0xff, b'"', b'{', b'}', b'[', b',', b':',
                b'\\'
            ])
        )
            .prop_map(|(i, b)| Edit::Insert(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
        any::<usize>().prop_map(Edit::Delete),
        any::<usize>().prop_map(Edit::Truncate),
    ];
    vec(edit, 1..6)
}

fn apply(mut payload: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for edit in edits {
        let len = payload.len();
        match *edit {
            Edit::Set(i, b) if len > 0 => payload[i % len] = b,
            Edit::Insert(i, b) => payload.insert(i % (len + 1), b),
            Edit::Delete(i) if len > 0 => {
                payload.remove(i % len);
            }
            Edit::Truncate(i) => payload.truncate(i % (len + 1)),
            _ => {}
        }
    }
    payload
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes(bytes in vec(any::<u8>(), 0..400)) {
        decode_both(&bytes);
    }

    #[test]
    fn arbitrary_bytes_after_a_plausible_start(start in prop::sample::select(vec![0xa1u8, 0xa3, 0xa6, 0xb8, 0xbb, b'{']), rest in vec(any::<u8>(), 0..200)) {
        let mut bytes = vec![start];
        bytes.extend(rest);
        decode_both(&bytes);
    }

    #[test]
    fn valid_documents_round_trip_in_both_formats((doc, expected) in valid_document()) {
        assert_reading(&decode(&cbor(&doc), Format::Cbor).unwrap(), &expected);
        assert_reading(&decode(&json(&doc), Format::Json).unwrap(), &expected);
    }

    #[test]
    fn mutated_valid_payloads((doc, _) in valid_document(), edits in edits()) {
        decode_both(&apply(cbor(&doc), &edits));
        decode_both(&apply(json(&doc), &edits));
    }

    #[test]
    fn protobuf_readings_get_the_verdict_of_the_same_cbor_document(p in proto_reading()) {
        let payload = p.encode();
        check_proto(&payload);
        let ours = decode(&payload, Format::Protobuf);
        let same = decode(&cbor(&as_cbor_document(&p)), Format::Cbor);
        match (&ours, &same) {
            (Ok(a), Ok(b)) => prop_assert_eq!(bytemuck_bytes(a), bytemuck_bytes(b)),
            _ => prop_assert_eq!(ours.as_ref().err(), same.as_ref().err(), "{:?}", p),
        }
    }

    #[test]
    fn mutated_protobuf_readings(p in proto_reading(), edits in edits()) {
        decode_both(&apply(p.encode(), &edits));
    }

    #[test]
    fn arbitrary_bytes_after_a_protobuf_tag(start in prop::sample::select(vec![0x0au8, 0x12, 0x19, 0x28, 0x3b, 0x4a]), rest in vec(any::<u8>(), 0..200)) {
        let mut bytes = vec![start];
        bytes.extend(rest);
        check_proto(&bytes);
    }

    #[test]
    fn both_formats_agree_on_any_document(doc in any_document()) {
        let c = decode(&cbor(&doc), Format::Cbor);
        let j = decode(&json(&doc), Format::Json);
        check(&c);
        check(&j);
        match (&c, &j) {
            (Ok(a), Ok(b)) => prop_assert_eq!(bytemuck_bytes(a), bytemuck_bytes(b)),
            _ => prop_assert_eq!(c.as_ref().err(), j.as_ref().err(), "{:?}", doc),
        }
    }
}

fn bytemuck_bytes(r: &Reading) -> Vec<u8> {
    shm_ring::bytemuck::bytes_of(r).to_vec()
}
