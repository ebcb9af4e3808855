//! Exactly-once across a restart of decoded.
//!
//! Every reading carries `source`, the raw-ring position of the message it came from. decoded
//! commits a raw chunk only after the readings made from it are committed, so a decoded killed in
//! between leaves raw records in the ring that its readings already cover. Its successor looks at
//! the last reading in the readings ring and skips the raw records at or before that reading's
//! `source`: they were forwarded (or rejected, when they precede it) already.
//!
//! Positions are `u64` counters that wrap, so "at or before" is decided on the wrapping
//! difference, and only within the records actually queued: a `source` that is neither behind the
//! read position nor inside the queued records cannot come from this ring's current history (for
//! example the raw ring was recreated while the readings ring was kept), and then nothing is
//! skipped.

/// What a starting decoded does about its predecessor's work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resume {
    /// Skip this many raw records from the read position (0: nothing was left half-done).
    Skip(u64),
    /// The last reading's `source` lies beyond the queued raw records: nothing is skipped, and
    /// the caller should say so.
    Inconsistent {
        /// The last reading's `source`.
        source: u64,
    },
}

/// How many raw records to skip, given the raw consumer's read position, the records queued
/// there, and the `source` of the last reading in the readings ring (`None`: the ring never held
/// one).
///
/// ```
/// use decoded::resume::{plan, Resume};
/// // The predecessor forwarded readings up to raw position 104, then died before committing
/// // the raw chunk that started at 100.
/// assert_eq!(plan(100, 64, Some(104)), Resume::Skip(5));
/// // It had committed everything it forwarded.
/// assert_eq!(plan(100, 64, Some(99)), Resume::Skip(0));
/// // Across the 2^64 wrap.
/// assert_eq!(plan(u64::MAX - 1, 64, Some(2)), Resume::Skip(5));
/// ```
pub fn plan(read_pos: u64, queued: u64, last_source: Option<u64>) -> Resume {
    let Some(source) = last_source else {
        return Resume::Skip(0);
    };
    let ahead = source.wrapping_sub(read_pos);
    if (ahead as i64) < 0 {
        // The source is behind the read position: its raw record was committed.
        Resume::Skip(0)
    } else if ahead < queued {
        Resume::Skip(ahead + 1)
    } else {
        Resume::Inconsistent { source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_to_skip_without_readings_or_when_all_was_committed() {
        assert_eq!(plan(0, 0, None), Resume::Skip(0));
        assert_eq!(plan(500, 10, None), Resume::Skip(0));
        assert_eq!(plan(500, 10, Some(499)), Resume::Skip(0));
        assert_eq!(plan(500, 10, Some(3)), Resume::Skip(0));
        assert_eq!(plan(500, 0, Some(499)), Resume::Skip(0));
    }

    #[test]
    fn skips_through_the_last_source() {
        assert_eq!(plan(500, 10, Some(500)), Resume::Skip(1));
        assert_eq!(plan(500, 10, Some(509)), Resume::Skip(10));
    }

    #[test]
    fn a_source_beyond_the_queued_records_is_inconsistent() {
        assert_eq!(plan(500, 10, Some(510)), Resume::Inconsistent { source: 510 });
        assert_eq!(plan(0, 0, Some(0)), Resume::Inconsistent { source: 0 });
        // A raw ring recreated at position 0 under a kept readings ring.
        assert_eq!(
            plan(0, 100, Some(1_000_000)),
            Resume::Inconsistent { source: 1_000_000 }
        );
    }

    #[test]
    fn wrapping_positions() {
        let near = u64::MAX - 2;
        assert_eq!(plan(near, 10, Some(near)), Resume::Skip(1));
        assert_eq!(plan(near, 10, Some(u64::MAX)), Resume::Skip(3));
        assert_eq!(plan(near, 10, Some(0)), Resume::Skip(4));
        assert_eq!(plan(near, 10, Some(6)), Resume::Skip(10));
        assert_eq!(plan(near, 10, Some(7)), Resume::Inconsistent { source: 7 });
        assert_eq!(plan(2, 10, Some(u64::MAX)), Resume::Skip(0));
        assert_eq!(plan(2, 10, Some(near)), Resume::Skip(0));
    }
}
