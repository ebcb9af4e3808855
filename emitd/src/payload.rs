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
use records::exp_histogram::SignCounts;
use records::statistics::quantile_field;
use records::{Aggregate, ExpHistogram, FixedText, Statistics};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use telemetry_config::AggregateFormat;

/// The payload's fields, borrowed from an aggregate.
#[derive(Debug)]
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
    pub count: Option<u64>,
    /// Sum.
    pub sum: Option<f64>,
    /// Mean.
    pub mean: Option<f64>,
    /// Smallest sample.
    pub min: Option<f64>,
    /// Largest sample.
    pub max: Option<f64>,
    /// Population standard deviation.
    pub stddev: Option<f64>,
    /// Most recent sample.
    pub last: Option<f64>,
    /// When the most recent sample was received (ms since the epoch).
    pub last_ms: Option<u64>,
    /// The quantiles, as (field, value), if chosen.
    pub quantiles: Option<(&'a [(String, f64)], &'a ExpHistogram)>,
    /// The histogram, if chosen.
    pub histogram: Option<Otlp<'a>>,
}

impl Serialize for Body<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let numbers = [
            ("sum", self.sum),
            ("mean", self.mean),
            ("min", self.min),
            ("max", self.max),
            ("stddev", self.stddev),
            ("last", self.last),
        ];
        let quantiles = self.quantiles.map_or(&[][..], |(q, _)| q);
        let len = 6
            + usize::from(self.count.is_some())
            + numbers.iter().filter(|(_, v)| v.is_some()).count()
            + usize::from(self.last_ms.is_some())
            + quantiles.len()
            + usize::from(self.histogram.is_some());
        // A definite length: CBOR readers get a sized map, as the derived form gave.
        let mut map = serializer.serialize_map(Some(len))?;
        map.serialize_entry("device", self.device)?;
        map.serialize_entry("sensor", self.sensor)?;
        map.serialize_entry("unit", self.unit)?;
        map.serialize_entry("instance", self.instance)?;
        map.serialize_entry("window_start_ms", &self.window_start_ms)?;
        map.serialize_entry("window_end_ms", &self.window_end_ms)?;
        if let Some(count) = self.count {
            map.serialize_entry("count", &count)?;
        }
        for (key, value) in numbers {
            if let Some(v) = value {
                map.serialize_entry(key, &v)?;
            }
            if key == "last" {
                if let Some(t) = self.last_ms {
                    map.serialize_entry("last_ms", &t)?;
                }
            }
        }
        if let Some((fields, h)) = self.quantiles {
            for (field, q) in fields {
                map.serialize_entry(field, &h.quantile(*q))?;
            }
        }
        if let Some(h) = &self.histogram {
            map.serialize_entry("histogram", h)?;
        }
        map.end()
    }
}

/// An exponential histogram in OTLP's `ExponentialHistogramDataPoint` form, read from the
/// aggregate in place.
#[derive(Debug, Serialize)]
pub struct Otlp<'a> {
    /// `γ = 2^(2^-scale)`.
    pub scale: i8,
    /// Samples within this of 0 are counted in `zero_count` (0: exactly 0).
    pub zero_threshold: f64,
    /// Samples equal to 0.
    pub zero_count: u64,
    /// Positive buckets.
    pub positive: OtlpBuckets<'a>,
    /// Negative buckets, by magnitude.
    pub negative: OtlpBuckets<'a>,
}

/// One sign's buckets: `counts[k]` is bucket `offset + k`, `(γ^i, γ^(i+1)]`.
#[derive(Debug)]
pub struct OtlpBuckets<'a> {
    /// The first bucket's index.
    pub offset: i32,
    /// Consecutive buckets' counts.
    pub counts: SignCounts<'a>,
}

impl Serialize for OtlpBuckets<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("offset", &self.offset)?;
        map.serialize_entry("counts", &Seq(self.counts.clone()))?;
        map.end()
    }
}

/// A sequence serialized from an iterator, without collecting it.
struct Seq<I>(I);

impl<I: Iterator<Item = u64> + Clone> Serialize for Seq<I> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.clone())
    }
}

impl Otlp<'_> {
    /// The OTLP form of `h`.
    pub fn of(h: &ExpHistogram) -> Otlp<'_> {
        let sign = |(offset, counts)| OtlpBuckets { offset, counts };
        Otlp {
            scale: h.scale(),
            zero_threshold: 0.0,
            zero_count: h.zero_count,
            positive: sign(h.positive()),
            negative: sign(h.negative()),
        }
    }
}

/// Encodes aggregates in one format for one pipeline instance.
#[derive(Clone, Debug)]
pub struct PayloadEncoder {
    format: AggregateFormat,
    instance: String,
    /// `[aggd] quantiles`, each with its field name.
    quantiles: Vec<(String, f64)>,
}

