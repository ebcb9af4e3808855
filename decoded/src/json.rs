//! The JSON form of the reading document, `{"d": "dev1", "s": "temp", "v": 21.5, ...}`, parsed
//! with serde_json straight into [`Fields`]: keys are matched as they stream past, unknown values
//! are skipped with [`IgnoredAny`], and text borrows the payload.
//!
//! - Any error serde_json reports is [`Reason::Malformed`]: invalid JSON, a top level that is not
//!   an object, a duplicate known key, bytes other than whitespace after the object, and a number
//!   out of `f64`'s range (`1e400`: JSON cannot express infinity, so such a number is an encoding
//!   error rather than a non-finite value).
//! - Nesting: unknown values, and the insides of arrays and objects given for known keys, are
//!   skipped by serde_json's iterative skipper (one byte per open level, in its scratch buffer),
//!   never by recursion, so depth costs no stack and time stays linear in the payload's length.
//! - Allocation: none for a valid document whose strings have no escapes and whose unknown values
//!   nest at most one level. An escaped string (`"d\u00e9v"`) or a deeper unknown value uses
//!   serde_json's scratch buffer, which allocates once for that message; escaped text is then
//!   copied into [`Text::Inline`]. Errors allocate (serde_json boxes them), which only costs time
//!   on the rejection path.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::fields::{Fields, Key, Text, Value};
use crate::reason::Reason;

/// Parses a JSON reading document.
///
/// ```
/// let fields = decoded::json::parse(br#"{"d":"dev1","s":"temp","v":21.5,"extra":[1,{"x":null}]}"#).unwrap();
/// assert!(matches!(fields.value, Some(decoded::fields::Value::Float(v)) if v == 21.5));
/// assert_eq!(decoded::json::parse(b"{} x").unwrap_err(), decoded::Reason::Malformed);
/// ```
pub fn parse(payload: &[u8]) -> Result<Fields<'_>, Reason> {
    let mut de = serde_json::Deserializer::from_slice(payload);
    let fields = de.deserialize_map(DocVisitor).map_err(|_| Reason::Malformed)?;
    de.end().map_err(|_| Reason::Malformed)?;
    Ok(fields)
}

/// The top-level object.
struct DocVisitor;

impl<'de> Visitor<'de> for DocVisitor {
    type Value = Fields<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a reading object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
        let mut fields = Fields::default();
        while let Some(KeyName(key)) = map.next_key()? {
            match key {
                Some(key) => {
                    let JsonValue(value) = map.next_value()?;
                    fields.set(key, value).map_err(|_| de::Error::custom("duplicate key"))?;
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(fields)
    }
}

/// An object key: one the decoder knows, or `None`.
struct KeyName(Option<Key>);

impl<'de> Deserialize<'de> for KeyName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl Visitor<'_> for KeyVisitor {
    type Value = KeyName;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    // Called for borrowed and for unescaped-into-scratch keys alike.
    fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyName, E> {
        Ok(KeyName(Key::from_name(v.as_bytes())))
    }
}

/// A value, typed as JSON says.
struct JsonValue<'de>(Value<'de>);

