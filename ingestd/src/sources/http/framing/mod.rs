//! Splitting an HTTP body into one payload per reading, by its `Content-Type`, without decoding
//! the readings (decoded does that, once): only the framing is read, items are skipped over, and
//! the result is a list of byte ranges into the body (no copy, no allocation per reading).
//!
//! | `Content-Type` | body | one reading is |
//! |---|---|---|
//! | `application/cbor` | a CBOR sequence (RFC 8742) of one or more items | each top-level item, or each element of a top-level array |
//! | `application/json` | one JSON value | the value, or each element if it is an array |
//! | `application/x-ndjson` | lines | each non-blank line |
//! | `application/x-protobuf` | a `telemetry.v1.ReadingBatch` | each `readings` (field 1) |
//! | `application/x-protobuf; messageType=telemetry.v1.ReadingBatch` | the same | each `readings` (field 1) |
//! | `application/x-protobuf; messageType=telemetry.v1.Reading` | one `Reading` | the body |
//!
//! An HTTP body is a batch, as in every comparable API (OTLP's `ExportMetricsServiceRequest`,
//! Prometheus remote write's `WriteRequest`); one reading is a batch of one. A `ReadingBatch`
//! and a `Reading` cannot be told apart by their bytes (both may start with field 1,
//! length-delimited), so a sender that posts a bare `Reading` says so with the `messageType`
//! parameter (also accepted as `proto`), a convention of protobuf-over-HTTP tools.
//!
//! ```
//! use ingestd::sources::http::framing::{split, Framing};
//! let body = br#"[{"d":"a","s":"t","v":1}, {"d":"b","s":"t","v":2}]"#;
//! let mut items = Vec::new();
//! split(Framing::of("application/json").unwrap().unwrap(), body, &mut items).unwrap();
//! assert_eq!(&body[items[1].clone()], br#"{"d":"b","s":"t","v":2}"#);
//! ```

mod cbor;
mod json;
mod protobuf;

use std::ops::Range;

use records::ContentType;

/// Deepest nesting the splitters follow; deeper bodies are refused (400), so that a hostile body
/// cannot exhaust the stack.
pub const MAX_DEPTH: u32 = 64;

/// The protobuf message type of a batch, as the `messageType` parameter names it.
pub const PROTOBUF_BATCH: &str = "telemetry.v1.ReadingBatch";
/// The protobuf message type of one reading.
pub const PROTOBUF_READING: &str = "telemetry.v1.Reading";

/// How a body is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// `application/cbor`.
    Cbor,
    /// `application/json`.
    Json,
    /// `application/x-ndjson`.
    Ndjson,
    /// `application/x-protobuf; messageType=telemetry.v1.Reading`: one `Reading`.
    ProtobufReading,
    /// `application/x-protobuf` (or with `messageType=telemetry.v1.ReadingBatch`): a
    /// `ReadingBatch`.
    ProtobufBatch,
}

/// The body's framing cannot be split (400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FramingError(pub &'static str);

impl std::fmt::Display for FramingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl Framing {
    /// The framing a `Content-Type` declares: `None` for one ingestd does not split (415),
    /// `Some(Err)` for protobuf with a message type other than ours (415 too, with a reason).
    pub fn of(content_type: &str) -> Option<Result<Framing, String>> {
        let mut parts = content_type.split(';');
        let essence = parts.next().unwrap_or("").trim();
        if essence.eq_ignore_ascii_case("application/x-ndjson") || essence.eq_ignore_ascii_case("application/jsonl") {
            return Some(Ok(Framing::Ndjson));
        }
        match ContentType::from_mime(essence) {
            ContentType::Cbor => Some(Ok(Framing::Cbor)),
            ContentType::Json => Some(Ok(Framing::Json)),
            ContentType::Protobuf => {
                let message_type = parts.find_map(|p| {
                    let (k, v) = p.split_once('=')?;
                    let k = k.trim();
                    (k.eq_ignore_ascii_case("messageType") || k.eq_ignore_ascii_case("proto"))
                        .then(|| v.trim().trim_matches('"'))
                });
                Some(match message_type {
                    None | Some(PROTOBUF_BATCH) => Ok(Framing::ProtobufBatch),
                    Some(PROTOBUF_READING) => Ok(Framing::ProtobufReading),
                    Some(other) => Err(format!(
                        "messageType {other:?}: must be {PROTOBUF_READING} or {PROTOBUF_BATCH}"
                    )),
                })
            }
            ContentType::Unknown => None,
        }
    }

    /// The format tag each reading's raw record carries.
    pub fn content_type(self) -> ContentType {
        match self {
            Framing::Cbor => ContentType::Cbor,
            Framing::Json | Framing::Ndjson => ContentType::Json,
            Framing::ProtobufReading | Framing::ProtobufBatch => ContentType::Protobuf,
        }
    }
}

