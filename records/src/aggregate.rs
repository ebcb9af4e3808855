//! `Aggregate`: one window's summary for one (device, sensor), on its way from aggd to emitd.

use bytemuck::{Pod, Zeroable};

use crate::exp_histogram::ExpHistogram;
use crate::moments::Moments;
use crate::reading::{Field, DEVICE_MAX, SENSOR_MAX, UNIT_MAX};
use crate::statistics::Statistics;
use crate::text;

/// The summary of one key's samples in one window. 448 bytes.
///
/// Count, min, max, last and the histogram's counts are exact over the window. Count, sum, M2,
/// `last_ms` and the histogram are what a merge of partial aggregates (several pipelines in one
/// shared-subscription group) needs; the merge and its rule per statistic are in
/// [`crate::merge`]. Only the [`Aggregate::statistics`]
/// chosen by `[aggd] statistics` are meaningful and published; a new aggregate carries them all.
///
/// ```
/// use records::{Aggregate, FixedText};
/// let mut a = Aggregate::new(b"dev1", b"temp", b"C").unwrap();
/// a.fold(21.0, 1_000);
/// a.fold(22.0, 1_005);
/// assert_eq!((a.count, a.mean(), a.stddev(), a.last, a.last_ms), (2, 21.5, 0.5, 22.0, 1_005));
/// assert_eq!(a.device().text(), "dev1");
/// ```
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
pub struct Aggregate {
    /// Start of the window, ms since the epoch (inclusive).
    pub window_start_ms: u64,
    /// End of the window, ms since the epoch (exclusive); also the emission time.
    pub window_end_ms: u64,
    /// Samples in the window.
    pub count: u64,
    /// Sum of the samples.
    pub sum: f64,
    /// Σ (x − mean)² over the samples (M2: see [`Moments`]; never a sum of squares).
    pub m2: f64,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
    /// The most recent sample.
    pub last: f64,
    /// When `last` was received (its reading's `received_ms`, ms since the epoch): what a merge
    /// orders partials' `last` by.
    pub last_ms: u64,
    /// The samples' exponential histogram, the state quantiles are read from (meaningful when
    /// [`Statistics::QUANTILES`] or [`Statistics::HISTOGRAM`] is carried).
    pub histogram: ExpHistogram,
    pub(crate) device: [u8; DEVICE_MAX],
    pub(crate) sensor: [u8; SENSOR_MAX],
    pub(crate) unit: [u8; UNIT_MAX],
    pub(crate) statistics: u16,
    pub(crate) device_len: u8,
    pub(crate) sensor_len: u8,
    pub(crate) unit_len: u8,
    _pad: [u8; 3],
}

const _: () = assert!(std::mem::size_of::<Aggregate>() == 448);

impl shm_ring::Record for Aggregate {
    // 2: the statistics byte (was padding).
    // 3: M2 in place of the sum of squares, and `last_ms`.
    // 4: the exponential histogram, and 16 bits of statistics.
    const TYPE_NAME: &'static str = "Aggregate/4";
}

impl Aggregate {
    /// An empty aggregate for one key, carrying every statistic, its histogram of the default
    /// budget ([`Aggregate::HISTOGRAM_BUDGET`]); `None` if an id does not fit.
    pub fn new(device: &[u8], sensor: &[u8], unit: &[u8]) -> Option<Self> {
        let mut a = Aggregate::zeroed();
        a.device_len = text::store(&mut a.device, device)?;
        a.sensor_len = text::store(&mut a.sensor, sensor)?;
        a.unit_len = text::store(&mut a.unit, unit)?;
        a.statistics = Statistics::ALL.bits();
        a.histogram.empty_zeroed(Aggregate::HISTOGRAM_BUDGET);
        Some(a)
    }

    /// An empty aggregate like [`Aggregate::new`], whose histogram keeps at most `budget`
    /// buckets.
    #[inline]
    pub fn with_histogram_budget(device: &[u8], sensor: &[u8], unit: &[u8], budget: u32) -> Option<Self> {
        let mut a = Aggregate::new(device, sensor, unit)?;
        a.histogram.empty_zeroed(budget);
        Some(a)
    }

    /// The histogram budget of a new aggregate: `[aggd] histogram_buckets`' default.
    pub const HISTOGRAM_BUDGET: u32 = 16;

    /// The statistics this aggregate carries.
    pub fn statistics(&self) -> Statistics {
        Statistics::from_bits(self.statistics)
    }

    /// Sets the statistics this aggregate carries.
    pub fn set_statistics(&mut self, statistics: Statistics) {
        self.statistics = statistics.bits();
    }

    /// The mean, or NaN for an empty aggregate.
    pub fn mean(&self) -> f64 {
        self.moments().mean()
    }

    /// The population standard deviation, `√(M2/count)`, or NaN for an empty aggregate.
    pub fn stddev(&self) -> f64 {
        self.moments().stddev()
    }

    /// Count, sum and M2.
    #[inline]
    pub fn moments(&self) -> Moments {
        Moments::new(self.count, self.sum, self.m2)
    }

    /// Sets count, sum and M2.
    #[inline]
    pub fn set_moments(&mut self, m: Moments) {
        (self.count, self.sum, self.m2) = (m.count, m.sum, m.m2);
    }

    /// Adds one sample received at `t_ms`, the key's latest (what aggd does per pane, on one
    /// record: for tests and for consumers that rebuild aggregates from samples).
    pub fn fold(&mut self, value: f64, t_ms: u64) {
        let first = self.count == 0;
        self.set_moments(self.moments().folded(value));
        if first || value < self.min {
            self.min = value;
        }
        if first || value > self.max {
            self.max = value;
        }
        (self.last, self.last_ms) = (value, t_ms);
        self.histogram.fold(value);
    }

    /// The device id.
    pub fn device(&self) -> Field<'_> {
        Field(text::load(&self.device, self.device_len))
    }

    /// The sensor name.
    pub fn sensor(&self) -> Field<'_> {
        Field(text::load(&self.sensor, self.sensor_len))
    }

    /// The unit.
    pub fn unit(&self) -> Field<'_> {
        Field(text::load(&self.unit, self.unit_len))
    }
}
