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
}

impl Statistic {
    /// Every statistic, in the documented order (the default set).
    pub const ALL: [Statistic; 7] = [
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
}

impl Aggd {
    /// The most keys `max_keys` may name: aggd's rows name their key text by 24-bit ids, three
    /// per row (about 2.3 GB of windows with every statistic).
    pub const MAX_KEYS: u32 = 5_000_000;

    /// Panes per window: one partial aggregate per emission interval.
    pub fn panes(&self) -> u64 {
        self.window_ms / self.emit_every_ms.max(1)
    }
}

impl Default for Aggd {
    fn default() -> Self {
        Aggd {
            window_ms: 60_000,
            emit_every_ms: 5_000,
            max_keys: 100_000,
            idle_ttl_ms: 600_000,
            statistics: Statistic::ALL.to_vec(),
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
        Ok(())
    }
}
