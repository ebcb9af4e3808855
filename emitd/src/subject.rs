//! NATS subjects for aggregates: `<subject_prefix>.<device>.<sensor>`, with the device and the
//! sensor escaped so that no id can change where a message is routed.
//!
//! # Escaping, not rejecting
//!
//! Each id becomes exactly one subject token. A byte is copied as is if it is printable ASCII
//! (`!` to `~`) and none of `.` (the token separator), `*` and `>` (the wildcards) and `%` (the
//! escape character itself); every other byte is written as `%XX`, upper-case hex. So a space,
//! a tab, CR, LF, any other control character, DEL and every byte of a non-ASCII UTF-8 sequence
//! is escaped, and the subject is always plain printable ASCII without whitespace.
//!
//! - `dev00001` / `temp` → `telemetry.agg.dev00001.temp` (the usual ids are unchanged);
//! - `a.b` → `a%2Eb`, `>` → `%3E`, `*` → `%2A`, `my dev` → `my%20dev`, `50%` → `50%25`.
//!
//! The encoding is reversible ([`unescape`]), so a subscriber can both recover an id from a
//! subject and subscribe to one id by escaping it the same way ([`escape`]). The payload carries
//! the original ids as well.
//!
//! Only an empty id cannot be made into a token (percent-encoding of nothing is nothing, and an
//! empty token is not a valid subject). Such an aggregate is dropped and counted as
//! `dropped.unsafe_subject`; decoded never forwards an empty id, so only a damaged record can
//! hold one.

use bytes::{BufMut, BytesMut};

/// Why an aggregate has no subject: its device or sensor id is empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EmptyId;

impl std::fmt::Display for EmptyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an empty device or sensor id cannot be a subject token")
    }
}

impl std::error::Error for EmptyId {}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// True if the byte must be written as `%XX` inside a token.
#[inline]
pub fn needs_escape(b: u8) -> bool {
    !(b'!'..=b'~').contains(&b) || matches!(b, b'.' | b'*' | b'>' | b'%')
}

/// Appends `token` to `out`, escaped.
pub fn escape_into(token: &[u8], out: &mut impl BufMut) {
    let mut start = 0;
    for (i, &b) in token.iter().enumerate() {
        if needs_escape(b) {
            out.put_slice(&token[start..i]);
            out.put_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
            start = i + 1;
        }
    }
    out.put_slice(&token[start..]);
}

/// `token`, escaped.
///
/// ```
/// assert_eq!(emitd::subject::escape(b"a.b"), "a%2Eb");
/// assert_eq!(emitd::subject::escape(b"dev-1"), "dev-1");
/// ```
pub fn escape(token: &[u8]) -> String {
    let mut out = Vec::with_capacity(token.len());
    escape_into(token, &mut out);
    // Every byte written is printable ASCII.
    String::from_utf8(out).unwrap_or_default()
}

/// The id an escaped token stands for, or `None` if `token` is not something [`escape`] writes
/// (a bad or lower-case `%XX`, or a byte that should have been escaped).
///
/// ```
/// assert_eq!(emitd::subject::unescape("a%2Eb"), Some(b"a.b".to_vec()));
/// assert_eq!(emitd::subject::unescape("a.b"), None);
/// ```
pub fn unescape(token: &str) -> Option<Vec<u8>> {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let bytes = token.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hi = hex(*bytes.get(i + 1)?)?;
            let lo = hex(*bytes.get(i + 2)?)?;
            let decoded = hi << 4 | lo;
            if !needs_escape(decoded) {
                return None;
            }
            out.push(decoded);
            i += 3;
        } else if needs_escape(b) {
            return None;
        } else {
            out.push(b);
            i += 1;
        }
    }
    Some(out)
}

/// Writes the subjects of one configuration.
#[derive(Clone, Debug)]
pub struct SubjectWriter {
    prefix: String,
}

