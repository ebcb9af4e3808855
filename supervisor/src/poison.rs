//! Poison records ([`Poison`]): a record that kills the stage reading it would, restarted, kill it
//! again, in a loop that ends only at the restart intensity. When a stage dies `poison_attempts`
//! times in a row while handling the same input record (its ring's processing marker, see
//! `shm_ring::ring::RingObserver::processing`), the supervisor replaces that one record in place with
//! an empty one (`shm_ring::Consumer::replace_at`: every position stays as it was), counts it,
//! and writes the original to a bounded dead-letter file for inspection. The restarted stage
//! counts the empty record as bad input (decoded: `error.malformed`), so every message still ends
//! at exactly one counter, and the pipeline flows again.

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use records::names::segment;
use records::{Aggregate, RawRecord, Reading};
use shm_ring::{Consumer, Record, SegmentName};
use tracing::{error, warn};

use crate::child::Supervised;
use crate::page::Page;

/// Remembers, per stage, the record it last died on and how many times in a row.
#[derive(Debug, Default)]
pub struct PoisonWatch {
    attempts: u32,
    last: HashMap<&'static str, (u64, u32)>,
}

impl PoisonWatch {
    /// Skips a record after `attempts` deaths on it in a row (0: never).
    pub fn new(attempts: u32) -> Self {
        PoisonWatch {
            attempts,
            last: HashMap::new(),
        }
    }

    /// `stage` died while handling `position` (or outside any record: `None`). Returns `true`
    /// when that record must now be skipped.
    pub fn died(&mut self, stage: &'static str, position: Option<u64>) -> bool {
        let Some(position) = position else {
            self.last.remove(stage);
            return false;
        };
        let entry = self.last.entry(stage).or_insert((position, 0));
        if entry.0 != position {
            *entry = (position, 0);
        }
        entry.1 += 1;
        if self.attempts > 0 && entry.1 >= self.attempts {
            self.last.remove(stage);
            return true;
        }
        false
    }
}

/// Where skipped records are written: one JSON object per line, up to a size limit.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    path: String,
    max_bytes: u64,
}

impl DeadLetter {
    /// A dead-letter file at `path` (empty: records are counted only) of at most `max_bytes`.
    pub fn new(path: &str, max_bytes: u64) -> Self {
        DeadLetter {
            path: path.to_owned(),
            max_bytes,
        }
    }

    /// Appends one line; `Ok(false)` if the file is full (or none is configured).
    pub fn write(&self, line: &str) -> std::io::Result<bool> {
        if self.path.is_empty() {
            return Ok(false);
        }
        let size = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        if size + line.len() as u64 + 1 > self.max_bytes {
            return Ok(false);
        }
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&self.path)?;
        writeln!(f, "{line}")?;
        Ok(true)
    }
}

/// The supervisor's poison handling: which record each stage keeps dying on, and where the
/// records taken out go.
pub struct Poison {
    prefix: String,
    watch: PoisonWatch,
    dead_letter: DeadLetter,
}

impl Poison {
    /// For pipeline `prefix`: a record is taken out after `attempts` deaths on it in a row (0:
    /// never), into `dead_letter`.
    pub fn new(prefix: &str, attempts: u32, dead_letter: DeadLetter) -> Poison {
        Poison {
            prefix: prefix.to_owned(),
            watch: PoisonWatch::new(attempts),
            dead_letter,
        }
    }

    /// After a crash of `child` (its process reaped, its input ring's marker as it left it): if
    /// it keeps dying on the same input record, take that record out, and count it in `page`.
    pub fn after_crash(&mut self, child: &Supervised, page: &mut Page) {
        let (name, Some(ring)) = (child.name(), child.spec().input) else {
            return;
        };
        let position = child.processing();
        if !self.watch.died(name, position) {
            return;
        }
        let position = position.expect("died() is true only for a position");
        match take_out(&self.prefix, ring, position, name) {
            Ok(line) => {
                error!(
                    stage = name,
                    ring, position, "skipped a poison record after repeated crashes on it"
                );
                page.count_poison_skipped(ring);
                match self.dead_letter.write(&line) {
                    Ok(true) => {}
                    Ok(false) => page.count_dead_letter_full(),
                    Err(e) => {
                        warn!(error = %e, "cannot write the dead-letter file");
                        page.count_dead_letter_full();
                    }
                }
            }
            Err(e) => error!(stage = name, ring, position, error = %e, "cannot take the poison record out"),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn json_text(s: &[u8]) -> String {
    serde_json::Value::from(String::from_utf8_lossy(s).into_owned()).to_string()
}

/// Replaces the record at `position` in `ring` (whose consumer must be dead) with an empty one
/// and describes the original as a dead-letter line.
pub fn take_out(prefix: &str, ring: &str, position: u64, stage: &str) -> Result<String, shm_ring::Error> {
    let name = SegmentName::new(prefix, ring)?;
    match ring {
        segment::RAW => take::<RawRecord>(&name, position, stage, |r| {
            format!(
                ",\"topic\":{},\"payload_hex\":\"{}\"",
                json_text(r.topic()),
                hex(r.payload())
            )
        }),
        segment::READINGS => take::<Reading>(&name, position, stage, |_| String::new()),
        segment::AGGREGATES => take::<Aggregate>(&name, position, stage, |_| String::new()),
        other => Err(shm_ring::Error::InvalidParameter {
            reason: format!("no poison handling for ring {other}"),
        }),
    }
}

fn take<T: Record>(
    name: &SegmentName,
    position: u64,
    stage: &str,
    detail: impl Fn(&T) -> String,
) -> Result<String, shm_ring::Error> {
    let mut consumer: Consumer<T> = stage_runtime::attach_consumer(name, Duration::from_secs(5))?;
    let record = consumer.replace_at(position, T::zeroed())?;
    Ok(format!(
        "{{\"unix_ms\":{},\"stage\":{},\"ring\":{},\"position\":{position},\"record_type\":{},\"record_hex\":\"{}\"{}}}",
        stage_runtime::unix_ms(),
        json_text(stage.as_bytes()),
        json_text(name.name().as_bytes()),
        json_text(T::TYPE_NAME.as_bytes()),
        hex(bytemuck_bytes(&record)),
        detail(&record)
    ))
}

fn bytemuck_bytes<T: Record>(record: &T) -> &[u8] {
    shm_ring::bytemuck::bytes_of(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_skipped_after_the_given_deaths_in_a_row_on_it() {
        let mut w = PoisonWatch::new(3);
        assert!(!w.died("decoded", Some(7)));
        assert!(!w.died("decoded", Some(7)));
        assert!(w.died("decoded", Some(7)));
        assert!(!w.died("decoded", Some(7)), "counting starts over after a skip");
        assert!(!w.died("decoded", Some(8)), "another record starts over");
        assert!(!w.died("decoded", None), "a death outside any record resets");
        assert!(!w.died("decoded", Some(8)));
        assert!(!PoisonWatch::new(0).died("aggd", Some(1)), "0 never skips");
    }

    #[test]
    fn the_dead_letter_file_is_bounded() {
        let dir = std::env::temp_dir().join(format!("dead-letter-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("dl.jsonl");
        let dl = DeadLetter::new(path.to_str().unwrap(), 25);
        assert!(dl.write("0123456789").unwrap());
        assert!(dl.write("0123456789").unwrap());
        assert!(!dl.write("0123456789").unwrap(), "would pass 25 bytes");
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2);
        assert!(!DeadLetter::new("", 100).write("x").unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
