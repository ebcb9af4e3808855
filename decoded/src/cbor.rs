//! A small CBOR (RFC 8949) reader for the reading document: one definite-length map at the top
//! level, read in place over the payload bytes with no allocation and no `Value` tree.
//!
//! What it accepts and what it rejects ([`Reason::Malformed`] unless said otherwise):
//! - **Top level**: a map; anything else, or any byte after it, is malformed.
//! - **Keys**: text keys are compared with `d s v u n t`; other keys, text or not, are skipped
//!   with their values (extra keys are ignored). A known key given twice is malformed.
//! - **Values of known keys**: unsigned and negative integers, f16/f32/f64 floats, text strings
//!   (which must be UTF-8), `null`/`undefined`; everything else (bytes, arrays, maps, tags,
//!   booleans, simple values) is read past and typed [`Value::Other`], which validation turns
//!   into `bad_type`.
//! - **Indefinite-length items** (additional information 31, including a stray break byte) are
//!   rejected anywhere: no encoder of this pipeline writes them, and refusing them keeps every
//!   string borrowable and every container countable.
//! - **Reserved additional information** (28–30) and two-byte simple values below 32 are
//!   not well-formed.
//! - **Lengths** are checked against the bytes left before anything is read, so a declared
//!   length of 2^64 − 1 fails at once.
//! - **Nesting**: skipping keeps a single count of items still to skip instead of recursing, so
//!   depth costs neither stack nor memory, and time is linear in the payload's length whatever
//!   its shape; a count larger than the bytes left (every item takes at least one byte) is
//!   malformed at once.

use crate::cursor::Cursor;
use crate::fields::{Fields, Key, Text, Value};
use crate::reason::Reason;

/// Parses a CBOR reading document.
///
/// ```
/// // {"d": "dev1", "s": "temp", "v": 21.5 (f16)}
/// let payload = [0xa3, 0x61, b'd', 0x64, b'd', b'e', b'v', b'1', 0x61, b's', 0x64, b't', b'e', b'm', b'p',
///                0x61, b'v', 0xf9, 0x4d, 0x60];
/// let fields = decoded::cbor::parse(&payload).unwrap();
/// assert!(matches!(fields.value, Some(decoded::fields::Value::Float(v)) if v == 21.5));
/// ```
pub fn parse(payload: &[u8]) -> Result<Fields<'_>, Reason> {
    let mut r = Reader {
        bytes: Cursor::new(payload),
    };
    let head = r.head()?;
    if head.major != MAP {
        return Err(Reason::Malformed);
    }
    // Each pair takes at least two bytes.
    if head.arg > (r.bytes.left() / 2) as u64 {
        return Err(Reason::Malformed);
    }
    let mut fields = Fields::default();
    for _ in 0..head.arg {
        let key = r.head()?;
        let known = if key.major == TEXT {
            Key::from_name(r.bytes.take(key.arg)?)
        } else {
            r.skip_rest_of(key)?;
            None
        };
        match known {
            Some(k) => fields.set(k, r.value()?)?,
            None => r.skip(1)?,
        }
    }
    if r.bytes.left() != 0 {
        return Err(Reason::Malformed);
    }
    Ok(fields)
}

/// Converts the bits of an IEEE 754 half-precision float to `f64` (exactly: every f16 is an f64).
pub fn f16_to_f64(bits: u16) -> f64 {
    let sign = u64::from(bits >> 15) << 63;
    let exp = u64::from((bits >> 10) & 0x1f);
    let mant = u64::from(bits & 0x3ff);
    match exp {
        // Subnormal (and zero): mant × 2^-24, exact.
        0 => {
            let magnitude = mant as f64 * (1.0 / 16_777_216.0);
            if sign != 0 {
                -magnitude
            } else {
                magnitude
            }
        }
        // Infinity and NaN: widen the exponent, keep the payload.
        31 => f64::from_bits(sign | (0x7ff << 52) | (mant << 42)),
        // Normal: rebias the exponent from 15 to 1023, widen the mantissa from 10 to 52 bits.
        _ => f64::from_bits(sign | ((exp + 1023 - 15) << 52) | (mant << 42)),
    }
}

const UINT: u8 = 0;
const NINT: u8 = 1;
const BYTES: u8 = 2;
const TEXT: u8 = 3;
const ARRAY: u8 = 4;
const MAP: u8 = 5;
const TAG: u8 = 6;
const SIMPLE: u8 = 7;

