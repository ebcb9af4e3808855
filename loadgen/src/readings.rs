//! Which reading comes next, and what its value is.

/// The units, by sensor index modulo 5.
pub const UNITS: [&str; 5] = ["C", "%", "hPa", "V", "A"];

/// One reading's identity and value.
#[derive(Clone, Debug, PartialEq)]
pub struct Reading {
    /// Device index.
    pub device: u32,
    /// Sensor index.
    pub sensor: u32,
    /// Per-key sequence number.
    pub seq: u64,
    /// The value.
    pub value: f64,
}

/// The value of key (d, s) at sequence number `seq`: d·100 + s + amp·((seq % 11) − 5)/5.
pub fn value(device: u32, sensor: u32, seq: u64, amp: f64) -> f64 {
    f64::from(device) * 100.0 + f64::from(sensor) + amp * ((seq % 11) as f64 - 5.0) / 5.0
}

/// The exact mean of key (d, s) over sequence numbers `first..first + count` (a checker's view).
pub fn mean(device: u32, sensor: u32, first: u64, count: u64, amp: f64) -> f64 {
    let sum: f64 = (first..first + count).map(|n| value(device, sensor, n, amp)).sum();
    sum / count as f64
}

/// `dev%05d`.
pub fn device_id(device: u32) -> String {
    format!("dev{device:05}")
}

/// `sen%03d`.
pub fn sensor_id(sensor: u32) -> String {
    format!("sen{sensor:03}")
}

/// `site/site%03d/sensor/sen%03d`, with site = device % 10.
pub fn topic(device: u32, sensor: u32) -> String {
    format!("site/site{:03}/sensor/sen{sensor:03}", device % 10)
}

/// Whether message number `i` (over the whole run) is sent malformed, for a fraction `bad`:
/// a fixed hash, so repeated runs send the same bad messages.
pub fn is_bad(i: u64, bad: f64) -> bool {
    if bad <= 0.0 {
        return false;
    }
    let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11;
    (h as f64 / (1u64 << 53) as f64) < bad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_formula_matches_the_reference() {
        assert_eq!(value(3, 2, 5, 0.5), 302.0);
        assert_eq!(value(3, 2, 0, 0.5), 301.5);
        assert_eq!(value(3, 2, 10, 0.5), 302.5);
        assert_eq!(mean(3, 2, 0, 11, 0.5), 302.0);
        assert_eq!(
            (device_id(7), sensor_id(12), topic(17, 3)),
            ("dev00007".into(), "sen012".into(), "site/site007/sensor/sen003".into())
        );
    }

    #[test]
    fn about_the_asked_fraction_is_bad() {
        let n = (0..100_000).filter(|&i| is_bad(i, 0.05)).count();
        assert!((4_000..6_000).contains(&n), "{n}");
        assert!(!(0..1000).any(|i| is_bad(i, 0.0)));
    }
}
