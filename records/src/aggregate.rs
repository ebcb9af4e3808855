//! `Aggregate`: one window's summary for one (device, sensor), on its way from aggd to emitd.

use bytemuck::{Pod, Zeroable};

use crate::reading::{Field, DEVICE_MAX, SENSOR_MAX, UNIT_MAX};
use crate::statistics::Statistics;
use crate::text;

/// The summary of one key's samples in one window. 168 bytes.
///
/// Count, sum, min and max are exact over the window; sum and sum of squares are what a merge of
/// partial aggregates (several pipelines in one shared-subscription group) needs. Only the
/// [`Aggregate::statistics`] chosen by `[aggd] statistics` are meaningful and published; a new
/// aggregate carries them all.
///
/// ```
/// use records::{Aggregate, FixedText};
/// let mut a = Aggregate::new(b"dev1", b"temp", b"C").unwrap();
/// a.count = 2;
/// a.sum = 43.0;
/// assert_eq!(a.mean(), 21.5);
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
    /// Sum of the squares of the samples.
    pub sum_sq: f64,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
    /// The most recent sample.
    pub last: f64,
    device: [u8; DEVICE_MAX],
    sensor: [u8; SENSOR_MAX],
    unit: [u8; UNIT_MAX],
    device_len: u8,
    sensor_len: u8,
    unit_len: u8,
    statistics: u8,
    _pad: [u8; 4],
}

const _: () = assert!(std::mem::size_of::<Aggregate>() == 168);

impl shm_ring::Record for Aggregate {
    // 2: the statistics byte (was padding).
    const TYPE_NAME: &'static str = "Aggregate/2";
}

impl Aggregate {
    /// An empty aggregate for one key, or `None` if an id does not fit.
    pub fn new(device: &[u8], sensor: &[u8], unit: &[u8]) -> Option<Self> {
        let mut a = Aggregate::zeroed();
        a.device_len = text::store(&mut a.device, device)?;
        a.sensor_len = text::store(&mut a.sensor, sensor)?;
        a.unit_len = text::store(&mut a.unit, unit)?;
        a.statistics = Statistics::ALL.bits();
        Some(a)
    }

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
        if self.count == 0 {
            f64::NAN
        } else {
            self.sum / self.count as f64
        }
    }

    /// The population standard deviation, clamped at 0 against rounding.
    pub fn stddev(&self) -> f64 {
        if self.count == 0 {
            return f64::NAN;
        }
        let n = self.count as f64;
        let mean = self.sum / n;
        (self.sum_sq / n - mean * mean).max(0.0).sqrt()
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