/// An item's initial byte and argument.
#[derive(Clone, Copy, Debug)]
struct Head {
    major: u8,
    /// Additional information (low five bits of the initial byte).
    info: u8,
    /// The argument: the value, length, count, tag number, or float bits.
    arg: u64,
}

/// The CBOR grammar over a [`Cursor`].
struct Reader<'a> {
    bytes: Cursor<'a>,
}

impl<'a> Reader<'a> {
    #[inline]
    fn head(&mut self) -> Result<Head, Reason> {
        let initial = self.bytes.byte()?;
        let major = initial >> 5;
        let info = initial & 0x1f;
        let arg = match info {
            0..=23 => u64::from(info),
            24 => u64::from(self.bytes.byte()?),
            25 => u64::from(u16::from_be_bytes(self.bytes.take(2)?.try_into().expect("2 bytes"))),
            26 => u64::from(u32::from_be_bytes(self.bytes.take(4)?.try_into().expect("4 bytes"))),
            27 => u64::from_be_bytes(self.bytes.take(8)?.try_into().expect("8 bytes")),
            // 28–30 are reserved; 31 is an indefinite length, or a break outside one.
            _ => return Err(Reason::Malformed),
        };
        if major == SIMPLE && info == 24 && arg < 32 {
            // A two-byte simple value below 32 is not well-formed (RFC 8949 §3.3).
            return Err(Reason::Malformed);
        }
        Ok(Head { major, info, arg })
    }