impl<'de> Deserialize<'de> for JsonValue<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor).map(JsonValue)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Value<'de>, E> {
        Ok(Value::Other)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value<'de>, E> {
        // -1 - v, for negative v, is !v in two's complement.
        Ok(if v < 0 {
            Value::Nint(!v as u64)
        } else {
            Value::Uint(v as u64)
        })
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value<'de>, E> {
        Ok(Value::Uint(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value<'de>, E> {
        Ok(Value::Float(v))
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Value<'de>, E> {
        Ok(Value::Text(Text::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value<'de>, E> {
        Ok(Value::Text(Text::copied(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value<'de>, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value<'de>, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Value<'de>, A::Error> {
        IgnoredAny.visit_seq(seq)?;
        Ok(Value::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Value<'de>, A::Error> {
        IgnoredAny.visit_map(map)?;
        Ok(Value::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(json: &str) -> Fields<'_> {
        parse(json.as_bytes()).unwrap()
    }

    #[test]
    fn numbers_are_typed_as_json_says() {
        assert!(matches!(fields(r#"{"v":21.5}"#).value, Some(Value::Float(v)) if v == 21.5));
        assert!(matches!(fields(r#"{"v":21}"#).value, Some(Value::Uint(21))));
        assert!(matches!(fields(r#"{"v":-3}"#).value, Some(Value::Nint(2))));
        assert!(matches!(fields(r#"{"v":-9223372036854775808}"#).value, Some(Value::Nint(n)) if n == i64::MAX as u64));
        assert!(matches!(
            fields(r#"{"v":18446744073709551615}"#).value,
            Some(Value::Uint(u64::MAX))
        ));
        assert!(matches!(fields(r#"{"v":1e3}"#).value, Some(Value::Float(v)) if v == 1000.0));
        assert!(matches!(fields(r#"{"v":2.5e-3}"#).value, Some(Value::Float(v)) if v == 0.0025));
        // Beyond u64: parsed as a float.
        assert!(matches!(
            fields(r#"{"v":18446744073709551616}"#).value,
            Some(Value::Float(_))
        ));
    }

    #[test]
    fn text_borrows_unless_escaped() {
        let json = r#"{"d":"dev1","s":"t\u00e9mp","u":"\"C\""}"#;
        let f = fields(json);
        match f.device {
            Some(Value::Text(Text::Borrowed(s))) => {
                assert_eq!(s, "dev1");
                assert!(json.as_bytes().as_ptr_range().contains(&s.as_ptr()));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(f.sensor, Some(Value::Text(t)) if t.bytes() == Some("témp".as_bytes())));
        assert!(matches!(f.unit, Some(Value::Text(t)) if t.bytes() == Some(&b"\"C\""[..])));
        let long = format!(r#"{{"d":"\u0041{}"}}"#, "x".repeat(60));
        assert!(matches!(fields(&long).device, Some(Value::Text(Text::TooLong))));
    }

    #[test]
    fn escaped_keys_are_recognised() {
        assert!(matches!(fields(r#"{"\u0076":1}"#).value, Some(Value::Uint(1))));
    }

    #[test]
    fn other_types_and_unknown_keys() {
        let f = fields(r#"{"x":{"a":[1,2,{"b":"\n"}]},"v":true,"n":null,"t":[1],"u":{"a":1},"zz":"é"}"#);
        assert!(matches!(f.value, Some(Value::Other)));
        assert!(matches!(f.seq, Some(Value::Null)));
        assert!(matches!(f.time, Some(Value::Other)));
        assert!(matches!(f.unit, Some(Value::Other)));
        assert!(f.device.is_none());
        assert!(fields(" \n{}\t\r\n ").device.is_none());
    }

    #[test]
    fn malformed_documents() {
        let cases = [
            "",
            "{",
            r#"{"v":1"#,
            r#"{"v":1,}"#,
            r#"{"v":}"#,
            r#"{"v":1} x"#,
            r#"{"v":1}{}"#,
            r#"[1,2]"#,
            r#""text""#,
            "21.5",
            "null",
            r#"{"v":1,"v":2}"#,
            r#"{"v":1e400}"#,
            r#"{"v":NaN}"#,
            r#"{"v":Infinity}"#,
            r#"{"v":01}"#,
            r#"{"d":"\ud800"}"#,
            r#"{"d":"a	b"}"#, // a raw tab inside a string
            r#"{"x":[[[[1]]]}"#,
        ];
        for case in cases {
            assert_eq!(parse(case.as_bytes()).unwrap_err(), Reason::Malformed, "{case:?}");
        }
        assert_eq!(parse(b"{\"d\":\"\xc3\x28\"}").unwrap_err(), Reason::Malformed);
    }

    #[test]
    fn deep_nesting_is_skipped_without_recursion() {
        let depth = 100_000;
        let nested = format!("{{\"x\":{}0{},\"v\":1}}", "[{\"a\":".repeat(depth), "}]".repeat(depth));
        assert!(matches!(fields(&nested).value, Some(Value::Uint(1))));
        let under_v = format!("{{\"v\":{}{}}}", "[".repeat(depth), "]".repeat(depth));
        assert!(matches!(fields(&under_v).value, Some(Value::Other)));
        let truncated = format!("{{\"v\":{}{}}}", "[".repeat(depth), "]".repeat(depth - 1));
        assert_eq!(parse(truncated.as_bytes()).unwrap_err(), Reason::Malformed);
    }
}
