//! `[aggd]`: the window aggregator.

use serde::{Deserialize, Serialize};

use crate::error::{bad, ConfigError};

/// One statistic an aggregate can carry (`[aggd] statistics`).
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Statistic {
    /// Samples in the window.
    Count,
    /// Their sum.
    Sum,
    /// Their mean (needs per-pane counts and sums).
    Mean,
    /// The smallest sample (needs per-pane minima).
    Min,
    /// The largest sample (needs per-pane maxima).
    Max,
    /// The population standard deviation (needs per-pane counts, sums and sums of squares).
    Stddev,
    /// The most recent sample (needs one value per key).
    Last,
    /// The quantiles `[aggd] quantiles` names, read from the window's exponential histogram
    /// (needs per-pane histograms).
    Quantiles,
    /// The window's exponential histogram itself, in OTLP's form (needs per-pane histograms).
    Histogram,
}

impl Statistic {
    /// The default set, in the documented order (everything but quantiles and the histogram,
    /// which cost memory per pane).
    pub const DEFAULT: [Statistic; 7] = [
        Statistic::Count,
        Statistic::Sum,
        Statistic::Mean,
        Statistic::Min,
        Statistic::Max,
        Statistic::Stddev,
        Statistic::Last,
    ];

    /// Its name in the configuration and in the aggregate document.
    pub fn name(self) -> &'static str {
        match self {
            Statistic::Count => "count",
            Statistic::Sum => "sum",
            Statistic::Mean => "mean",
            Statistic::Min => "min",
            Statistic::Max => "max",
            Statistic::Stddev => "stddev",
            Statistic::Last => "last",
            Statistic::Quantiles => "quantiles",
            Statistic::Histogram => "histogram",
        }
    }
}

/// `[aggd]`
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Aggd {
    /// Window length in ms; a multiple of `emit_every_ms`.
    pub window_ms: u64,
    /// Emission interval in ms: every key with samples in the window is emitted this often.
    pub emit_every_ms: u64,
    /// Most keys tracked at once; beyond it the least recently seen key is evicted (counted).
    pub max_keys: u32,
    /// A key with no sample for this long (ms) is forgotten; at least `window_ms`.
    pub idle_ttl_ms: u64,
    /// The statistics each aggregate carries; the windows store only what these need.
    pub statistics: Vec<Statistic>,
    /// The quantiles published when `statistics` has `"quantiles"`, each 0 ≤ q ≤ 1, as fields
    /// `p` + 100·q (`p50`, `p99.9`).
    pub quantiles: Vec<f64>,
    /// The most buckets a pane's and a window's histogram keep, both signs together (8 ..= 32):
    /// each pane of each key stores 8 + 4 × this many bytes when `statistics` has `"quantiles"`
    /// or `"histogram"`. A window whose values span a wider range than the buckets cover at
    /// the finest scale is downscaled (see the README's "Quantiles").
    pub histogram_buckets: u32,
}

impl Aggd {
    /// The most keys `max_keys` may name: aggd's rows name their key text by 24-bit ids, three
    /// per row (about 2.3 GB of windows with every statistic).
    pub const MAX_KEYS: u32 = 5_000_000;

    /// The most quantiles `quantiles` may name.
    pub const MAX_QUANTILES: usize = 16;

    /// Panes per window: one partial aggregate per emission interval.
    pub fn panes(&self) -> u64 {
        self.window_ms / self.emit_every_ms.max(1)
    }

    /// True if the windows keep histograms (quantiles or the histogram are chosen).
    pub fn keeps_histograms(&self) -> bool {
        self.statistics
            .iter()
            .any(|s| matches!(s, Statistic::Quantiles | Statistic::Histogram))
    }
}

impl Default for Aggd {
    fn default() -> Self {
        Aggd {
            window_ms: 60_000,
            emit_every_ms: 5_000,
            max_keys: 100_000,
            idle_ttl_ms: 600_000,
            statistics: Statistic::DEFAULT.to_vec(),
            quantiles: vec![0.5, 0.9, 0.99],
            histogram_buckets: records::Aggregate::HISTOGRAM_BUDGET,
        }
    }
}

impl Aggd {
    /// Checks what TOML's types cannot.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        let a = self;
        if a.emit_every_ms == 0 {
            return Err(bad("aggd.emit_every_ms", 0, "must be at least 1"));
        }
        if a.window_ms < a.emit_every_ms || !a.window_ms.is_multiple_of(a.emit_every_ms) {
            return Err(bad(
                "aggd.window_ms",
                a.window_ms,
                "must be a multiple of aggd.emit_every_ms",
            ));
        }
        if a.panes() > 64 {
            return Err(bad(
                "aggd.window_ms",
                a.window_ms,
                "must be at most 64 × aggd.emit_every_ms",
            ));
        }
        if a.max_keys == 0 {
            return Err(bad("aggd.max_keys", 0, "must be at least 1"));
        }
        if a.max_keys > Aggd::MAX_KEYS {
            return Err(bad("aggd.max_keys", a.max_keys, "must be at most 5000000"));
        }
        if a.idle_ttl_ms < a.window_ms {
            return Err(bad(
                "aggd.idle_ttl_ms",
                a.idle_ttl_ms,
                "must be at least aggd.window_ms",
            ));
        }
        if a.statistics.is_empty() {
            return Err(bad("aggd.statistics", "[]", "must name at least one statistic"));
        }
        for (i, s) in a.statistics.iter().enumerate() {
            if a.statistics[..i].contains(s) {
                return Err(bad("aggd.statistics", s.name(), "is listed twice"));
            }
        }
        if !(8..=32).contains(&a.histogram_buckets) {
            return Err(bad(
                "aggd.histogram_buckets",
                a.histogram_buckets,
                "must be between 8 and 32",
            ));
        }
        if a.quantiles.is_empty() && a.statistics.contains(&Statistic::Quantiles) {
            return Err(bad("aggd.quantiles", "[]", "must name at least one quantile"));
        }
        if a.quantiles.len() > Aggd::MAX_QUANTILES {
            return Err(bad(
                "aggd.quantiles",
                a.quantiles.len(),
                "must name at most 16 quantiles",
            ));
        }
        for (i, &q) in a.quantiles.iter().enumerate() {
            if !(0.0..=1.0).contains(&q) {
                return Err(bad("aggd.quantiles", q, "must be between 0 and 1"));
            }
            if a.quantiles[..i].contains(&q) {
                return Err(bad("aggd.quantiles", q, "is listed twice"));
            }
        }
        Ok(())
    }
}
