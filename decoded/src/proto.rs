//! A small protobuf wire-format reader for `telemetry.v1.Reading`
//! (`proto/telemetry/v1/reading.proto`), read in place over the payload bytes: strings borrow
//! the payload, nothing is allocated, and no generated code is involved.
//!
//! The fields map onto the keys of the CBOR/JSON document, so validation is shared:
//!
//! | field | number | wire type | document key |
//! |---|---|---|---|
//! | `string device` | 1 | LEN | `d` |
//! | `string sensor` | 2 | LEN | `s` |
//! | `double value` | 3 | I64 | `v` |
//! | `string unit` | 4 | LEN | `u` |
//! | `uint64 seq` | 5 | VARINT | `n` |
//! | `uint64 time_ms` | 6 | VARINT | `t` |
//!
//! What it accepts and rejects, following the protobuf encoding spec where it has a rule:
//! - **Absent fields** take proto3's defaults, because encoders leave out a field that holds its
//!   default: an absent `value` is `0.0` (prost writes a reading of 0.0 as no field 3 at all),
//!   an absent unit is empty, absent `seq`/`time_ms` are 0. An absent device or sensor (which is
//!   what an empty string looks like on the wire) is [`Reason::MissingField`]; a device or sensor
//!   written explicitly as empty is [`Reason::EmptyId`]. An empty payload is a `Reading` with
//!   every field absent, so it is `missing_field`.
//! - **Repeated fields**: the last one wins, as protobuf says for a non-repeated scalar.
//! - **Unknown fields** of every wire type are skipped, groups too (proto2's wire types 3 and 4,
//!   which a proto3 sender does not write but prost skips): nested up to [`MAX_GROUP_DEPTH`]
//!   deep, each end matching its start's field number, with no recursion.
//! - **A known field with another wire type** (`value` as a varint, `device` as I64…) is read
//!   past and typed [`Value::Other`], which validation turns into [`Reason::BadType`].
//! - [`Reason::Malformed`]: a truncated or over-long varint (more than 10 bytes, or a tenth byte
//!   above 1), a tag with field number 0 or above 2^29 − 1, the undefined wire types 6 and 7, a
//!   length or fixed-width value running past the end, a string that is not UTF-8, an end of
//!   group with no matching start, and groups nested deeper than [`MAX_GROUP_DEPTH`].
//!
//! Lengths are checked against the bytes left before anything is read, and nothing recurses,
//! so any input costs time linear in its length and no stack.
//!
//! A `ReadingBatch` given here is not a `Reading`: its only field, number 1 (LEN), reads as a
//! device string, which is `malformed` if the first item's bytes are not UTF-8 (a double's
//! bytes rarely are) and otherwise, with no field 2, `missing_field`. Batches are split by the
//! source that receives them (ingestd's HTTP door); decoded turns one raw record into one reading.

use crate::cursor::Cursor;
use crate::fields::{Fields, Text, Value};
use crate::reason::Reason;

/// Parses a protobuf `telemetry.v1.Reading`.
///
/// ```
/// // device "dev1" (field 1), sensor "temp" (field 2), value 21.5 (field 3, I64), seq 7 (field 5)
/// let mut payload = vec![0x0a, 4, b'd', b'e', b'v', b'1', 0x12, 4, b't', b'e', b'm', b'p', 0x19];
/// payload.extend_from_slice(&21.5f64.to_le_bytes());
/// payload.extend_from_slice(&[0x28, 7]);
/// let fields = decoded::proto::parse(&payload).unwrap();
/// assert!(matches!(fields.value, Some(decoded::fields::Value::Float(v)) if v == 21.5));
/// assert!(matches!(fields.seq, Some(decoded::fields::Value::Uint(7))));
/// ```
pub fn parse(payload: &[u8]) -> Result<Fields<'_>, Reason> {
    let mut r = Reader {
        bytes: Cursor::new(payload),
    };
    let mut fields = Fields {
        value: Some(Value::Float(0.0)),
        ..Fields::default()
    };
    while r.bytes.left() > 0 {
        let tag = r.varint()?;
        let number = tag >> 3;
        if number == 0 || number > MAX_FIELD_NUMBER {
            return Err(Reason::Malformed);
        }
        let wire = (tag & 7) as u8;
        let value = r.value(number as u32, wire)?;
        let slot = match number {
            1 => &mut fields.device,
            2 => &mut fields.sensor,
            3 => &mut fields.value,
            4 => &mut fields.unit,
            5 => &mut fields.seq,
            6 => &mut fields.time,
            _ => continue,
        };
        *slot = Some(typed(number, value)?);
    }
    Ok(fields)
}

/// The largest field number protobuf allows (2^29 − 1).
const MAX_FIELD_NUMBER: u64 = (1 << 29) - 1;

/// How deep groups may nest; prost's default recursion limit.
pub const MAX_GROUP_DEPTH: usize = 100;

