//! Which parser a raw record's payload gets: the content type ingestd saw (the MQTT 5 property,
//! or an HTTP `Content-Type`), else the per-topic lists of `[decoded]` (`json_topics` first, then
//! `cbor_topics`, then `proto_topics`, in MQTT filter syntax), else `[decoded] format`, where
//! `auto` looks at the first byte: `{` or JSON whitespace means JSON, anything else CBOR (a CBOR
//! map starts with 0xa0–0xbf, never with those). Protobuf is never guessed from the bytes: almost
//! any byte string is a well-formed protobuf message, so it must be declared.
//!
//! Filters are checked once at start-up; matching splits the topic in place and allocates nothing.

use std::fmt;

use records::{ContentType, RawRecord};
use telemetry_config::{Decoded, PayloadFormat};

use crate::decode::Format;

/// An MQTT topic filter: levels separated by `/`, where `+` matches exactly one level and a final
/// `#` matches any number of levels, including none (`a/#` matches `a`). As in MQTT, a filter
/// starting with a wildcard does not match topics starting with `$`.
///
/// ```
/// use decoded::format::TopicFilter;
/// let f = TopicFilter::new("site/+/sensor/#").unwrap();
/// assert!(f.matches(b"site/s1/sensor/t"));
/// assert!(f.matches(b"site/s1/sensor"));
/// assert!(!f.matches(b"site/s1/actuator/t"));
/// assert!(TopicFilter::new("site/#/x").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicFilter(String);

/// A filter that is not valid MQTT filter syntax.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadFilter {
    /// The config key, for example `decoded.json_topics`.
    pub key: &'static str,
    /// The filter.
    pub filter: String,
}

impl fmt::Display for BadFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "config: {} = {:?}: must be an MQTT topic filter (not empty, no NUL, + and # alone in their level, # only last)",
            self.key, self.filter
        )
    }
}

impl std::error::Error for BadFilter {}

impl TopicFilter {
    /// Checks the syntax. Errors carry an empty key; [`FormatChooser::new`] names it.
    pub fn new(filter: &str) -> Result<TopicFilter, BadFilter> {
        let levels: Vec<&str> = filter.split('/').collect();
        let ok = !filter.is_empty()
            && !filter.contains('\0')
            && levels.iter().enumerate().all(|(i, level)| match *level {
                "+" => true,
                "#" => i == levels.len() - 1,
                other => !other.contains(['+', '#']),
            });
        if ok {
            Ok(TopicFilter(filter.to_owned()))
        } else {
            Err(BadFilter {
                key: "",
                filter: filter.to_owned(),
            })
        }
    }

    /// True if `topic` matches.
    pub fn matches(&self, topic: &[u8]) -> bool {
        if topic.first() == Some(&b'$') && self.0.starts_with(['+', '#']) {
            return false;
        }
        let mut levels = topic.split(|&b| b == b'/');
        for want in self.0.split('/') {
            match want {
                "#" => return true,
                "+" => {
                    if levels.next().is_none() {
                        return false;
                    }
                }
                literal => {
                    if levels.next() != Some(literal.as_bytes()) {
                        return false;
                    }
                }
            }
        }
        levels.next().is_none()
    }
}

/// Picks the format of each raw record, following `[decoded]`.
#[derive(Clone, Debug)]
pub struct FormatChooser {
    json: Vec<TopicFilter>,
    cbor: Vec<TopicFilter>,
    proto: Vec<TopicFilter>,
    fallback: PayloadFormat,
}

impl FormatChooser {
    /// Checks the filters of `[decoded]`.
    pub fn new(config: &Decoded) -> Result<FormatChooser, BadFilter> {
        let parse = |key: &'static str, filters: &[String]| {
            filters
                .iter()
                .map(|f| TopicFilter::new(f).map_err(|e| BadFilter { key, ..e }))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(FormatChooser {
            json: parse("decoded.json_topics", &config.json_topics)?,
            cbor: parse("decoded.cbor_topics", &config.cbor_topics)?,
            proto: parse("decoded.proto_topics", &config.proto_topics)?,
            fallback: config.format,
        })
    }

    /// The format of one raw record's payload.
    pub fn choose(&self, raw: &RawRecord) -> Format {
        match raw.content_type() {
            ContentType::Json => Format::Json,
            ContentType::Cbor => Format::Cbor,
            ContentType::Protobuf => Format::Protobuf,
            ContentType::Unknown => self.by_topic(raw.topic()).unwrap_or_else(|| match self.fallback {
                PayloadFormat::Json => Format::Json,
                PayloadFormat::Cbor => Format::Cbor,
                PayloadFormat::Protobuf => Format::Protobuf,
                PayloadFormat::Auto => sniff(raw.payload()),
            }),
        }
    }

    fn by_topic(&self, topic: &[u8]) -> Option<Format> {
        if self.json.iter().any(|f| f.matches(topic)) {
            Some(Format::Json)
        } else if self.cbor.iter().any(|f| f.matches(topic)) {
            Some(Format::Cbor)
        } else if self.proto.iter().any(|f| f.matches(topic)) {
            Some(Format::Protobuf)
        } else {
            None
        }
    }
}

