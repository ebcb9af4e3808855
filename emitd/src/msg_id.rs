//! The `Nats-Msg-Id` of an aggregate in JetStream mode, from which the server deduplicates a
//! message that a restarted emitd publishes again.
//!
//! The id is `<instance>.<device>.<sensor>.<window_end_ms>`, with the device and the sensor
//! escaped exactly as in subjects (`subject::escape`). It is the same for the same aggregate
//! whichever emitd process publishes it, and different for any two aggregates the pipeline
//! emits: one key's windows end at different times, and two pipelines need distinct instances.
//! It is unambiguous: the escaped ids and the number contain no `.`, so the id splits from the
//! right, and it is printable ASCII, so it is a valid header value whatever the ids hold.
//!
//! The server drops a message whose id it stored within the stream's duplicate window (two
//! minutes for the stream emitd creates) and acknowledges it with `duplicate: true`.

use records::{Aggregate, FixedText};

use crate::subject;

/// Appends the id of the aggregate whose escaped key (`<device>.<sensor>`, as in its subject)
/// is `escaped_key` to `out`.
pub fn write(out: &mut String, instance: &str, escaped_key: &str, window_end_ms: u64) {
    use std::fmt::Write;
    out.push_str(instance);
    out.push('.');
    out.push_str(escaped_key);
    // Writing to a String cannot fail.
    let _ = write!(out, ".{window_end_ms}");
}

/// The id of `agg` published by the pipeline `instance`, or `None` if an id is empty (such an
/// aggregate is never published).
///
/// ```
/// let agg = records::Aggregate::new(b"a.b", b"temp", b"C").unwrap();
/// assert_eq!(emitd::msg_id::of("edge-1", &agg).unwrap(), "edge-1.a%2Eb.temp.0");
/// ```
pub fn of(instance: &str, agg: &Aggregate) -> Option<String> {
    let (device, sensor) = (agg.device(), agg.sensor());
    if device.bytes().is_empty() || sensor.bytes().is_empty() {
        return None;
    }
    let key = format!(
        "{}.{}",
        subject::escape(device.bytes()),
        subject::escape(sensor.bytes())
    );
    let mut out = String::new();
    write(&mut out, instance, &key, agg.window_end_ms);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agg(device: &[u8], sensor: &[u8], end: u64) -> Aggregate {
        let mut a = Aggregate::new(device, sensor, b"").unwrap();
        a.window_end_ms = end;
        a
    }

    #[test]
    fn ids_are_printable_single_line_and_distinct() {
        let ids: &[&[u8]] = &[
            b"a", b"a.b", b"a b", b"a\r\nb", b"\"", b"\\", b">", b"*", b"b.1", b"a%2Eb",
        ];
        let mut seen = std::collections::HashSet::new();
        for &d in ids {
            for &s in ids {
                for end in [0, 1, 60_000] {
                    let id = of("edge-1", &agg(d, s, end)).unwrap();
                    assert!(id.bytes().all(|b| (b'!'..=b'~').contains(&b)), "{id:?}");
                    assert!(seen.insert(id.clone()), "{id:?} repeats");
                }
            }
        }
    }

    #[test]
    fn instance_dots_do_not_make_ids_collide() {
        // instance "a.b" + device "c" versus instance "a" + device "b.c".
        assert_ne!(of("a.b", &agg(b"c", b"s", 5)), of("a", &agg(b"b.c", b"s", 5)));
    }

    #[test]
    fn the_same_aggregate_has_the_same_id() {
        assert_eq!(of("i", &agg(b"d", b"s", 7)), of("i", &agg(b"d", b"s", 7)));
        assert_eq!(of("i", &agg(b"", b"s", 7)), None);
    }
}