const VARINT: u8 = 0;
const I64: u8 = 1;
const LEN: u8 = 2;
const START_GROUP: u8 = 3;
const END_GROUP: u8 = 4;
const I32: u8 = 5;

/// A field's value as the wire type gives it, before the schema says what it means.
#[derive(Clone, Copy)]
enum Wire<'a> {
    Varint(u64),
    I64([u8; 8]),
    Len(&'a [u8]),
    /// An I32, or a whole group: nothing the schema reads.
    Skipped,
}

/// What a known field's wire value means under the schema; another wire type is `Other`.
fn typed(number: u64, wire: Wire<'_>) -> Result<Value<'_>, Reason> {
    Ok(match (number, wire) {
        (1 | 2 | 4, Wire::Len(bytes)) => Value::Text(Text::Borrowed(
            std::str::from_utf8(bytes).map_err(|_| Reason::Malformed)?,
        )),
        (3, Wire::I64(bits)) => Value::Float(f64::from_le_bytes(bits)),
        (5 | 6, Wire::Varint(v)) => Value::Uint(v),
        _ => Value::Other,
    })
}

/// The protobuf grammar over a [`Cursor`].
struct Reader<'a> {
    bytes: Cursor<'a>,
}

impl<'a> Reader<'a> {
    /// A base-128 varint of at most 10 bytes, least significant group first.
    #[inline]
    fn varint(&mut self) -> Result<u64, Reason> {
        let mut value = 0u64;
        for i in 0..10 {
            let byte = self.bytes.byte()?;
            // The tenth byte holds bit 63 only: anything more would overflow 64 bits.
            if i == 9 && byte > 1 {
                return Err(Reason::Malformed);
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Reason::Malformed)
    }

    /// Reads the value that follows a tag of field `number` and wire type `wire`.
    #[inline]
    fn value(&mut self, number: u32, wire: u8) -> Result<Wire<'a>, Reason> {
        Ok(match wire {
            VARINT => Wire::Varint(self.varint()?),
            I64 => Wire::I64(self.bytes.take(8)?.try_into().expect("8 bytes")),
            LEN => {
                let len = self.varint()?;
                Wire::Len(self.bytes.take(len)?)
            }
            I32 => {
                self.bytes.take(4)?;
                Wire::Skipped
            }
            START_GROUP => {
                self.skip_group(number)?;
                Wire::Skipped
            }
            // An end with no start here, or the undefined wire types 6 and 7.
            _ => return Err(Reason::Malformed),
        })
    }

