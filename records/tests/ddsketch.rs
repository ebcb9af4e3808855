//! Cross-check of the exponential histogram against an implementation nobody here wrote:
//! Datadog's DDSketch (PyPI `ddsketch`, installed by scripts/install-deps.sh) with the same γ,
//! run by `scripts/ddsketch-crosscheck.py` on the same samples. At scale s, γ = 2^(2^-s) and
//! DDSketch's relative accuracy (γ − 1)/(γ + 1); DDSketch's key k is OpenTelemetry's bucket
//! k − 1. Every bucket count and every quantile's value must agree (values within 1e-12: the
//! two compute γ^i differently), at the finest scale (narrow samples) and at the scale a wide
//! range was downscaled to (so the downscaled buckets are checked too). Exact powers of two are
//! left out of the samples: DDSketch's γ, rebuilt from the accuracy, puts them one bucket up.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use records::exp_histogram::{relative_error, MAX_SCALE};
use records::ExpHistogram;

/// Samples: log-uniform magnitudes over `ratio` from 3 up, both signs, and zeros; from a fixed
/// xorshift seed.
fn samples(n: usize, mut x: u64, ratio: f64) -> Vec<f64> {
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let (u, sign) = (next(), next());
            let m = ratio.powf(u) * 3.0;
            match sign {
                s if s < 0.1 => 0.0,
                s if s < 0.4 => -m,
                _ => m,
            }
        })
        .filter(|v| v.to_bits() & ((1 << 52) - 1) != 0 || *v == 0.0)
        .collect()
}

fn reference(values: &[f64], scale: i8, ranks: &[u64]) -> serde_json::Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/ddsketch-crosscheck.py");
    let mut child = Command::new("python3")
        .arg(script)
        .arg(relative_error(scale).to_string())
        .args(ranks.iter().map(u64::to_string))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 (scripts/install-deps.sh installs it, and ddsketch)");
    let mut input = String::new();
    for v in values {
        input.push_str(&format!("{v:e}\n"));
    }
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the reference failed (is `ddsketch` installed? scripts/install-deps.sh): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn buckets_and_quantiles_agree_with_ddsketch() {
    let cases = [
        (1usize, 7u64, 1.1),
        (10, 11, 1.1),
        (1000, 13, 1.1),
        (20_000, 17, 1.1),
        (1000, 19, 5.0),
        (20_000, 23, 5.0),
    ];
    for (n, seed, ratio) in cases {
        let values = samples(n, seed, ratio);
        let mut h = ExpHistogram::new(32);
        for &v in &values {
            h.fold(v);
        }
        if ratio < 1.18 {
            assert_eq!(h.scale(), MAX_SCALE, "n = {n}");
        } else if n > 100 {
            assert!(h.scale() < MAX_SCALE, "a ratio of {ratio} is downscaled");
        }
        let count = h.count();
        let ranks: Vec<u64> = [0.0, 0.5, 0.9, 0.99, 0.999, 1.0]
            .iter()
            .map(|q: &f64| ((q * count as f64).ceil() as u64).clamp(1, count))
            .collect();
        let dd = reference(&values, h.scale(), &ranks);
        assert_eq!(dd["zero"].as_u64(), Some(h.zero_count), "n = {n}");
        for (name, (offset, counts)) in [("positive", h.positive()), ("negative", h.negative())] {
            let ours: BTreeMap<i64, u64> = counts
                .enumerate()
                .filter(|&(_, c)| c != 0)
                .map(|(k, c)| (i64::from(offset) + k as i64 + 1, c))
                .collect();
            let theirs: BTreeMap<i64, u64> = dd[name]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, c)| (k.parse().unwrap(), c.as_u64().unwrap()))
                .collect();
            assert_eq!(ours, theirs, "{name} buckets, n = {n}, scale {}", h.scale());
        }
        for (&q, theirs) in [0.0, 0.5, 0.9, 0.99, 0.999, 1.0]
            .iter()
            .zip(dd["values"].as_array().unwrap())
        {
            let (ours, theirs) = (h.quantile(q), theirs.as_f64().unwrap());
            assert!(
                (ours - theirs).abs() <= 1e-12 * theirs.abs(),
                "q {q}, n = {n}, scale {}: {ours} vs DDSketch's {theirs}",
                h.scale()
            );
        }
    }
}
