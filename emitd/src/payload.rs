//! The payload of an aggregate's message: a JSON object (the default) or a CBOR map with the
//! same keys (`[emitd] format = "cbor"`).
//!
//! | key | type | meaning |
//! |---|---|---|
//! | `device`, `sensor`, `unit` | string | the ids, as received (not escaped) |
//! | `instance` | string | `[pipeline] instance` of the emitting pipeline |
//! | `window_start_ms`, `window_end_ms` | integer | the window, ms since the epoch, start inclusive |
//! | `count` | integer | samples in the window |
//! | `sum`, `mean`, `min`, `max`, `stddev`, `last` | number | over the window (`stddev`: population) |
//! | `last_ms` | integer | when `last` was received, ms since the epoch: what a merge of several pipelines' partials orders `last` by |
//!
//! `count` to `last` appear only if `[aggd] statistics` chose them (all by default): each
//! aggregate says which it carries ([`Aggregate::statistics`]); `last_ms` comes with `last`.
//! How partial aggregates of several pipelines merge is `records::merge`.
//!
//! A number that is not finite (only an empty or damaged aggregate has one) is `null` in JSON
//! and a CBOR float in CBOR. Ids that are not UTF-8 (only a damaged record holds such bytes)
//! have the bad bytes replaced by U+FFFD.
//!
//! Encoding writes straight into the caller's buffer: no allocation per message beyond what the
//! buffer itself needs (see `message::MessageBuilder`, which shares one buffer per batch). JSON
//! string escaping is serde_json's, so quotes, backslashes and control characters in hostile
//! ids come out as valid JSON.

use bytes::{BufMut, BytesMut};
use records::{Aggregate, FixedText, Statistics};
use serde::Serialize;
use telemetry_config::AggregateFormat;

/// The payload's fields, borrowed from an aggregate.
#[derive(Debug, Serialize)]
pub struct Body<'a> {
    /// Device id.
    pub device: &'a str,
    /// Sensor name.
    pub sensor: &'a str,
    /// Unit.
    pub unit: &'a str,
    /// The emitting pipeline.
    pub instance: &'a str,
    /// Window start, ms since the epoch (inclusive).
    pub window_start_ms: u64,
    /// Window end, ms since the epoch (exclusive).
    pub window_end_ms: u64,
    /// Samples.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Sum.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sum: Option<f64>,
    /// Mean.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
    /// Smallest sample.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Largest sample.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Population standard deviation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stddev: Option<f64>,
    /// Most recent sample.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last: Option<f64>,
    /// When the most recent sample was received (ms since the epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_ms: Option<u64>,
}

/// Encodes aggregates in one format for one pipeline instance.
#[derive(Clone, Debug)]
pub struct PayloadEncoder {
    format: AggregateFormat,
    instance: String,
}

impl PayloadEncoder {
    /// An encoder for `format`, stamping `instance` into every payload.
    pub fn new(format: AggregateFormat, instance: &str) -> Self {
        PayloadEncoder {
            format,
            instance: instance.to_owned(),
        }
    }

    /// The format.
    pub fn format(&self) -> AggregateFormat {
        self.format
    }

    /// Appends the payload of `agg` to `out`.
    pub fn encode(&self, agg: &Aggregate, out: &mut BytesMut) {
        let (device, sensor, unit) = (agg.device(), agg.sensor(), agg.unit());
        let (device, sensor, unit) = (device.text(), sensor.text(), unit.text());
        let carried = agg.statistics();
        let chosen = |s| carried.contains(s);
        let body = Body {
            device: &device,
            sensor: &sensor,
            unit: &unit,
            instance: &self.instance,
            window_start_ms: agg.window_start_ms,
            window_end_ms: agg.window_end_ms,
            count: chosen(Statistics::COUNT).then_some(agg.count),
            sum: chosen(Statistics::SUM).then_some(agg.sum),
            mean: chosen(Statistics::MEAN).then(|| agg.mean()),
            min: chosen(Statistics::MIN).then_some(agg.min),
            max: chosen(Statistics::MAX).then_some(agg.max),
            stddev: chosen(Statistics::STDDEV).then(|| agg.stddev()),
            last: chosen(Statistics::LAST).then_some(agg.last),
            last_ms: chosen(Statistics::LAST).then_some(agg.last_ms),
        };
        out.reserve(320);
        let writer = out.writer();
        // Neither can fail: the body serializes infallibly (strings, integers and floats) and
        // the writer only appends to memory.
        match self.format {
            AggregateFormat::Json => serde_json::to_writer(writer, &body).expect("JSON into memory"),
            AggregateFormat::Cbor => ciborium::into_writer(&body, writer).expect("CBOR into memory"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn aggregate(device: &[u8], sensor: &[u8], unit: &[u8]) -> Aggregate {
        let mut a = Aggregate::new(device, sensor, unit).unwrap();
        a.window_start_ms = 1_700_000_000_000;
        a.window_end_ms = 1_700_000_060_000;
        for (i, v) in [1.0, 2.0, 3.0, 4.0].into_iter().enumerate() {
            a.fold(v, 1_700_000_059_990 + i as u64);
        }
        a
    }

    fn json(agg: &Aggregate) -> Value {
        let mut out = BytesMut::new();
        PayloadEncoder::new(AggregateFormat::Json, "edge-1").encode(agg, &mut out);
        serde_json::from_slice(&out).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out)))
    }