    /// Skips the rest of group `number`, up to its matching end, with a fixed-size stack of the
    /// open groups' field numbers instead of recursion.
    fn skip_group(&mut self, number: u32) -> Result<(), Reason> {
        let mut open = [0u32; MAX_GROUP_DEPTH];
        open[0] = number;
        let mut depth = 1;
        while depth > 0 {
            let tag = self.varint()?;
            let (inner, wire) = (tag >> 3, (tag & 7) as u8);
            if inner == 0 || inner > MAX_FIELD_NUMBER {
                return Err(Reason::Malformed);
            }
            match wire {
                START_GROUP if depth == MAX_GROUP_DEPTH => return Err(Reason::Malformed),
                START_GROUP => {
                    open[depth] = inner as u32;
                    depth += 1;
                }
                END_GROUP if u64::from(open[depth - 1]) == inner => depth -= 1,
                END_GROUP => return Err(Reason::Malformed),
                _ => {
                    self.value(inner as u32, wire)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! Hand-made byte strings for the edge cases an encoder never writes. Payloads from a real
    //! encoder (prost) are in `tests/proto.rs`.
    use super::*;

    fn text<'a>(f: &Option<Value<'a>>) -> &'a str {
        match f {
            Some(Value::Text(Text::Borrowed(s))) => s,
            other => panic!("{other:?}"),
        }
    }

    const DEV_SEN: [u8; 12] = [0x0a, 4, b'd', b'e', b'v', b'1', 0x12, 4, b't', b'e', b'm', b'p'];

    fn with(extra: &[u8]) -> Vec<u8> {
        let mut p = DEV_SEN.to_vec();
        p.extend_from_slice(extra);
        p
    }

    #[test]
    fn absent_fields_take_proto3_defaults() {
        let f = parse(&DEV_SEN).unwrap();
        assert_eq!((text(&f.device), text(&f.sensor)), ("dev1", "temp"));
        assert!(matches!(f.value, Some(Value::Float(v)) if v.to_bits() == 0));
        assert!(f.unit.is_none() && f.seq.is_none() && f.time.is_none());
        let empty = parse(&[]).unwrap();
        assert!(empty.device.is_none() && empty.sensor.is_none());
    }

    #[test]
    fn the_last_of_a_repeated_field_wins_and_strings_borrow() {
        let payload = with(&[0x0a, 2, b'x', b'y', 0x28, 1, 0x28, 2]);
        let f = parse(&payload).unwrap();
        assert_eq!(text(&f.device), "xy");
        assert!(payload.as_ptr_range().contains(&text(&f.device).as_ptr()));
        assert!(matches!(f.seq, Some(Value::Uint(2))));
    }

    #[test]
    fn varints_of_every_length_up_to_u64_max() {
        let mut max = with(&[0x30]);
        max.extend_from_slice(&[0xff; 9]);
        max.push(0x01);
        assert!(matches!(parse(&max).unwrap().time, Some(Value::Uint(u64::MAX))));
        // An over-long but terminated encoding of 1 is still 1.
        let long = with(&[0x28, 0x81, 0x80, 0x80, 0x00]);
        assert!(matches!(parse(&long).unwrap().seq, Some(Value::Uint(1))));
    }

    #[test]
    fn unknown_fields_of_every_wire_type_are_skipped() {
        let payload = with(&[
            0x38, 0x96, 0x01, // field 7 varint
            0x41, 1, 2, 3, 4, 5, 6, 7, 8, // field 8 I64
            0x4a, 3, 0xff, 0xfe, 0xfd, // field 9 LEN, not UTF-8 (bytes)
            0x55, 1, 2, 3, 4, // field 10 I32
            0xf8, 0xff, 0xff, 0xff, 0x0f, 0x00, // field 2^29 - 1 varint
            0x5b, 0x0a, 1, b'x', 0x63, 0x08, 1, 0x64, 0x5c, // group 11 { 1: "x", group 12 { 1: 1 } }
        ]);
        let f = parse(&payload).unwrap();
        assert_eq!(text(&f.sensor), "temp");
    }

    #[test]
    fn wrong_wire_types_of_known_fields_are_other() {
        for (extra, slot) in [
            (&[0x18, 0x05][..], 3),               // value as a varint
            (&[0x1d, 0, 0, 0xa0, 0x41], 3),       // value as I32 (a float)
            (&[0x1a, 1, b'1'], 3),                // value as a string
            (&[0x21, 1, 2, 3, 4, 5, 6, 7, 8], 4), // unit as I64
            (&[0x2a, 1, b'1'], 5),                // seq as LEN
            (&[0x1b, 0x08, 1, 0x1c], 3),          // value as a group
            (&[0x31, 0, 0, 0, 0, 0, 0, 0, 0], 6), // time as I64
        ] {
            let payload = with(extra);
            let f = parse(&payload).unwrap();
            let v = match slot {
                3 => f.value,
                4 => f.unit,
                5 => f.seq,
                _ => f.time,
            };
            assert!(matches!(v, Some(Value::Other)), "{extra:02x?}");
        }
        let device_varint = [0x08, 1, 0x12, 1, b's'];
        assert!(matches!(parse(&device_varint).unwrap().device, Some(Value::Other)));
    }

    #[test]
    fn groups_nest_to_the_limit_without_recursion() {
        let nested = |depth: usize| {
            let mut p = with(&[]);
            p.extend(std::iter::repeat_n(0x3b, depth)); // start group 7
            p.extend(std::iter::repeat_n(0x3c, depth)); // end group 7
            p
        };
        assert!(parse(&nested(MAX_GROUP_DEPTH)).is_ok());
        assert_eq!(parse(&nested(MAX_GROUP_DEPTH + 1)).unwrap_err(), Reason::Malformed);
        let mut unclosed = nested(50);
        unclosed.pop();
        assert_eq!(parse(&unclosed).unwrap_err(), Reason::Malformed);
    }

    #[test]
    fn malformed_inputs_are_malformed() {
        let cases: &[&[u8]] = &[
            &[0x0a],                                                                   // tag, no length
            &[0x0a, 5, b'a'],                                                          // length past the end
            &[0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],       // length 2^64 - 1
            &[0x19, 0, 0, 0],                                                          // truncated double
            &[0x28],                                                                   // varint missing
            &[0x28, 0x80],                                                             // truncated varint
            &[0x28, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],       // over 64 bits
            &[0x28, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00], // 11 bytes
            &[0x80],                                                                   // truncated tag
            &[0x00, 0x00],                                                             // field number 0
            &[0x80, 0x80, 0x80, 0x80, 0x10, 0x00],                                     // field number 2^29
            &[0x0c],                                                                   // group end without a start
            &[0x3b, 0x44],                                                             // group 7 ended as group 8
            &[0x3b, 0x38, 1],                                                          // group never ended
            &[0x0e],                                                                   // wire type 6
            &[0x0f],                                                                   // wire type 7
            &[0x0a, 2, 0xc3, 0x28],                                                    // device not UTF-8
            &[0x55, 1, 2], // truncated I32 of an unknown field
        ];
        for case in cases {
            assert_eq!(parse(case).unwrap_err(), Reason::Malformed, "{case:02x?}");
        }
    }
}
