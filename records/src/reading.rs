//! `Reading`: one decoded sensor value, on its way from decoded to aggd.

use bytemuck::{Pod, Zeroable};

use crate::text::{self, FixedText};

/// Longest device id a reading holds; a longer one is counted as `id_too_long`.
pub const DEVICE_MAX: usize = 48;
/// Longest sensor name a reading holds.
pub const SENSOR_MAX: usize = 32;
/// Longest unit a reading holds.
pub const UNIT_MAX: usize = 16;

/// One typed reading. 144 bytes.
///
/// ```
/// use records::{FixedText, Reading};
/// let r = Reading::new(b"dev00001", b"sen002", b"C", 21.5, 7).unwrap();
/// assert_eq!((r.device().text(), r.sensor().text(), r.unit().text()), ("dev00001".into(), "sen002".into(), "C".into()));
/// assert!(Reading::new(&[b'd'; 49], b"s", b"", 0.0, 0).is_none());
/// ```
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
pub struct Reading {
    /// The value, always finite.
    pub value: f64,
    /// The sender's sequence number (`n`).
    pub seq: u64,
    /// The sender's event time in ms since the epoch (`t`), or 0 if it sent none.
    pub event_ms: u64,
    /// When ingestd's network read delivered the message (ms since the epoch).
    pub received_ms: u64,
    /// Position in the raw ring of the message this reading came from. A restarted decoded skips
    /// raw records at or before the `source` of the last reading in its output ring, so a crash
    /// neither loses nor repeats readings.
    pub source: u64,
    device: [u8; DEVICE_MAX],
    sensor: [u8; SENSOR_MAX],
    unit: [u8; UNIT_MAX],
    device_len: u8,
    sensor_len: u8,
    unit_len: u8,
    _pad: [u8; 5],
}

const _: () = assert!(std::mem::size_of::<Reading>() == 144);

impl shm_ring::Record for Reading {
    const TYPE_NAME: &'static str = "Reading/1";
}

/// Borrowed text of a reading's field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field<'a>(pub(crate) &'a [u8]);

impl FixedText for Field<'_> {
    fn bytes(&self) -> &[u8] {
        self.0
    }
}

impl Reading {
    /// Builds a reading, or `None` if an id does not fit (the caller counts `id_too_long`).
    pub fn new(device: &[u8], sensor: &[u8], unit: &[u8], value: f64, seq: u64) -> Option<Self> {
        let mut r = Reading::zeroed();
        r.set_ids(device, sensor, unit)?;
        r.value = value;
        r.seq = seq;
        Some(r)
    }

    /// Stores the three ids; `None` (and the record unchanged in its ids' lengths) if one is too long.
    pub fn set_ids(&mut self, device: &[u8], sensor: &[u8], unit: &[u8]) -> Option<()> {
        if device.len() > DEVICE_MAX || sensor.len() > SENSOR_MAX || unit.len() > UNIT_MAX {
            return None;
        }
        self.device_len = text::store(&mut self.device, device)?;
        self.sensor_len = text::store(&mut self.sensor, sensor)?;
        self.unit_len = text::store(&mut self.unit, unit)?;
        Some(())
    }

    /// The device id.
    pub fn device(&self) -> Field<'_> {
        Field(text::load(&self.device, self.device_len))
    }

    /// The sensor name.
    pub fn sensor(&self) -> Field<'_> {
        Field(text::load(&self.sensor, self.sensor_len))
    }

    /// The unit (may be empty).
    pub fn unit(&self) -> Field<'_> {
        Field(text::load(&self.unit, self.unit_len))
    }
}