impl PayloadEncoder {
    /// An encoder for `format`, stamping `instance` into every payload and publishing
    /// `quantiles` (`[aggd] quantiles`) when an aggregate carries quantiles.
    pub fn new(format: AggregateFormat, instance: &str, quantiles: &[f64]) -> Self {
        PayloadEncoder {
            format,
            instance: instance.to_owned(),
            quantiles: quantiles.iter().map(|&q| (quantile_field(q), q)).collect(),
        }
    }

    /// The encoder a pipeline's configuration describes.
    pub fn of(config: &telemetry_config::Config) -> Self {
        PayloadEncoder::new(config.emitd.format, &config.pipeline.instance, &config.aggd.quantiles)
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
            quantiles: chosen(Statistics::QUANTILES).then_some((&self.quantiles[..], &agg.histogram)),
            histogram: chosen(Statistics::HISTOGRAM).then(|| Otlp::of(&agg.histogram)),
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
        PayloadEncoder::new(AggregateFormat::Json, "edge-1", &[0.5, 0.99]).encode(agg, &mut out);
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
        // 1, 2, 3, 4: p50 is the 2nd, p99 the 4th, within the scale's error.
        let h = &v["histogram"];
        let scale = h["scale"].as_i64().unwrap() as i8;
        let err = records::exp_histogram::relative_error(scale);
        for (field, want) in [("p50", 2.0), ("p99", 4.0)] {
            let got = v[field].as_f64().unwrap();
            assert!(
                (got - want).abs() <= err * want * (1.0 + 1e-12),
                "{field} {got} at scale {scale}"
            );
        }
        assert_eq!(
            (h["zero_threshold"].as_f64(), h["zero_count"].as_u64()),
            (Some(0.0), Some(0))
        );
        let counts: Vec<u64> = serde_json::from_value(h["positive"]["counts"].clone()).unwrap();
        assert_eq!(
            (counts.iter().sum::<u64>(), counts.first(), counts.last()),
            (4, Some(&1), Some(&1))
        );
        assert_eq!(h["negative"]["counts"], serde_json::json!([]));
        // 1 and 4 are two octaves apart (1 and 4, powers of two, close buckets −1 and 7 at scale
        // 2): 17 buckets at scale 3, 9 at scale 2.
        assert_eq!((scale, h["positive"]["offset"].as_i64()), (2, Some(-1)));
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
                assert_eq!(v.as_object().unwrap().len(), 17, "an id injected keys: {v}");
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
        PayloadEncoder::new(AggregateFormat::Cbor, "edge-1", &[0.5, 0.99]).encode(&agg, &mut out);
        let v: ciborium::Value = ciborium::from_reader(&out[..]).unwrap();
        let map = v.as_map().unwrap();
        let get = |k: &str| {
            map.iter()
                .find(|(key, _)| key.as_text() == Some(k))
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(map.len(), 17);
        assert!(
            (get("p99").as_float().unwrap() - 4.0).abs() <= 0.0865 * 4.0,
            "scale 2's bound"
        );
        let h = get("histogram");
        let h = h.as_map().unwrap();
        assert_eq!(h.len(), 5, "scale, zero_threshold, zero_count, positive, negative");
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
        a.set_statistics(Statistics::COUNT | Statistics::QUANTILES);
        let v = json(&a);
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        let ids = [
            "device",
            "instance",
            "sensor",
            "unit",
            "window_end_ms",
            "window_start_ms",
        ];
        let mut want = vec!["count", "p50", "p99"];
        want.extend(ids);
        want.sort_unstable();
        assert_eq!(keys, want, "quantiles without the histogram");
        a.set_statistics(Statistics::HISTOGRAM);
        let v = json(&a);
        assert_eq!(v.as_object().unwrap().len(), ids.len() + 1, "the histogram alone: {v}");
        assert_eq!(v["histogram"]["positive"]["counts"].as_array().unwrap().len(), 9);
        a.set_statistics(Statistics::MIN | Statistics::MAX | Statistics::STDDEV | Statistics::LAST);
        let mut out = BytesMut::new();
        PayloadEncoder::new(AggregateFormat::Cbor, "edge-1", &[0.5, 0.99]).encode(&a, &mut out);
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
        let enc = PayloadEncoder::new(AggregateFormat::Json, "i", &[]);
        let mut out = BytesMut::new();
        enc.encode(&aggregate(b"a", b"b", b""), &mut out);
        let first = out.split().freeze();
        enc.encode(&aggregate(b"c", b"d", b""), &mut out);
        let second = out.split().freeze();
        assert_eq!(serde_json::from_slice::<Value>(&first).unwrap()["device"], "a");
        assert_eq!(serde_json::from_slice::<Value>(&second).unwrap()["device"], "c");
    }
}