    #[test]
    fn json_has_every_field() {
        let v = json(&aggregate(b"dev1", b"temp", b"C"));
        assert_eq!(v["device"], "dev1");
        assert_eq!(v["sensor"], "temp");
        assert_eq!(v["unit"], "C");
        assert_eq!(v["instance"], "edge-1");
        assert_eq!(v["window_start_ms"], 1_700_000_000_000u64);
        assert_eq!(v["window_end_ms"], 1_700_000_060_000u64);
        assert_eq!(v["count"], 4);
        assert_eq!(v["sum"], 10.0);
        assert_eq!(v["mean"], 2.5);
        assert_eq!(v["min"], 1.0);
        assert_eq!(v["max"], 4.0);
        assert_eq!(v["last"], 4.0);
        assert_eq!(v["last_ms"], 1_700_000_059_993u64);
        let sd = v["stddev"].as_f64().unwrap();
        assert!((sd - 1.25f64.sqrt()).abs() < 1e-12, "{sd}");
    }

    #[test]
    fn hostile_ids_are_valid_json_strings_that_round_trip() {
        let hostile: &[&str] = &[
            "quo\"te",
            "back\\slash",
            "\"},\"device\":\"x",
            "tab\tnew\nline\rcr",
            "\0nul\x01\x1f\x7f",
            "a.b",
            ">",
            "*",
            " ",
            "\u{2028}\u{2029}",
            "caf\u{e9} \u{1f600}",
            "</script>",
        ];
        for &d in hostile {
            for &s in &hostile[..4] {
                let v = json(&aggregate(d.as_bytes(), s.as_bytes(), b"\"u\""));
                assert_eq!(v["device"], d);
                assert_eq!(v["sensor"], s);
                assert_eq!(v["unit"], "\"u\"");
                assert_eq!(v.as_object().unwrap().len(), 14, "an id injected keys: {v}");
            }
        }
    }

    #[test]
    fn invalid_utf8_is_replaced_not_copied() {
        let v = json(&aggregate(b"bad\xff\xfe", b"s", b""));
        assert_eq!(v["device"], "bad\u{fffd}\u{fffd}");
        assert_eq!(v["unit"], "");
    }

    #[test]
    fn non_finite_numbers_are_null_in_json() {
        let mut a = aggregate(b"d", b"s", b"u");
        a.count = 0;
        a.min = f64::INFINITY;
        let v = json(&a);
        assert!(v["mean"].is_null());
        assert!(v["stddev"].is_null());
        assert!(v["min"].is_null());
    }

    #[test]
    fn cbor_has_the_same_keys_and_values() {
        let agg = aggregate(b"a.b\"", b"temp", b"C");
        let mut out = BytesMut::new();
        PayloadEncoder::new(AggregateFormat::Cbor, "edge-1").encode(&agg, &mut out);
        let v: ciborium::Value = ciborium::from_reader(&out[..]).unwrap();
        let map = v.as_map().unwrap();
        let get = |k: &str| {
            map.iter()
                .find(|(key, _)| key.as_text() == Some(k))
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(map.len(), 14);
        assert_eq!(get("device").as_text(), Some("a.b\""));
        assert_eq!(get("instance").as_text(), Some("edge-1"));
        assert_eq!(get("count").as_integer(), Some(4.into()));
        assert_eq!(get("window_end_ms").as_integer(), Some(1_700_000_060_000u64.into()));
        assert_eq!(get("mean").as_float(), Some(2.5));
        assert_eq!(get("last_ms").as_integer(), Some(1_700_000_059_993u64.into()));
        let sd = get("stddev").as_float().unwrap();
        assert!((sd - 1.25f64.sqrt()).abs() < 1e-12, "{sd}");
    }

    #[test]
    fn only_the_chosen_statistics_are_published() {
        let mut a = aggregate(b"d", b"s", b"u");
        a.set_statistics(Statistics::COUNT | Statistics::MEAN);
        let v = json(&a);
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "count",
                "device",
                "instance",
                "mean",
                "sensor",
                "unit",
                "window_end_ms",
                "window_start_ms"
            ]
        );
        assert_eq!((v["count"].as_u64(), v["mean"].as_f64()), (Some(4), Some(2.5)));
        a.set_statistics(Statistics::MIN | Statistics::MAX | Statistics::STDDEV | Statistics::LAST);
        let mut out = BytesMut::new();
        PayloadEncoder::new(AggregateFormat::Cbor, "edge-1").encode(&a, &mut out);
        let v: ciborium::Value = ciborium::from_reader(&out[..]).unwrap();
        let mut keys: Vec<String> = v
            .as_map()
            .unwrap()
            .iter()
            .map(|(k, _)| k.as_text().unwrap().to_owned())
            .collect();
        keys.sort_unstable();
        let want = [
            "device",
            "instance",
            "last",
            "last_ms",
            "max",
            "min",
            "sensor",
            "stddev",
            "unit",
            "window_end_ms",
            "window_start_ms",
        ];
        assert_eq!(keys, want);
    }

    #[test]
    fn payloads_append_to_the_buffer() {
        let enc = PayloadEncoder::new(AggregateFormat::Json, "i");
        let mut out = BytesMut::new();
        enc.encode(&aggregate(b"a", b"b", b""), &mut out);
        let first = out.split().freeze();
        enc.encode(&aggregate(b"c", b"d", b""), &mut out);
        let second = out.split().freeze();
        assert_eq!(serde_json::from_slice::<Value>(&first).unwrap()["device"], "a");
        assert_eq!(serde_json::from_slice::<Value>(&second).unwrap()["device"], "c");
    }
}