impl SubjectWriter {
    /// Subjects under `prefix` (checked by the configuration: dot-separated non-empty tokens
    /// without wildcards or whitespace).
    pub fn new(prefix: &str) -> Self {
        SubjectWriter {
            prefix: prefix.to_owned(),
        }
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Appends `<prefix>.<device>.<sensor>` to `out`, or nothing if an id is empty.
    pub fn write(&self, device: &[u8], sensor: &[u8], out: &mut BytesMut) -> Result<(), EmptyId> {
        if device.is_empty() || sensor.is_empty() {
            return Err(EmptyId);
        }
        out.reserve(self.prefix.len() + 2 + 3 * (device.len() + sensor.len()));
        out.put_slice(self.prefix.as_bytes());
        out.put_u8(b'.');
        escape_into(device, out);
        out.put_u8(b'.');
        escape_into(sensor, out);
        Ok(())
    }

    /// `<prefix>.<device>.<sensor>` as a string.
    ///
    /// ```
    /// let w = emitd::subject::SubjectWriter::new("telemetry.agg");
    /// assert_eq!(w.subject(b"dev1", b"temp").unwrap(), "telemetry.agg.dev1.temp");
    /// assert_eq!(w.subject(b"a.b", b">").unwrap(), "telemetry.agg.a%2Eb.%3E");
    /// assert!(w.subject(b"", b"temp").is_err());
    /// ```
    pub fn subject(&self, device: &[u8], sensor: &[u8]) -> Result<String, EmptyId> {
        let mut out = BytesMut::new();
        self.write(device, sensor, &mut out)?;
        Ok(String::from_utf8(out.to_vec()).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &[&[u8]] = &[
        b"a.b",
        b">",
        b"*",
        b"a.>",
        b"a b",
        b" ",
        b"\t",
        b"line\r\nPUB x 1",
        b"quo\"te",
        b"back\\slash",
        b"%",
        b"%2E",
        b"..",
        b".",
        b"\0",
        b"\x7f",
        b"caf\xc3\xa9",
        b"\xff\xfe",
        b"$SYS",
        b"a*b>c",
    ];

    fn tokens(subject: &str) -> Vec<&str> {
        subject.split('.').collect()
    }

    #[test]
    fn ordinary_ids_are_unchanged() {
        let w = SubjectWriter::new("telemetry.agg");
        assert_eq!(
            w.subject(b"dev00001", b"sen002").unwrap(),
            "telemetry.agg.dev00001.sen002"
        );
        assert_eq!(
            w.subject(b"Site_7-A:x", b"t#1").unwrap(),
            "telemetry.agg.Site_7-A:x.t#1"
        );
    }

    #[test]
    fn hostile_ids_are_always_exactly_one_safe_token() {
        let w = SubjectWriter::new("telemetry.agg");
        for &device in HOSTILE {
            for &sensor in HOSTILE {
                let s = w.subject(device, sensor).unwrap();
                let t = tokens(&s);
                assert_eq!(t.len(), 4, "{device:?}/{sensor:?} gave {s:?}");
                assert_eq!(&t[..2], ["telemetry", "agg"]);
                for token in &t[2..] {
                    assert!(!token.is_empty());
                    assert!(*token != "*" && *token != ">", "wildcard token in {s:?}");
                    assert!(!token.contains(['*', '>']), "wildcard character in {s:?}");
                    assert!(
                        token.bytes().all(|b| (b'!'..=b'~').contains(&b)),
                        "unprintable byte in {s:?}"
                    );
                }
                assert_eq!(unescape(t[2]).unwrap(), device);
                assert_eq!(unescape(t[3]).unwrap(), sensor);
            }
        }
    }

    #[test]
    fn escaping_is_reversible_for_every_byte() {
        let all: Vec<u8> = (0..=255).collect();
        let e = escape(&all);
        assert_eq!(unescape(&e).unwrap(), all);
        for b in 0..=255u8 {
            assert_eq!(unescape(&escape(&[b])).unwrap(), [b]);
        }
        assert_eq!(escape(b"a.b"), "a%2Eb");
        assert_eq!(escape(b"%2E"), "%252E");
        assert_ne!(escape(b"a.b"), escape(b"a%2Eb"));
    }

    #[test]
    fn distinct_ids_give_distinct_tokens() {
        let mut seen = std::collections::HashSet::new();
        for &id in HOSTILE {
            assert!(seen.insert(escape(id)), "{id:?} collides");
        }
    }

    #[test]
    fn unescape_refuses_what_escape_never_writes() {
        for bad in ["a.b", "%2e", "%4", "%", "%41", "a b", "*", ">", "caf\u{e9}"] {
            assert_eq!(unescape(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn empty_ids_have_no_subject() {
        let w = SubjectWriter::new("p");
        assert_eq!(w.subject(b"", b"s"), Err(EmptyId));
        assert_eq!(w.subject(b"d", b""), Err(EmptyId));
        let mut out = BytesMut::new();
        assert!(w.write(b"", b"", &mut out).is_err());
        assert!(out.is_empty());
    }
}
