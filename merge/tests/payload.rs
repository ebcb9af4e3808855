//! Partials read back from the documents emitd publishes (its own encoder): every statistic
//! the document carries comes back as the aggregate emitd encoded, to the bit where the
//! document holds the number itself (count, sum, min, max, last, `last_ms`, every histogram
//! count), and M2 from the published stddev within 1e-12.

use bytes::BytesMut;
use emitd::payload::PayloadEncoder;
use proptest::prelude::*;
use records::{Aggregate, Statistics};
use telemetry_config::AggregateFormat;
use telemetry_merge::{BadPartial, Partial};

fn encoded(a: &Aggregate) -> Vec<u8> {
    let mut out = BytesMut::new();
    PayloadEncoder::new(AggregateFormat::Json, "edge-7", &[0.5, 0.99]).encode(a, &mut out);
    out.to_vec()
}

proptest! {
    #[test]
    fn every_carried_statistic_comes_back(
        values in proptest::collection::vec(prop_oneof![-1e6f64..1e6, Just(0.0), -3.0f64..3.0], 1..200),
        bits in 1u16..=0x1ff,
    ) {
        let mut a = Aggregate::new(b"dev\"1", b"temp", b"C").unwrap();
        (a.window_start_ms, a.window_end_ms) = (1_000, 61_000);
        for (i, &v) in values.iter().enumerate() {
            a.fold(v, 1_000 + i as u64);
        }
        let chosen = Statistics::from_bits(bits) | Statistics::COUNT;
        a.set_statistics(chosen);
        let p = Partial::from_json(&encoded(&a), 16).unwrap();
        let b = p.aggregate;
        prop_assert_eq!(p.instance.as_str(), "edge-7");
        prop_assert_eq!((b.device(), b.sensor(), b.unit()), (a.device(), a.sensor(), a.unit()));
        prop_assert_eq!((b.count, b.window_start_ms, b.window_end_ms), (a.count, a.window_start_ms, a.window_end_ms));
        let has = |s| chosen.contains(s);
        if has(Statistics::SUM) {
            prop_assert_eq!(b.sum.to_bits(), a.sum.to_bits());
        } else if has(Statistics::MEAN) {
            prop_assert!((b.sum - a.sum).abs() <= 1e-9 * a.sum.abs().max(1.0));
        }
        if has(Statistics::MIN) { prop_assert_eq!(b.min.to_bits(), a.min.to_bits()); }
        if has(Statistics::MAX) { prop_assert_eq!(b.max.to_bits(), a.max.to_bits()); }
        if has(Statistics::LAST) { prop_assert_eq!((b.last.to_bits(), b.last_ms), (a.last.to_bits(), a.last_ms)); }
        if has(Statistics::HISTOGRAM) { prop_assert_eq!(b.histogram, a.histogram); }
        if has(Statistics::STDDEV) && (has(Statistics::SUM) || has(Statistics::MEAN)) {
            prop_assert!((b.stddev() - a.stddev()).abs() <= 1e-12 * a.stddev().max(1.0), "{} vs {}", b.stddev(), a.stddev());
        }
        let carried = b.statistics();
        for s in [Statistics::SUM, Statistics::MEAN, Statistics::MIN, Statistics::MAX, Statistics::LAST, Statistics::HISTOGRAM] {
            prop_assert_eq!(carried.contains(s), has(s), "{}", s);
        }
    }
}

#[test]
fn documents_that_cannot_be_merged_say_why() {
    assert_eq!(Partial::from_json(b"[1]", 16).unwrap_err(), BadPartial::NotJson);
    let no_count = br#"{"device":"d","sensor":"s","instance":"i","window_start_ms":0,"window_end_ms":1}"#;
    assert_eq!(
        Partial::from_json(no_count, 16).unwrap_err(),
        BadPartial::Missing("count")
    );
    let wide = br#"{"device":"d","sensor":"s","instance":"i","window_start_ms":0,"window_end_ms":1,"count":1,
        "histogram":{"scale":6,"zero_threshold":0,"zero_count":0,"positive":{"offset":0,"counts":[1,0,0,0,0,0,0,0,0,1]},"negative":{"offset":0,"counts":[]}}}"#;
    assert_eq!(
        Partial::from_json(wide, 8).unwrap_err(),
        BadPartial::BadHistogram,
        "10 buckets in 8"
    );
    assert!(Partial::from_json(wide, 16).is_ok());
}