/// Appends to `items` the byte range of each reading in `body`.
pub fn split(framing: Framing, body: &[u8], items: &mut Vec<Range<usize>>) -> Result<(), FramingError> {
    if body.is_empty() {
        return Err(FramingError("empty body"));
    }
    match framing {
        Framing::Cbor => cbor::split(body, items),
        Framing::Json => json::split(body, items),
        Framing::Ndjson => {
            split_lines(body, items);
            Ok(())
        }
        Framing::ProtobufReading => {
            items.push(0..body.len());
            Ok(())
        }
        Framing::ProtobufBatch => protobuf::split_batch(body, items),
    }
}

fn split_lines(body: &[u8], items: &mut Vec<Range<usize>>) {
    let mut start = 0;
    for line in body.split(|&b| b == b'\n') {
        let range = trim(body, start..start + line.len());
        start += line.len() + 1;
        if !range.is_empty() {
            items.push(range);
        }
    }
}

/// `range` without leading and trailing ASCII white space (JSON's four, and none other).
fn trim(body: &[u8], mut range: Range<usize>) -> Range<usize> {
    let ws = |b: u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    while range.start < range.end && ws(body[range.start]) {
        range.start += 1;
    }
    while range.end > range.start && ws(body[range.end - 1]) {
        range.end -= 1;
    }
    range
}

#[cfg(test)]
mod tests {
    //! Bodies come from encoders nobody here wrote: ciborium, serde_json, prost.
    use super::*;
    use serde::Serialize;

    #[derive(Serialize, Clone, PartialEq, prost::Message)]
    struct Reading {
        #[prost(string, tag = "1")]
        d: String,
        #[prost(string, tag = "2")]
        s: String,
        #[prost(double, tag = "3")]
        v: f64,
        #[prost(string, tag = "4")]
        #[serde(skip)]
        unit: String,
        #[prost(uint64, tag = "5")]
        #[serde(skip)]
        seq: u64,
        #[prost(uint64, tag = "6")]
        #[serde(skip)]
        time_ms: u64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    struct ReadingBatch {
        #[prost(message, repeated, tag = "1")]
        readings: Vec<Reading>,
    }

    fn readings(n: usize) -> Vec<Reading> {
        (0..n)
            .map(|i| Reading {
                d: format!("dev-{i}"),
                s: "temp".into(),
                v: i as f64 * 1.5,
                unit: "C".into(),
                seq: i as u64,
                time_ms: 1_700_000_000_000 + i as u64,
            })
            .collect()
    }

    fn cbor(value: &impl Serialize) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(value, &mut out).unwrap();
        out
    }

    fn split_ok(framing: Framing, body: &[u8]) -> Vec<Vec<u8>> {
        let mut items = Vec::new();
        split(framing, body, &mut items).unwrap_or_else(|e| panic!("{e}: {body:?}"));
        items.into_iter().map(|r| body[r].to_vec()).collect()
    }

    fn split_err(framing: Framing, body: &[u8]) -> FramingError {
        split(framing, body, &mut Vec::new()).unwrap_err()
    }

    #[test]
    fn cbor_map_array_and_sequence_split_into_the_encoders_items() {
        let rs = readings(3);
        let each: Vec<Vec<u8>> = rs.iter().map(cbor).collect();
        assert_eq!(split_ok(Framing::Cbor, &each[0]), vec![each[0].clone()]);
        assert_eq!(split_ok(Framing::Cbor, &cbor(&rs)), each);
        assert_eq!(split_ok(Framing::Cbor, &each.concat()), each, "an RFC 8742 sequence");
        // Indefinite-length array (ciborium writes definite ones): 0x9f items 0xff.
        let indefinite = [&[0x9f][..], &each.concat(), &[0xff]].concat();
        assert_eq!(split_ok(Framing::Cbor, &indefinite), each);
        // Items of every kind are skipped whole (decoded judges them).
        let odd = cbor(&(
            1u8,
            -70000i64,
            "text",
            vec![1.5f64, f64::NAN],
            serde_bytes_like(),
            true,
            (),
        ));
        assert_eq!(split_ok(Framing::Cbor, &odd).len(), 7);
    }

    fn serde_bytes_like() -> std::collections::BTreeMap<String, Vec<u8>> {
        [("k".to_owned(), vec![1, 2, 3])].into()
    }

