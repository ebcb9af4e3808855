//! What a parser hands to the validator: for each key of the reading document (`d`, `s`, `v`,
//! `u`, `n`, `t`), the value found, typed only as far as the wire format says. The CBOR, JSON and
//! protobuf parsers fill the same [`Fields`], so validation (`decode.rs`) is written once and the
//! formats cannot drift apart.
//!
//! Nothing here allocates: text borrows the payload, or, when JSON escapes forced a copy, lives
//! in a small inline buffer that holds any id a reading could hold.

use records::DEVICE_MAX;

use crate::reason::Reason;

/// Longest text kept inline: the longest id a reading holds. Longer copied text is only known to
/// be too long.
pub const INLINE_MAX: usize = DEVICE_MAX;

/// A text value.
#[derive(Clone, Copy, Debug)]
pub enum Text<'a> {
    /// Borrowed from the payload (always valid UTF-8).
    Borrowed(&'a str),
    /// Copied (a JSON string with escapes), at most [`INLINE_MAX`] bytes.
    Inline {
        /// The bytes, valid UTF-8 up to `len`.
        buf: [u8; INLINE_MAX],
        /// Bytes in use.
        len: u8,
    },
    /// Copied and longer than [`INLINE_MAX`] bytes: longer than any id a reading holds.
    TooLong,
}

impl<'a> Text<'a> {
    /// Copies transient text (for example from a JSON parser's scratch buffer).
    pub fn copied(s: &str) -> Text<'a> {
        if s.len() > INLINE_MAX {
            return Text::TooLong;
        }
        let mut buf = [0u8; INLINE_MAX];
        buf[..s.len()].copy_from_slice(s.as_bytes());
        Text::Inline {
            buf,
            len: s.len() as u8,
        }
    }

    /// The bytes, or `None` if the text is longer than [`INLINE_MAX`] and was not kept.
    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            Text::Borrowed(s) => Some(s.as_bytes()),
            Text::Inline { buf, len } => Some(&buf[..*len as usize]),
            Text::TooLong => None,
        }
    }
}

/// A value, typed as far as the wire format says.
#[derive(Clone, Copy, Debug)]
pub enum Value<'a> {
    /// A text string.
    Text(Text<'a>),
    /// An unsigned integer.
    Uint(u64),
    /// A negative integer, stored as CBOR does: the value is `-1 - n`.
    Nint(u64),
    /// A floating-point number (CBOR f16, f32 or f64, or a JSON number with a fraction or exponent).
    Float(f64),
    /// `null` (CBOR `null` or `undefined`).
    Null,
    /// Anything else: a boolean, bytes, an array, a map, a tagged item, a simple value.
    Other,
}

/// The keys a reading document has; every other key is ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    /// `d`: the device id (text, required).
    Device,
    /// `s`: the sensor name (text, required).
    Sensor,
    /// `v`: the value (number, required).
    Value,
    /// `u`: the unit (text, optional).
    Unit,
    /// `n`: the sender's sequence number (unsigned, optional).
    Seq,
    /// `t`: the event time in ms since the epoch (unsigned, optional).
    Time,
}

impl Key {
    /// The key named by `name`, or `None` for a key the decoder ignores.
    #[inline]
    pub fn from_name(name: &[u8]) -> Option<Key> {
        match name {
            b"d" => Some(Key::Device),
            b"s" => Some(Key::Sensor),
            b"v" => Some(Key::Value),
            b"u" => Some(Key::Unit),
            b"n" => Some(Key::Seq),
            b"t" => Some(Key::Time),
            _ => None,
        }
    }
}

/// The values found for each key of one document.
#[derive(Clone, Copy, Debug, Default)]
pub struct Fields<'a> {
    /// `d`
    pub device: Option<Value<'a>>,
    /// `s`
    pub sensor: Option<Value<'a>>,
    /// `v`
    pub value: Option<Value<'a>>,
    /// `u`
    pub unit: Option<Value<'a>>,
    /// `n`
    pub seq: Option<Value<'a>>,
    /// `t`
    pub time: Option<Value<'a>>,
}

impl<'a> Fields<'a> {
    /// Records the value of `key`. A key given twice makes the document [`Reason::Malformed`]:
    /// CBOR calls a map with duplicate keys invalid, and which of two JSON values a sender meant
    /// cannot be known.
    pub fn set(&mut self, key: Key, value: Value<'a>) -> Result<(), Reason> {
        let slot = match key {
            Key::Device => &mut self.device,
            Key::Sensor => &mut self.sensor,
            Key::Value => &mut self.value,
            Key::Unit => &mut self.unit,
            Key::Seq => &mut self.seq,
            Key::Time => &mut self.time,
        };
        if slot.is_some() {
            return Err(Reason::Malformed);
        }
        *slot = Some(value);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copied_text_is_kept_up_to_the_longest_id() {
        let t = Text::copied("é");
        assert_eq!(t.bytes(), Some("é".as_bytes()));
        let max = "x".repeat(INLINE_MAX);
        assert_eq!(Text::copied(&max).bytes(), Some(max.as_bytes()));
        assert!(Text::copied(&"x".repeat(INLINE_MAX + 1)).bytes().is_none());
        assert_eq!(Text::copied("").bytes(), Some(&b""[..]));
    }

    #[test]
    fn keys_are_single_letters_and_a_repeated_key_is_malformed() {
        assert_eq!(Key::from_name(b"d"), Some(Key::Device));
        assert_eq!(Key::from_name(b"t"), Some(Key::Time));
        assert_eq!(Key::from_name(b"D"), None);
        assert_eq!(Key::from_name(b"dd"), None);
        assert_eq!(Key::from_name(b""), None);
        let mut f = Fields::default();
        f.set(Key::Value, Value::Uint(1)).unwrap();
        assert_eq!(f.set(Key::Value, Value::Uint(2)), Err(Reason::Malformed));
    }
}
