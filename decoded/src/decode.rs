//! A payload in, a [`Reading`] or exactly one [`Reason`] out: parse with the format's parser,
//! then validate the [`Fields`] the same way for every format (CBOR, JSON, protobuf).
//!
//! The document: `d` device id (text), `s` sensor (text), `v` value (integer or float), and
//! optionally `u` unit (text), `n` sequence number (unsigned), `t` event time in ms (unsigned).
//! `null` for an optional key means absent. Checks, in the order of [`Reason`]'s precedence:
//! 1. the parser's verdict (`malformed`);
//! 2. `d`, `s` and `v` present (`missing_field`);
//! 3. every known key of the right type (`bad_type`);
//! 4. device and sensor non-empty (`empty_id`);
//! 5. device ≤ 48, sensor ≤ 32, unit ≤ 16 bytes (`id_too_long`);
//! 6. the value finite (`non_finite`).
//!
//! Integers become `f64` values (rounded to the nearest `f64` beyond 2^53).

use records::{Reading, DEVICE_MAX, SENSOR_MAX, UNIT_MAX};

use crate::fields::{Fields, Text, Value};
use crate::reason::Reason;
use crate::{cbor, json, proto};

/// How a payload is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// CBOR (RFC 8949).
    Cbor,
    /// JSON (RFC 8259).
    Json,
    /// A protobuf `telemetry.v1.Reading` (`proto/telemetry/v1/reading.proto`).
    Protobuf,
}

/// Decodes one payload. The reading's `received_ms` and `source` are 0: they describe the raw
/// record, which the caller fills in.
///
/// ```
/// use decoded::{decode, Format, Reason};
/// use records::FixedText;
/// let r = decode(br#"{"d":"dev1","s":"temp","v":21.5,"u":"C","n":7,"t":1700000000000}"#, Format::Json).unwrap();
/// assert_eq!((r.device().text(), r.sensor().text(), r.unit().text()), ("dev1".into(), "temp".into(), "C".into()));
/// assert_eq!((r.value, r.seq, r.event_ms), (21.5, 7, 1_700_000_000_000));
/// assert_eq!(decode(br#"{"d":"dev1","s":"temp"}"#, Format::Json).unwrap_err(), Reason::MissingField);
/// ```
pub fn decode(payload: &[u8], format: Format) -> Result<Reading, Reason> {
    let fields = match format {
        Format::Cbor => cbor::parse(payload)?,
        Format::Json => json::parse(payload)?,
        Format::Protobuf => proto::parse(payload)?,
    };
    validate(&fields)
}

/// Turns parsed fields into a reading, or the one reason they do not make one.
pub fn validate(f: &Fields<'_>) -> Result<Reading, Reason> {
    let (Some(d), Some(s), Some(v)) = (&f.device, &f.sensor, &f.value) else {
        return Err(Reason::MissingField);
    };
    let device = text(d)?;
    let sensor = text(s)?;
    let value = number(v)?;
    let unit = optional(&f.unit, text)?.unwrap_or(Text::Borrowed(""));
    let seq = optional(&f.seq, unsigned)?.unwrap_or(0);
    let event_ms = optional(&f.time, unsigned)?.unwrap_or(0);

    let (device, sensor, unit) = (device.bytes(), sensor.bytes(), unit.bytes());
    if device.is_some_and(<[u8]>::is_empty) || sensor.is_some_and(<[u8]>::is_empty) {
        return Err(Reason::EmptyId);
    }
    let (Some(device), Some(sensor), Some(unit)) =
        (fits(device, DEVICE_MAX), fits(sensor, SENSOR_MAX), fits(unit, UNIT_MAX))
    else {
        return Err(Reason::IdTooLong);
    };
    if !value.is_finite() {
        return Err(Reason::NonFinite);
    }
    let mut reading = Reading::new(device, sensor, unit, value, seq).ok_or(Reason::IdTooLong)?;
    reading.event_ms = event_ms;
    Ok(reading)
}

/// The text if it fits in `max` bytes.
fn fits(t: Option<&[u8]>, max: usize) -> Option<&[u8]> {
    t.filter(|b| b.len() <= max)
}

fn text<'a>(v: &Value<'a>) -> Result<Text<'a>, Reason> {
    match v {
        Value::Text(t) => Ok(*t),
        _ => Err(Reason::BadType),
    }
}