    #[test]
    fn broken_cbor_is_a_framing_error_never_a_panic() {
        let whole = cbor(&readings(2));
        for cut in 1..whole.len() {
            assert!(
                split(Framing::Cbor, &whole[..cut], &mut Vec::new()).is_err(),
                "cut at {cut}"
            );
        }
        assert_eq!(split_err(Framing::Cbor, b""), FramingError("empty body"));
        assert!(
            split(Framing::Cbor, &[0x9f, 0xa0], &mut Vec::new()).is_err(),
            "array not closed"
        );
        assert!(split(Framing::Cbor, &[0xff], &mut Vec::new()).is_err(), "a lone break");
        assert!(
            split(Framing::Cbor, &[0x1c], &mut Vec::new()).is_err(),
            "reserved length"
        );
        assert!(split(
            Framing::Cbor,
            &[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            &mut Vec::new()
        )
        .is_err());
        let deep = [vec![0x81; 100], vec![0xa0]].concat();
        assert_eq!(
            split_err(Framing::Cbor, &deep[1..]),
            FramingError("CBOR nested too deeply")
        );
    }

    #[test]
    fn json_object_and_array_split_into_the_encoders_items() {
        let rs = readings(3);
        let each: Vec<Vec<u8>> = rs.iter().map(|r| serde_json::to_vec(r).unwrap()).collect();
        assert_eq!(split_ok(Framing::Json, &each[0]), vec![each[0].clone()]);
        assert_eq!(split_ok(Framing::Json, &serde_json::to_vec(&rs).unwrap()), each);
        let pretty = serde_json::to_vec_pretty(&rs).unwrap();
        let got = split_ok(Framing::Json, &pretty);
        assert_eq!(got.len(), 3);
        for (g, r) in got.iter().zip(&rs) {
            assert_eq!(
                &serde_json::from_slice::<serde_json::Value>(g).unwrap(),
                &serde_json::to_value(r).unwrap()
            );
        }
        // Brackets and commas inside strings are not structure.
        let tricky = br#"[{"d":"a,]}\"[","s":"t","v":1} , 7, "x", [1,{"a":[]}] ]"#;
        assert_eq!(split_ok(Framing::Json, tricky).len(), 4);
        assert_eq!(split_ok(Framing::Json, b" [ ] "), Vec::<Vec<u8>>::new());
    }

    #[test]
    fn broken_json_is_a_framing_error() {
        for bad in [
            &br#"[{"d":"a"}"#[..],
            br#"[{"d":"a"},]"#,
            br#"[,{"d":"a"}]"#,
            br#"[{"d":"a"} {"d":"b"}]"#,
            br#"{"d":"a"} x"#,
            br#"{"d":"a"]"#,
            br#"{"d":"a}"#,
            b"   ",
        ] {
            assert!(
                split(Framing::Json, bad, &mut Vec::new()).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let deep = [vec![b'['; 100], vec![b']'; 100]].concat();
        assert!(split(Framing::Json, &deep, &mut Vec::new()).is_err());
    }

    #[test]
    fn ndjson_lines_skip_blank_ones() {
        let body = b"{\"d\":\"a\"}\r\n\n  {\"d\":\"b\"}  \n\n";
        assert_eq!(
            split_ok(Framing::Ndjson, body),
            vec![b"{\"d\":\"a\"}".to_vec(), b"{\"d\":\"b\"}".to_vec()]
        );
    }

    #[test]
    fn protobuf_batch_splits_into_prosts_readings() {
        use prost::Message;
        let rs = readings(3);
        let batch = ReadingBatch { readings: rs.clone() }.encode_to_vec();
        let got = split_ok(Framing::ProtobufBatch, &batch);
        assert_eq!(got, rs.iter().map(Message::encode_to_vec).collect::<Vec<_>>());
        let one = rs[0].encode_to_vec();
        assert_eq!(split_ok(Framing::ProtobufReading, &one), vec![one.clone()]);
        for cut in 1..batch.len() {
            let mut items = Vec::new();
            if split(Framing::ProtobufBatch, &batch[..cut], &mut items).is_ok() {
                // Only cuts between readings frame cleanly.
                assert!(items.iter().all(|r| r.end <= cut));
            }
        }
        // A field 1 that is not length-delimited.
        assert!(split(Framing::ProtobufBatch, &[0x08, 0x01], &mut Vec::new()).is_err());
        // An unknown field (2, varint) is skipped.
        let with_unknown = [&batch[..], &[0x10, 0x05]].concat();
        assert_eq!(split_ok(Framing::ProtobufBatch, &with_unknown).len(), 3);
    }

    #[test]
    fn content_types_pick_the_framing() {
        let of = |ct: &str| Framing::of(ct).map(|r| r.ok());
        assert_eq!(of("application/cbor"), Some(Some(Framing::Cbor)));
        assert_eq!(of("Application/JSON; charset=utf-8"), Some(Some(Framing::Json)));
        assert_eq!(of("application/x-ndjson"), Some(Some(Framing::Ndjson)));
        assert_eq!(
            of("application/x-protobuf"),
            Some(Some(Framing::ProtobufBatch)),
            "a body is a batch"
        );
        assert_eq!(
            of("application/x-protobuf; messageType=telemetry.v1.Reading"),
            Some(Some(Framing::ProtobufReading))
        );
        assert_eq!(
            of("application/x-protobuf; messageType=\"telemetry.v1.ReadingBatch\""),
            Some(Some(Framing::ProtobufBatch))
        );
        assert_eq!(
            of("application/protobuf; proto=telemetry.v1.ReadingBatch"),
            Some(Some(Framing::ProtobufBatch))
        );
        assert_eq!(of("application/x-protobuf; messageType=other.Thing"), Some(None));
        assert_eq!(of("text/plain"), None);
        assert_eq!(of(""), None);
        assert_eq!(Framing::Ndjson.content_type(), ContentType::Json);
    }
}