/// The format a payload looks like: JSON if it starts with `{` or JSON whitespace, else CBOR.
pub fn sniff(payload: &[u8]) -> Format {
    match payload.first() {
        Some(b'{' | b' ' | b'\t' | b'\n' | b'\r') => Format::Json,
        _ => Format::Cbor,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(f: &str) -> TopicFilter {
        TopicFilter::new(f).unwrap()
    }

    #[test]
    fn filter_matching_follows_mqtt() {
        let cases: &[(&str, &str, bool)] = &[
            ("a/b", "a/b", true),
            ("a/b", "a/c", false),
            ("a/b", "a/b/c", false),
            ("a/b", "a", false),
            ("a/+", "a/b", true),
            ("a/+", "a/", true),
            ("a/+", "a", false),
            ("a/+", "a/b/c", false),
            ("+/+", "/x", true),
            ("+", "a", true),
            ("+", "/a", false),
            ("a/#", "a", true),
            ("a/#", "a/b/c", true),
            ("a/#", "ab", false),
            ("#", "a/b", true),
            ("#", "/", true),
            ("+/b/#", "x/b", true),
            ("+/b/#", "x/c", false),
            ("#", "$SYS/x", false),
            ("+/x", "$SYS/x", false),
            ("$SYS/#", "$SYS/x", true),
            ("site/+/sensor/+", "site/s1/sensor/t", true),
            ("site/+/sensor/+", "site/s1/sensor/t/u", false),
        ];
        for (f, topic, want) in cases {
            assert_eq!(filter(f).matches(topic.as_bytes()), *want, "{f} vs {topic}");
        }
    }

    #[test]
    fn invalid_filters_are_refused_with_their_key() {
        for bad in ["", "a/#/b", "a#", "a/b+", "+a", "a\0"] {
            assert!(TopicFilter::new(bad).is_err(), "{bad:?}");
        }
        let config = Decoded {
            cbor_topics: vec!["ok/#".into(), "x/#/y".into()],
            ..Decoded::default()
        };
        let e = FormatChooser::new(&config).unwrap_err();
        assert_eq!(e.key, "decoded.cbor_topics");
        assert!(
            e.to_string().starts_with("config: decoded.cbor_topics = \"x/#/y\": "),
            "{e}"
        );
        let config = Decoded {
            proto_topics: vec!["p/#/q".into()],
            ..Decoded::default()
        };
        assert_eq!(FormatChooser::new(&config).unwrap_err().key, "decoded.proto_topics");
    }

    fn raw(topic: &str, payload: &[u8], ct: ContentType) -> RawRecord {
        RawRecord::new(topic.as_bytes(), payload, ct, 0).unwrap()
    }

    #[test]
    fn content_type_then_topic_lists_then_format() {
        let chooser = FormatChooser::new(&Decoded {
            format: PayloadFormat::Auto,
            json_topics: vec!["j/#".into(), "both/#".into()],
            cbor_topics: vec!["c/+".into(), "both/#".into(), "cp/#".into()],
            proto_topics: vec!["p/#".into(), "cp/#".into()],
        })
        .unwrap();
        let cbor_bytes = [0xa0];
        // The declared content type wins over everything.
        assert_eq!(chooser.choose(&raw("c/x", b"{}", ContentType::Json)), Format::Json);
        assert_eq!(
            chooser.choose(&raw("j/x", &cbor_bytes, ContentType::Cbor)),
            Format::Cbor
        );
        assert_eq!(
            chooser.choose(&raw("j/x", b"{}", ContentType::Protobuf)),
            Format::Protobuf
        );
        assert_eq!(chooser.choose(&raw("p/x", b"{}", ContentType::Json)), Format::Json);
        // Then the lists, json_topics first.
        assert_eq!(
            chooser.choose(&raw("j/x", &cbor_bytes, ContentType::Unknown)),
            Format::Json
        );
        assert_eq!(chooser.choose(&raw("c/x", b"{}", ContentType::Unknown)), Format::Cbor);
        assert_eq!(
            chooser.choose(&raw("both/x", &cbor_bytes, ContentType::Unknown)),
            Format::Json
        );
        // proto_topics, after the other two lists.
        assert_eq!(
            chooser.choose(&raw("p/a/b", b"{}", ContentType::Unknown)),
            Format::Protobuf
        );
        assert_eq!(
            chooser.choose(&raw("cp/x", &cbor_bytes, ContentType::Unknown)),
            Format::Cbor
        );
        // Protobuf is never sniffed: bytes that would be a Reading still go by the first byte.
        assert_eq!(
            chooser.choose(&raw("other", &[0x12, 1, b's'], ContentType::Unknown)),
            Format::Cbor
        );
        // Then auto: the first byte.
        assert_eq!(chooser.choose(&raw("other", b"{}", ContentType::Unknown)), Format::Json);
        assert_eq!(
            chooser.choose(&raw("other", b" \n{}", ContentType::Unknown)),
            Format::Json
        );
        assert_eq!(
            chooser.choose(&raw("other", &cbor_bytes, ContentType::Unknown)),
            Format::Cbor
        );
        assert_eq!(chooser.choose(&raw("other", b"", ContentType::Unknown)), Format::Cbor);
        assert_eq!(
            chooser.choose(&raw("other", b"[1]", ContentType::Unknown)),
            Format::Cbor
        );
    }

    #[test]
    fn a_fixed_format_applies_to_the_rest() {
        for (format, want) in [
            (PayloadFormat::Json, Format::Json),
            (PayloadFormat::Cbor, Format::Cbor),
            (PayloadFormat::Protobuf, Format::Protobuf),
        ] {
            let chooser = FormatChooser::new(&Decoded {
                format,
                ..Decoded::default()
            })
            .unwrap();
            assert_eq!(chooser.choose(&raw("t", b"{}", ContentType::Unknown)), want);
            assert_eq!(chooser.choose(&raw("t", &[0xa0], ContentType::Unknown)), want);
        }
    }
}