fn number(v: &Value<'_>) -> Result<f64, Reason> {
    match *v {
        Value::Float(f) => Ok(f),
        Value::Uint(u) => Ok(u as f64),
        // -1 - n exactly in i128, then rounded once (computing in f64 would round twice).
        Value::Nint(n) => Ok(-((i128::from(n) + 1) as f64)),
        _ => Err(Reason::BadType),
    }
}

fn unsigned(v: &Value<'_>) -> Result<u64, Reason> {
    match *v {
        Value::Uint(u) => Ok(u),
        _ => Err(Reason::BadType),
    }
}

/// An optional key: absent or `null` is `None`.
fn optional<'a, T>(v: &Option<Value<'a>>, f: impl Fn(&Value<'a>) -> Result<T, Reason>) -> Result<Option<T>, Reason> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => f(v).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use records::FixedText;

    use super::*;

    /// A document as a CBOR map built with ciborium's own value type, so that keys and values
    /// can be of any type and any may be left out.
    fn cbor(entries: &[(&str, ciborium::Value)]) -> Vec<u8> {
        let map = ciborium::Value::Map(
            entries
                .iter()
                .map(|(k, v)| (ciborium::Value::Text((*k).into()), v.clone()))
                .collect(),
        );
        let mut out = Vec::new();
        ciborium::ser::into_writer(&map, &mut out).unwrap();
        out
    }

    fn t(s: &str) -> ciborium::Value {
        ciborium::Value::Text(s.into())
    }

    fn f(x: f64) -> ciborium::Value {
        ciborium::Value::Float(x)
    }

    fn i(x: i128) -> ciborium::Value {
        ciborium::Value::Integer(x.try_into().unwrap())
    }

    fn base(v: ciborium::Value) -> Vec<(&'static str, ciborium::Value)> {
        vec![("d", t("dev1")), ("s", t("temp")), ("v", v)]
    }

    fn both(entries: &[(&str, ciborium::Value)]) -> [Result<Reading, Reason>; 2] {
        let json = serde_json::to_vec(
            &entries
                .iter()
                .map(|(k, v)| (k.to_string(), to_json(v)))
                .collect::<BTreeMap<_, _>>(),
        )
        .unwrap();
        [decode(&cbor(entries), Format::Cbor), decode(&json, Format::Json)]
    }

    /// The reason each format gives, or `None` where it made a reading.
    fn errs(entries: &[(&str, ciborium::Value)]) -> [Option<Reason>; 2] {
        both(entries).map(Result::err)
    }

    fn to_json(v: &ciborium::Value) -> serde_json_value::V {
        serde_json_value::V(v.clone())
    }

    /// Serializes a ciborium value as JSON (text, numbers, null, bool, arrays, maps with text keys).
    mod serde_json_value {
        pub struct V(pub ciborium::Value);
        impl serde::Serialize for V {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use serde::ser::{SerializeMap, SerializeSeq};
                match &self.0 {
                    ciborium::Value::Text(t) => s.serialize_str(t),
                    ciborium::Value::Float(f) => s.serialize_f64(*f),
                    ciborium::Value::Integer(i) => s.serialize_i128(i128::from(*i)),
                    ciborium::Value::Bool(b) => s.serialize_bool(*b),
                    ciborium::Value::Null => s.serialize_unit(),
                    ciborium::Value::Array(a) => {
                        let mut seq = s.serialize_seq(Some(a.len()))?;
                        for x in a {
                            seq.serialize_element(&V(x.clone()))?;
                        }
                        seq.end()
                    }
                    ciborium::Value::Map(m) => {
                        let mut map = s.serialize_map(Some(m.len()))?;
                        for (k, v) in m {
                            map.serialize_entry(&V(k.clone()), &V(v.clone()))?;
                        }
                        map.end()
                    }
                    other => panic!("no JSON form for {other:?}"),
                }
            }
        }
    }

    #[test]
    fn a_full_document_in_both_formats() {
        let mut doc = base(f(21.5));
        doc.extend([
            ("u", t("C")),
            ("n", i(7)),
            ("t", i(1_700_000_000_123)),
            ("extra", t("ignored")),
        ]);
        for r in both(&doc) {
            let r = r.unwrap();
            assert_eq!(r.device().text(), "dev1");
            assert_eq!(r.sensor().text(), "temp");
            assert_eq!(r.unit().text(), "C");
            assert_eq!(
                (r.value, r.seq, r.event_ms, r.received_ms, r.source),
                (21.5, 7, 1_700_000_000_123, 0, 0)
            );
        }
    }

    #[test]
    fn optional_keys_default_to_empty_and_zero_and_null_is_absent() {
        for doc in [base(i(3)), {
            let mut d = base(i(3));
            d.extend([
                ("u", ciborium::Value::Null),
                ("n", ciborium::Value::Null),
                ("t", ciborium::Value::Null),
            ]);
            d
        }] {
            for r in both(&doc) {
                let r = r.unwrap();
                assert_eq!((r.unit().text().as_ref(), r.value, r.seq, r.event_ms), ("", 3.0, 0, 0));
            }
        }
    }

    #[test]
    fn values_of_every_cbor_width_and_integers() {
        for (v, want) in [
            (f(21.5), 21.5),                           // f16
            (f(f64::from(1.1f32)), f64::from(1.1f32)), // f32
            (f(0.1), 0.1),                             // f64
            (f(-0.0), -0.0),
            (f(65504.0), 65504.0),                           // largest f16
            (f(5.960464477539063e-8), 5.960464477539063e-8), // smallest f16 subnormal
            (i(0), 0.0),
            (i(-40), -40.0),
            (i(1 << 40), (1u64 << 40) as f64),
            (i(u64::MAX.into()), u64::MAX as f64),
            (i(-(1i128 << 64)), -18446744073709551616.0),
            // -(2^62 + 1536): -1 - n rounded twice in f64 would give -(2^62 + 1024).
            (i(-(1i128 << 62) - 1536), -((1u64 << 62) as f64 + 2048.0)),
        ] {
            let [c, j] = both(&base(v.clone()));
            assert_eq!(c.unwrap().value.to_bits(), want.to_bits(), "cbor {v:?}");
            if !matches!(v, ciborium::Value::Integer(x) if i128::from(x) < i128::from(i64::MIN)) {
                assert_eq!(j.unwrap().value.to_bits(), want.to_bits(), "json {v:?}");
            }
        }
    }

    #[test]
    fn missing_fields() {
        for drop in ["d", "s", "v"] {
            let doc: Vec<_> = base(f(1.0)).into_iter().filter(|(k, _)| *k != drop).collect();
            assert_eq!(
                errs(&doc),
                [Some(Reason::MissingField), Some(Reason::MissingField)],
                "without {drop}"
            );
        }
        assert_eq!(decode(&cbor(&[]), Format::Cbor).unwrap_err(), Reason::MissingField);
        assert_eq!(decode(b"{}", Format::Json).unwrap_err(), Reason::MissingField);
        // Missing wins over a wrong type elsewhere.
        assert_eq!(
            errs(&[("d", i(1)), ("v", f(1.0))]),
            [Some(Reason::MissingField), Some(Reason::MissingField)]
        );
    }

    #[test]
    fn wrong_types() {
        let arr = ciborium::Value::Array(vec![i(1)]);
        let cases: Vec<Vec<(&str, ciborium::Value)>> = vec![
            base(t("21.5")),
            base(ciborium::Value::Bool(true)),
            base(ciborium::Value::Null),
            base(arr.clone()),
            vec![("d", i(1)), ("s", t("temp")), ("v", f(1.0))],
            vec![("d", t("dev1")), ("s", arr.clone()), ("v", f(1.0))],
            vec![("d", ciborium::Value::Null), ("s", t("temp")), ("v", f(1.0))],
            [base(f(1.0)), vec![("u", i(1))]].concat(),
            [base(f(1.0)), vec![("n", i(-1))]].concat(),
            [base(f(1.0)), vec![("n", f(1.5))]].concat(),
            [base(f(1.0)), vec![("n", t("1"))]].concat(),
            [base(f(1.0)), vec![("t", f(1.0))]].concat(),
            // A wrong type wins over an empty id and a non-finite value.
            vec![("d", t("")), ("s", t("temp")), ("v", t("x"))],
        ];
        for doc in cases {
            assert_eq!(errs(&doc), [Some(Reason::BadType), Some(Reason::BadType)], "{doc:?}");
        }
        // CBOR-only types.
        for v in [
            ciborium::Value::Bytes(vec![1]),
            ciborium::Value::Tag(1, Box::new(f(1.0))),
            ciborium::Value::Map(vec![]),
        ] {
            assert_eq!(
                decode(&cbor(&base(v.clone())), Format::Cbor).unwrap_err(),
                Reason::BadType,
                "{v:?}"
            );
        }
        // An f16 `n` is still a float.
        assert_eq!(
            decode(&cbor(&[base(f(1.0)), vec![("n", f(2.0))]].concat()), Format::Cbor).unwrap_err(),
            Reason::BadType
        );
    }

    #[test]
    fn non_finite_values() {
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let payload = cbor(&base(f(v)));
            assert!(payload.len() < 25, "ciborium writes {v} as f16: {payload:02x?}");
            assert_eq!(decode(&payload, Format::Cbor).unwrap_err(), Reason::NonFinite, "{v}");
        }
        // f32 and f64 encodings of infinity and NaN.
        for item in [
            &[0xfa, 0x7f, 0x80, 0, 0][..],
            &[0xfa, 0x7f, 0xc0, 0, 1],
            &[0xfb, 0xff, 0xf0, 0, 0, 0, 0, 0, 0],
            &[0xfb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 1],
        ] {
            let mut payload = cbor(&[("d", t("dev1")), ("s", t("temp"))]);
            payload[0] += 1;
            payload.extend_from_slice(&[0x61, b'v']);
            payload.extend_from_slice(item);
            assert_eq!(
                decode(&payload, Format::Cbor).unwrap_err(),
                Reason::NonFinite,
                "{item:02x?}"
            );
        }
    }

    #[test]
    fn id_lengths_at_and_beyond_the_limits() {
        let at = [
            ("d", t(&"d".repeat(48))),
            ("s", t(&"s".repeat(32))),
            ("v", f(1.0)),
            ("u", t(&"u".repeat(16))),
        ];
        for r in both(&at) {
            let r = r.unwrap();
            assert_eq!(
                (
                    r.device().bytes().len(),
                    r.sensor().bytes().len(),
                    r.unit().bytes().len()
                ),
                (48, 32, 16)
            );
        }
        for (key, len) in [("d", 49), ("s", 33), ("u", 17), ("d", 300)] {
            let doc: Vec<_> = at
                .iter()
                .map(|(k, v)| (*k, if *k == key { t(&"x".repeat(len)) } else { v.clone() }))
                .collect();
            assert_eq!(
                errs(&doc),
                [Some(Reason::IdTooLong), Some(Reason::IdTooLong)],
                "{key} {len}"
            );
        }
        // Multi-byte characters count in bytes: 17 × 'é' is 34 bytes.
        assert_eq!(
            errs(&[("d", t("dev")), ("s", t(&"é".repeat(17))), ("v", f(1.0))])[0],
            Some(Reason::IdTooLong)
        );
        // Escaped JSON text too long to keep inline.
        let escaped = format!(r#"{{"d":"\u0041{}","s":"temp","v":1}}"#, "x".repeat(100));
        assert_eq!(decode(escaped.as_bytes(), Format::Json).unwrap_err(), Reason::IdTooLong);
        let escaped = format!(r#"{{"d":"\u0041{}","s":"temp","v":1}}"#, "x".repeat(47));
        assert_eq!(
            decode(escaped.as_bytes(), Format::Json).unwrap().device().bytes().len(),
            48
        );
    }

    #[test]
    fn empty_ids() {
        for doc in [
            vec![("d", t("")), ("s", t("temp")), ("v", f(1.0))],
            vec![("d", t("dev1")), ("s", t("")), ("v", f(1.0))],
            // Empty wins over too long and non-finite.
            vec![("d", t("")), ("s", t(&"s".repeat(40))), ("v", f(f64::NAN))],
        ] {
            assert_eq!(errs(&doc)[0], Some(Reason::EmptyId), "{doc:?}");
        }
        assert_eq!(
            decode(br#"{"d":"","s":"temp","v":1}"#, Format::Json).unwrap_err(),
            Reason::EmptyId
        );
        // An empty unit is fine.
        assert!(both(&[base(f(1.0)), vec![("u", t(""))]].concat())
            .iter()
            .all(Result::is_ok));
    }

    #[test]
    fn too_long_wins_over_non_finite() {
        let doc = [("d", t(&"d".repeat(49))), ("s", t("temp")), ("v", f(f64::INFINITY))];
        assert_eq!(decode(&cbor(&doc), Format::Cbor).unwrap_err(), Reason::IdTooLong);
    }

    #[test]
    fn the_wrong_parser_says_malformed() {
        let doc = base(f(1.0));
        assert_eq!(decode(&cbor(&doc), Format::Json).unwrap_err(), Reason::Malformed);
        assert_eq!(
            decode(br#"{"d":"dev1","s":"temp","v":1}"#, Format::Cbor).unwrap_err(),
            Reason::Malformed
        );
    }
}