    /// Reads the value of a known key.
    fn value(&mut self) -> Result<Value<'a>, Reason> {
        let head = self.head()?;
        Ok(match head.major {
            UINT => Value::Uint(head.arg),
            NINT => Value::Nint(head.arg),
            TEXT => {
                let bytes = self.bytes.take(head.arg)?;
                Value::Text(Text::Borrowed(
                    std::str::from_utf8(bytes).map_err(|_| Reason::Malformed)?,
                ))
            }
            SIMPLE => match head.info {
                22 | 23 => Value::Null,
                25 => Value::Float(f16_to_f64(head.arg as u16)),
                26 => Value::Float(f64::from(f32::from_bits(head.arg as u32))),
                27 => Value::Float(f64::from_bits(head.arg)),
                _ => Value::Other,
            },
            _ => {
                self.skip_rest_of(head)?;
                Value::Other
            }
        })
    }

    /// Skips what follows an item's head: a string's bytes, or a container's or tag's items.
    fn skip_rest_of(&mut self, head: Head) -> Result<(), Reason> {
        match head.major {
            BYTES | TEXT => self.bytes.take(head.arg).map(|_| ()),
            ARRAY | MAP | TAG => self.skip(items_after(head).ok_or(Reason::Malformed)?),
            _ => Ok(()),
        }
    }

    /// Skips `pending` whole items, without recursion: one count of items still to skip.
    fn skip(&mut self, mut pending: u64) -> Result<(), Reason> {
        while pending > 0 {
            // Every item takes at least one byte: a larger count can only be truncated input.
            if pending > self.bytes.left() as u64 {
                return Err(Reason::Malformed);
            }
            pending -= 1;
            let head = self.head()?;
            match head.major {
                BYTES | TEXT => {
                    self.bytes.take(head.arg)?;
                }
                ARRAY | MAP | TAG => {
                    let more = items_after(head).ok_or(Reason::Malformed)?;
                    pending = pending.checked_add(more).ok_or(Reason::Malformed)?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// How many items follow a container's or a tag's head.
fn items_after(head: Head) -> Option<u64> {
    match head.major {
        ARRAY => Some(head.arg),
        MAP => head.arg.checked_mul(2),
        TAG => Some(1),
        _ => Some(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes with the real encoder the sensors use.
    fn cbor<T: serde::Serialize>(value: &T) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::ser::into_writer(value, &mut out).unwrap();
        out
    }

    fn value_of(payload: &[u8]) -> Value<'_> {
        parse(payload).unwrap().value.unwrap()
    }

    #[derive(serde::Serialize)]
    struct Doc<'a, V> {
        d: &'a str,
        s: &'a str,
        v: V,
    }

    fn doc<V: serde::Serialize>(v: V) -> Vec<u8> {
        cbor(&Doc {
            d: "dev1",
            s: "temp",
            v,
        })
    }

    #[test]
    fn ciborium_writes_21_5_as_f16_and_it_is_read_exactly() {
        let payload = doc(21.5f64);
        assert!(
            payload.windows(3).any(|w| w == [0xf9, 0x4d, 0x60]),
            "expected an f16 in {payload:02x?}"
        );
        assert!(matches!(value_of(&payload), Value::Float(v) if v == 21.5));
    }

    #[test]
    fn f32_and_f64_values_are_read_exactly() {
        // 0.1 needs all of f64; 1.1f32 needs f32; ciborium picks the shortest exact width.
        let p64 = doc(0.1f64);
        assert!(p64.contains(&0xfb));
        assert!(matches!(value_of(&p64), Value::Float(v) if v == 0.1));
        let p32 = doc(f64::from(1.1f32));
        assert!(p32.contains(&0xfa));
        assert!(matches!(value_of(&p32), Value::Float(v) if v == f64::from(1.1f32)));
        let raw64 = [0xa1, 0x61, b'v', 0xfb, 0x40, 0x35, 0x80, 0, 0, 0, 0, 0];
        assert!(matches!(value_of(&raw64), Value::Float(v) if v == 21.5));
    }

    #[test]
    fn integers_of_every_width_and_sign_are_read() {
        for v in [
            0u64,
            23,
            24,
            255,
            256,
            65_535,
            65_536,
            u64::from(u32::MAX) + 1,
            u64::MAX,
        ] {
            assert!(matches!(value_of(&doc(v)), Value::Uint(x) if x == v), "{v}");
        }
        for v in [-1i64, -24, -25, -256, -257, -65_537, i64::MIN] {
            let want = (-1 - i128::from(v)) as u64;
            assert!(matches!(value_of(&doc(v)), Value::Nint(x) if x == want), "{v}");
        }
    }

    #[test]
    fn every_f16_agrees_with_ciborium() {
        for bits in 0..=u16::MAX {
            let item = [0xf9, (bits >> 8) as u8, bits as u8];
            let reference: ciborium::Value = ciborium::de::from_reader(&item[..]).unwrap();
            let ours = f16_to_f64(bits);
            match reference {
                ciborium::Value::Float(f) if f.is_nan() => assert!(ours.is_nan(), "{bits:#06x}"),
                ciborium::Value::Float(f) => assert_eq!(ours.to_bits(), f.to_bits(), "{bits:#06x}"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn text_keys_and_values_borrow_the_payload() {
        let payload = doc(1u8);
        let f = parse(&payload).unwrap();
        match f.device {
            Some(Value::Text(Text::Borrowed(s))) => {
                assert_eq!(s, "dev1");
                assert!(payload.as_ptr_range().contains(&s.as_ptr()));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_keys_of_any_shape_are_skipped() {
        #[derive(serde::Serialize)]
        struct Extra {
            zz: Vec<Vec<u32>>,
            d: &'static str,
            m: std::collections::BTreeMap<u8, &'static str>,
            s: &'static str,
            b: serde_bytes_like::Bytes,
            v: f64,
        }
        mod serde_bytes_like {
            pub struct Bytes(pub Vec<u8>);
            impl serde::Serialize for Bytes {
                fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                    s.serialize_bytes(&self.0)
                }
            }
        }
        let payload = cbor(&Extra {
            zz: vec![vec![1, 2], vec![], vec![100_000]],
            d: "dev1",
            m: [(1, "one"), (2, "two")].into_iter().collect(),
            s: "temp",
            b: serde_bytes_like::Bytes(vec![0xff; 30]),
            v: 2.0,
        });
        let f = parse(&payload).unwrap();
        assert!(matches!(f.value, Some(Value::Float(v)) if v == 2.0));
        assert!(f.device.is_some() && f.sensor.is_some());
        // A non-text key (integer 1 → map) is skipped with its value.
        let int_key = [0xa2, 0x01, 0xa1, 0x61, b'x', 0x80, 0x61, b'v', 0x07];
        assert!(matches!(value_of(&int_key), Value::Uint(7)));
    }

    #[test]
    fn other_value_types_are_other_and_null_is_null() {
        for item in [
            &[0xf4][..],
            &[0xf5],
            &[0x40],
            &[0x80],
            &[0xa0],
            &[0xc1, 0x01],
            &[0xf0],
            &[0xf8, 0x20],
        ] {
            let mut payload = vec![0xa1, 0x61, b'v'];
            payload.extend_from_slice(item);
            assert!(matches!(value_of(&payload), Value::Other), "{item:02x?}");
        }
        assert!(matches!(value_of(&[0xa1, 0x61, b'v', 0xf6]), Value::Null));
        assert!(matches!(value_of(&[0xa1, 0x61, b'v', 0xf7]), Value::Null));
    }

    #[test]
    fn malformed_inputs_are_malformed() {
        let cases: &[&[u8]] = &[
            &[],                                         // nothing
            &[0x01],                                     // not a map
            &[0x80],                                     // an array
            &[0xa1],                                     // truncated map
            &[0xa1, 0x61],                               // truncated key
            &[0xa1, 0x61, b'v'],                         // key without value
            &[0xa1, 0x61, b'v', 0xf9, 0x00],             // truncated f16
            &[0xa1, 0x61, b'v', 0xfb, 0, 0, 0],          // truncated f64
            &[0xa1, 0x61, b'v', 0x01, 0x00],             // trailing byte
            &[0xa0, 0xa0],                               // two items
            &[0xbf, 0x61, b'v', 0x01, 0xff],             // indefinite map
            &[0xa1, 0x61, b'd', 0x7f, 0x61, b'x', 0xff], // indefinite text
            &[0xa1, 0x61, b'z', 0x9f, 0xff],             // indefinite array under an unknown key
            &[0xa1, 0x61, b'v', 0xff],                   // stray break
            &[0xa1, 0x61, b'v', 0x1c],                   // reserved additional information
            &[0xa1, 0x61, b'v', 0xf8, 0x10],             // two-byte simple value below 32
            &[0xa1, 0x61, b'd', 0x62, 0xc3, 0x28],       // text that is not UTF-8
            &[0xa2, 0x61, b'v', 0x01, 0x61, b'v', 0x02], // duplicate key
        ];
        for case in cases {
            assert_eq!(parse(case).unwrap_err(), Reason::Malformed, "{case:02x?}");
        }
    }

    #[test]
    fn huge_declared_lengths_fail_at_once() {
        let max8 = [0xff; 8];
        for (major, extra) in [(0x7b, &max8[..]), (0x5b, &max8), (0x9b, &max8), (0xbb, &max8)] {
            let mut payload = vec![0xa1, 0x61, b'z', major];
            payload.extend_from_slice(extra);
            assert_eq!(parse(&payload).unwrap_err(), Reason::Malformed, "{payload:02x?}");
            payload[2] = b'v';
            assert_eq!(parse(&payload).unwrap_err(), Reason::Malformed, "{payload:02x?}");
        }
        // A top-level map declaring 2^64 − 1 pairs.
        let mut top = vec![0xbb];
        top.extend_from_slice(&max8);
        assert_eq!(parse(&top).unwrap_err(), Reason::Malformed);
        // A map of 2^63 pairs would overflow a count of items (2 per pair).
        let half = [0xa1, 0x61, b'z', 0xbb, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(parse(&half).unwrap_err(), Reason::Malformed);
    }

    #[test]
    fn deep_nesting_costs_no_stack() {
        // 100 000 nested arrays under an unknown key: well-formed, skipped iteratively.
        let depth = 100_000;
        let mut payload = vec![0xa2, 0x61, b'z'];
        payload.extend(std::iter::repeat_n(0x81, depth));
        payload.push(0x00);
        payload.extend_from_slice(&[0x61, b'v', 0x05]);
        assert!(matches!(value_of(&payload), Value::Uint(5)));
        // The same under `v` is read past and typed Other; truncated, it is malformed.
        let mut under_v = vec![0xa1, 0x61, b'v'];
        under_v.extend(std::iter::repeat_n(0x81, depth));
        under_v.push(0x00);
        assert!(matches!(value_of(&under_v), Value::Other));
        under_v.pop();
        assert_eq!(parse(&under_v).unwrap_err(), Reason::Malformed);
        // Nested tags too.
        let mut tags = vec![0xa1, 0x61, b'v'];
        tags.extend(std::iter::repeat_n(0xc6, depth));
        tags.push(0x01);
        assert!(matches!(value_of(&tags), Value::Other));
    }

    #[test]
    fn every_truncation_of_a_valid_payload_is_malformed() {
        #[derive(serde::Serialize)]
        struct Full<'a> {
            d: &'a str,
            s: &'a str,
            v: f64,
            u: &'a str,
            n: u64,
            t: u64,
        }
        let payload = cbor(&Full {
            d: "dev00001",
            s: "sen002",
            v: 0.1,
            u: "C",
            n: 1 << 40,
            t: 1_700_000_000_000,
        });
        assert!(parse(&payload).is_ok());
        for len in 0..payload.len() {
            assert_eq!(parse(&payload[..len]).unwrap_err(), Reason::Malformed, "len {len}");
        }
    }
}
