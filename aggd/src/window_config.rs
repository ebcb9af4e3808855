//! [`WindowConfig`]: the persistent shape of the windows (panes, rows, the statistics and so the
//! pane columns, the histogram budget) and the eviction settings, from `[aggd]`; and what it
//! makes of a table: its row layout, its `SHAPE` word and its size.

use records::Statistics;

use crate::clock::Panes;
use crate::pane::Columns;
use crate::pane_histogram::words_per_pane;
use crate::row::{self, row_words, RowShape};
use crate::strings;

/// The persistent shape of the windows and the eviction settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowConfig {
    /// Panes and pane length.
    pub panes: Panes,
    /// Rows of the table: most keys tracked at once.
    pub max_keys: u32,
    /// A key with no sample for this long is evicted (at least the window length).
    pub idle_ttl_ms: u64,
    /// The statistics each aggregate carries; the rows store only the pane columns they need.
    pub statistics: Statistics,
    /// Buckets of each pane's and window's histogram (`[aggd] histogram_buckets`; stored only
    /// if the statistics need histograms).
    pub histogram_buckets: u32,
}

impl WindowConfig {
    /// From the `[aggd]` section (already checked by the config crate).
    pub fn from_config(aggd: &telemetry_config::Aggd) -> Option<WindowConfig> {
        Some(WindowConfig {
            panes: Panes::new(aggd.window_ms, aggd.emit_every_ms)?,
            max_keys: aggd.max_keys.clamp(1, row::MAX_KEYS),
            idle_ttl_ms: aggd.idle_ttl_ms.max(aggd.window_ms),
            statistics: aggd
                .statistics
                .iter()
                .filter_map(|s| Statistics::from_name(s.name()))
                .fold(Statistics::NONE, |set, s| set | s),
            histogram_buckets: aggd.histogram_buckets,
        })
    }

    /// The layout of the table's rows, derived from the panes and the statistics.
    pub fn row_shape(&self) -> RowShape {
        RowShape::of(
            self.panes.panes as usize,
            Columns::needed_by(self.statistics),
            self.histogram_buckets as usize,
        )
    }

    /// The table's `SHAPE` word: histogram buckets (0 if none are stored), the pane columns
    /// *not* stored, panes, rows (see [`crate::store`]).
    pub fn shape_word(&self) -> u64 {
        let shape = self.row_shape();
        ((shape.buckets as u64) << 48)
            | (shape.columns.omitted_bits() << 40)
            | (self.panes.panes << 32)
            | u64::from(self.max_keys)
    }

    /// Words of the table: the rows, then the undo journal of a pane's histogram (if stored).
    pub fn words(&self) -> u64 {
        self.rows_words() + words_per_pane(self.row_shape().buckets) as u64
    }

    /// Words of the rows.
    pub fn rows_words(&self) -> u64 {
        u64::from(self.max_keys) * row_words(self.row_shape()) as u64
    }

    /// Words of the string table (three texts per row at most).
    pub fn string_words(&self) -> u64 {
        strings::words_for(self.max_keys)
    }
}
