//! Why a payload could not become a reading: exactly one of these per rejected message, each
//! published as its `error.<reason>` counter (`records::names::error_reason`).

use records::names::error_reason;

/// The one reason a payload was rejected.
///
/// When a payload has several problems, the first in this order wins: [`Malformed`],
/// [`MissingField`], [`BadType`], [`EmptyId`], [`IdTooLong`], [`NonFinite`]. So a payload is
/// judged as a document first, then key by key for presence, then for types, then for values.
///
/// [`Malformed`]: Reason::Malformed
/// [`MissingField`]: Reason::MissingField
/// [`BadType`]: Reason::BadType
/// [`EmptyId`]: Reason::EmptyId
/// [`IdTooLong`]: Reason::IdTooLong
/// [`NonFinite`]: Reason::NonFinite
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Not well-formed CBOR, JSON or protobuf: not a map at the top level, a duplicate key, text
    /// that is not UTF-8, bytes after the top-level item; for protobuf a truncated varint, a
    /// length past the end, an invalid tag or wire type.
    Malformed,
    /// `d`, `s` or `v` is absent (protobuf: device or sensor; an absent protobuf value is 0.0).
    MissingField,
    /// A key has a value of the wrong type (`v` a string, `n` negative or fractional, `d` a number…),
    /// or a protobuf field has the wrong wire type.
    BadType,
    /// `v` is NaN or infinite.
    NonFinite,
    /// An id is longer than a reading holds (device 48, sensor 32, unit 16 bytes).
    IdTooLong,
    /// The device or the sensor is the empty string.
    EmptyId,
}

impl Reason {
    /// Every reason, in counter registration order.
    pub const ALL: [Reason; 6] = [
        Reason::Malformed,
        Reason::MissingField,
        Reason::BadType,
        Reason::NonFinite,
        Reason::IdTooLong,
        Reason::EmptyId,
    ];

    /// The counter this reason is published as, for example `error.malformed`.
    pub fn counter(self) -> &'static str {
        match self {
            Reason::Malformed => error_reason::MALFORMED,
            Reason::MissingField => error_reason::MISSING_FIELD,
            Reason::BadType => error_reason::BAD_TYPE,
            Reason::NonFinite => error_reason::NON_FINITE,
            Reason::IdTooLong => error_reason::ID_TOO_LONG,
            Reason::EmptyId => error_reason::EMPTY_ID,
        }
    }

    /// Position in [`Reason::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_its_own_counter_and_index() {
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
            assert!(r.counter().starts_with("error."));
        }
        let mut names: Vec<_> = Reason::ALL.iter().map(|r| r.counter()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Reason::ALL.len());
    }
}
