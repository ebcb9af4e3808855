//! [`Partial`]: one pipeline's aggregate of one key and window, read back from the document emitd
//! published (README, "Aggregates"), as the `records::Aggregate` it was made from, so that the
//! partials merge by `records::merge`'s rules.
//!
//! What a document carries decides what its aggregate carries: `count` is required (a merge
//! needs it); `sum` (else `mean`) gives the sum, `stddev` with the mean gives M2
//! (`records::Moments::from_published`); `min`, `max`, `last` with `last_ms`, and `histogram`
//! (OTLP's form, `records::ExpHistogram::from_otlp`) are taken as they are. The quantiles
//! (`p50`, ...) are not read: they are recomputed from the merged histogram.

use records::{Aggregate, ExpHistogram, Moments, Statistics};
use serde_json::Value;

/// One partial aggregate and the pipeline that emitted it.
#[derive(Clone, Debug)]
pub struct Partial {
    /// The emitting pipeline (`[pipeline] instance`).
    pub instance: String,
    /// What it aggregated; its statistics are the fields the document carried.
    pub aggregate: Aggregate,
}

/// Why a document is not a partial aggregate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BadPartial {
    /// Not a JSON object.
    NotJson,
    /// A required field is missing or of the wrong type.
    Missing(&'static str),
    /// An id does not fit an aggregate (device ≤ 48 bytes, sensor ≤ 32, unit ≤ 16).
    IdTooLong,
    /// The histogram is not one of `budget` buckets.
    BadHistogram,
}

impl std::fmt::Display for BadPartial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadPartial::NotJson => f.write_str("not a JSON object"),
            BadPartial::Missing(field) => write!(f, "no usable `{field}`"),
            BadPartial::IdTooLong => f.write_str("an id is too long for an aggregate"),
            BadPartial::BadHistogram => f.write_str("the histogram does not fit the configured buckets"),
        }
    }
}

impl std::error::Error for BadPartial {}

impl Partial {
    /// Reads a JSON aggregate document whose histogram (if any) has at most `budget` buckets
    /// (`[aggd] histogram_buckets` of the fleet).
    ///
    /// ```
    /// let doc = br#"{"device":"d","sensor":"s","unit":"C","instance":"edge-1","window_start_ms":0,
    ///   "window_end_ms":60000,"count":2,"mean":1.5,"stddev":0.5,"min":1,"max":2,"last":2,"last_ms":59000}"#;
    /// let p = telemetry_merge::Partial::from_json(doc, 16).unwrap();
    /// assert_eq!((p.instance.as_str(), p.aggregate.count, p.aggregate.sum, p.aggregate.m2), ("edge-1", 2, 3.0, 0.5));
    /// ```
    pub fn from_json(doc: &[u8], budget: u32) -> Result<Partial, BadPartial> {
        let v: Value = serde_json::from_slice(doc).map_err(|_| BadPartial::NotJson)?;
        let v = v.as_object().ok_or(BadPartial::NotJson)?;
        let text = |k: &'static str| v.get(k).and_then(Value::as_str).ok_or(BadPartial::Missing(k));
        let int = |k: &'static str| v.get(k).and_then(Value::as_u64).ok_or(BadPartial::Missing(k));
        let num = |k: &str| v.get(k).and_then(Value::as_f64);
        let unit = v.get("unit").and_then(Value::as_str).unwrap_or("");
        let mut a = Aggregate::new(text("device")?.as_bytes(), text("sensor")?.as_bytes(), unit.as_bytes())
            .ok_or(BadPartial::IdTooLong)?;
        a.window_start_ms = int("window_start_ms")?;
        a.window_end_ms = int("window_end_ms")?;
        let count = int("count")?;
        let mut carried = Statistics::COUNT;
        if num("mean").is_some() {
            carried = carried | Statistics::MEAN;
        }
        let mean = match (num("sum"), num("mean")) {
            (Some(sum), _) => {
                carried = carried | Statistics::SUM;
                a.sum = sum;
                sum / count.max(1) as f64
            }
            (None, Some(mean)) => {
                a.sum = mean * count as f64;
                mean
            }
            (None, None) => f64::NAN,
        };
        a.count = count;
        if let (Some(sd), false) = (num("stddev"), mean.is_nan()) {
            carried = carried | Statistics::STDDEV;
            let m = Moments::from_published(count, mean, sd);
            a.m2 = m.m2;
        }
        if let Some(min) = num("min") {
            (a.min, carried) = (min, carried | Statistics::MIN);
        }
        if let Some(max) = num("max") {
            (a.max, carried) = (max, carried | Statistics::MAX);
        }
        if let (Some(last), Some(last_ms)) = (num("last"), v.get("last_ms").and_then(Value::as_u64)) {
            (a.last, a.last_ms, carried) = (last, last_ms, carried | Statistics::LAST);
        }
        if let Some(h) = v.get("histogram") {
            a.histogram = histogram(h, budget).ok_or(BadPartial::BadHistogram)?;
            carried = carried | Statistics::HISTOGRAM;
            if v.keys()
                .any(|k| k.starts_with('p') && k[1..].starts_with(|c: char| c.is_ascii_digit()))
            {
                carried = carried | Statistics::QUANTILES;
            }
        }
        a.set_statistics(carried);
        Ok(Partial {
            instance: text("instance")?.to_owned(),
            aggregate: a,
        })
    }
}

/// An OTLP-form histogram object.
fn histogram(h: &Value, budget: u32) -> Option<ExpHistogram> {
    let sign = |name: &str| -> Option<(i32, Vec<u64>)> {
        let s = h.get(name)?;
        let offset = i32::try_from(s.get("offset")?.as_i64()?).ok()?;
        let counts = s
            .get("counts")?
            .as_array()?
            .iter()
            .map(Value::as_u64)
            .collect::<Option<Vec<u64>>>()?;
        Some((offset, counts))
    };
    let scale = i8::try_from(h.get("scale")?.as_i64()?).ok()?;
    let zero = h.get("zero_count")?.as_u64()?;
    let (pos, neg) = (sign("positive")?, sign("negative")?);
    ExpHistogram::from_otlp(scale, zero, (pos.0, &pos.1), (neg.0, &neg.1), budget)
}
