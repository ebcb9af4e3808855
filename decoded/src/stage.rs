//! The stage loop: raw records in, readings out, every message counted once. [`Stage`] is
//! decoded's part of the frame every stage runs in (`stage_runtime::Stage`): `main.rs` only
//! names it.
//!
//! One batch:
//! 1. read up to [`BATCH`] raw records in place ([`Consumer::read_chunk`], iterated with
//!    `ReadChunk::iter`, which marks the record being handled for the supervisor);
//! 2. decode each straight into a free slot of the readings ring ([`Producer::write_chunk`]); a
//!    rejected message leaves its slot for the next one; stop early when the free slots are used;
//! 3. commit the readings;
//! 4. publish the counters (one flush per batch, which also beats the heartbeat);
//! 5. commit the raw records handled (all of the chunk, or the part that found room).
//!
//! Backpressure: when the readings ring is full, decoded waits for room
//! ([`Producer::wait_for_slots`]), beating its heartbeat every [`POLL`]; it never drops, so the
//! pipeline's only drop point stays ingestd. Everything handled before the wait is committed
//! first, so a blocked decoded holds no raw record it has already handled.
//!
//! Counters: `received` for every raw record taken, then exactly one of `forwarded` and
//! `error.<reason>`, so `received = forwarded + error.*`. Raw records skipped on start-up (see
//! `resume.rs`) were counted by the predecessor, unless it was killed between steps 3 and 4:
//! then the readings ring has published more readings than `forwarded` counts, and the skipped
//! records are counted as they decode. A SIGKILL between steps 4 and 5 counts the errors after
//! the last forwarded reading twice; the readings themselves are exactly once either way.
//!
//! Shutdown: the frame checks the shutdown flag between batches and at least every [`POLL`]; once
//! it is set, the stage drains the raw records queued at that moment and returns. While it waits for room
//! in the readings ring it keeps waiting, even when asked to stop, because the stage downstream is
//! stopped after this one and frees the room; if it never does, the supervisor's SIGKILL loses
//! nothing, since unhandled raw records stay queued.

use std::time::Duration;

use records::names::{counter, segment};
use records::{RawRecord, Reading};
use shm_ring::ring::WaitStrategy;
use shm_ring::stats::CounterId;
use shm_ring::{Consumer, Producer};
use stage_runtime::{Context, Error, StageCounters};

use crate::decode::decode;
use crate::fault::FaultHook;
use crate::format::FormatChooser;
use crate::reason::Reason;
use crate::resume::{self, Resume};

/// Most raw records handled per batch (64 KiB of raw records).
pub const BATCH: usize = 128;

/// Longest wait for input (or for room downstream) before the frame checks the shutdown flag and
/// the stage beats its heartbeat again.
pub const POLL: Duration = Duration::from_millis(200);

/// decoded at work: its two rings, its stats slot and its configuration.
pub struct Stage {
    input: Consumer<RawRecord>,
    output: Producer<Reading>,
    counters: StageCounters,
    ids: Ids,
    chooser: FormatChooser,
    wait: WaitStrategy,
    fault: FaultHook,
}

struct Ids {
    received: CounterId,
    forwarded: CounterId,
    errors: [CounterId; Reason::ALL.len()],
}

/// Decodes one raw record into a reading that remembers where it came from.
pub fn decode_raw(raw: &RawRecord, chooser: &FormatChooser, source: u64) -> Result<Reading, Reason> {
    let mut reading = decode(raw.payload(), chooser.choose(raw))?;
    reading.received_ms = raw.received_ms;
    reading.source = source;
    Ok(reading)
}

impl stage_runtime::Stage for Stage {
    /// Checks `[decoded]`'s topic filters, then attaches to the stats page and both rings.
    fn start(ctx: &mut Context) -> Result<Stage, Error> {
        let chooser = FormatChooser::new(&ctx.config().decoded).map_err(Error::config)?;
        let counters = ctx.counters()?;
        let input = ctx.consumer::<RawRecord>(segment::RAW)?;
        let output = ctx.producer::<Reading>(segment::READINGS)?;
        Ok(Stage::new(input, output, counters, chooser, ctx.wait_strategy())?)
    }

    /// One batch, or a wait of at most [`POLL`] for one.
    fn step(&mut self) -> Result<(), Error> {
        self.poll(POLL)?;
        Ok(())
    }

    /// Handles the raw records queued now.
    fn drain(mut self) -> Result<(), Error> {
        let drained = self.drain_queued()?;
        tracing::info!(drained, "stopping: raw ring drained");
        Ok(())
    }
}

impl Stage {
    /// Registers the counters and skips the raw records the previous decoded already forwarded.
    pub fn new(
        mut input: Consumer<RawRecord>,
        output: Producer<Reading>,
        mut counters: StageCounters,
        chooser: FormatChooser,
        wait: WaitStrategy,
    ) -> Result<Stage, shm_ring::Error> {
        let received = counters.id(counter::RECEIVED)?;
        let forwarded = counters.id(counter::FORWARDED)?;
        let mut errors = [received; Reason::ALL.len()];
        for reason in Reason::ALL {
            errors[reason.index()] = counters.id(reason.counter())?;
        }

        let read_position = input.position();
        let queued = input.available()? as u64;
        let last_source = output.last_published().map(|r| r.source);
        let skip = match resume::plan(read_position, queued, last_source) {
            Resume::Skip(n) => n,
            Resume::Inconsistent { source } => {
                tracing::warn!(
                    read_position,
                    queued,
                    last_source = source,
                    "the last reading's source is not in the raw ring's queued records (was a ring \
                     recreated?); skipping nothing"
                );
                0
            }
        };
        // Readings the ring has published that `forwarded` does not count: the predecessor was
        // killed between committing a batch's readings and publishing its counters. That batch
        // is exactly the records skipped here, so they are counted as they were decoded.
        let uncounted = output.published().wrapping_sub(counters.published(forwarded));
        let count_skipped = skip > 0 && uncounted > 0 && uncounted <= BATCH as u64;
        let mut left = skip;
        while left > 0 {
            let chunk = input.read_chunk(usize::try_from(left).unwrap_or(usize::MAX))?;
            let n = chunk.len() as u64;
            if count_skipped {
                for (i, raw) in chunk.iter().enumerate() {
                    counters.add(received, 1);
                    match decode_raw(raw, &chooser, read_position.wrapping_add(skip - left + i as u64)) {
                        Ok(_) => counters.add(forwarded, 1),
                        Err(reason) => counters.add(errors[reason.index()], 1),
                    }
                }
            }
            chunk.commit_all();
            if n == 0 {
                break;
            }
            left -= n;
        }
        tracing::info!(
            read_position,
            queued,
            skipped = skip,
            counted = count_skipped,
            "running (skipped: raw records a previous decoded had already forwarded; counted: \
             whether it had not lived to count them)"
        );

        counters.set_ring_depth(segment::RAW, queued - skip);
        counters.flush();
        Ok(Stage {
            input,
            output,
            counters,
            ids: Ids {
                received,
                forwarded,
                errors,
            },
            chooser,
            wait,
            fault: FaultHook::from_env(),
        })
    }

    /// Waits up to `timeout` for raw records and handles one batch of them, or, if the readings
    /// ring is full, waits up to `timeout` for room. Returns the number handled.
    pub fn poll(&mut self, timeout: Duration) -> Result<usize, shm_ring::Error> {
        let ready = self.input.wait_for_records(&self.wait, timeout)?;
        self.counters.set_ring_depth(segment::RAW, ready as u64);
        if ready == 0 {
            self.counters.flush();
            return Ok(0);
        }
        let handled = self.batch(BATCH)?;
        if handled == 0 {
            self.wait_for_room(ready, timeout)?;
        }
        Ok(handled)
    }

    /// Handles every raw record queued now (not those that arrive meanwhile), waiting for room
    /// in the readings ring as needed. Returns how many.
    pub fn drain_queued(&mut self) -> Result<u64, shm_ring::Error> {
        let total = self.input.available()? as u64;
        let mut left = total;
        while left > 0 {
            self.counters.set_ring_depth(segment::RAW, left);
            let handled = self.batch(BATCH.min(left as usize))?;
            if handled == 0 {
                self.wait_for_room(left as usize, POLL)?;
            }
            left -= handled as u64;
        }
        self.counters
            .set_ring_depth(segment::RAW, self.input.available()? as u64);
        self.counters.flush();
        Ok(total)
    }

    /// The readings ring is full: beat the heartbeat (a blocked stage is not a hung one), then
    /// wait for room for a good part of what is queued, so that one wake-up moves many readings.
    fn wait_for_room(&mut self, queued: usize, timeout: Duration) -> Result<(), shm_ring::Error> {
        self.counters.flush();
        let want = queued.min(BATCH).min(self.output.capacity() / 4).max(1);
        self.output.wait_for_slots(want, &self.wait, timeout)?;
        Ok(())
    }

    /// One batch of up to `max` raw records, as far as the readings ring has room; see the module
    /// docs for the order of commits. Returns the number of raw records handled, 0 only when the
    /// readings ring is full (or no raw record is ready).
    fn batch(&mut self, max: usize) -> Result<usize, shm_ring::Error> {
        let base = self.input.position();
        let chunk = self.input.read_chunk(max)?;
        let mut out = self.output.write_chunk(chunk.len())?;
        let room = out.len();
        let (slots_a, slots_b) = out.as_mut_slices();
        let (mut handled, mut written) = (0usize, 0usize);
        // Scoped: the iterator borrows the chunk until it is committed.
        {
            let mut records = chunk.iter();
            while written < room {
                let Some(raw) = records.next() else { break };
                self.counters.add(self.ids.received, 1);
                self.fault.check(raw.payload());
                match decode_raw(raw, &self.chooser, base.wrapping_add(handled as u64)) {
                    Ok(reading) => {
                        let slot = if written < slots_a.len() {
                            &mut slots_a[written]
                        } else {
                            &mut slots_b[written - slots_a.len()]
                        };
                        *slot = reading;
                        written += 1;
                        self.counters.add(self.ids.forwarded, 1);
                    }
                    Err(reason) => self.counters.add(self.ids.errors[reason.index()], 1),
                }
                handled += 1;
            }
        }
        out.commit(written);
        if handled > 0 {
            self.counters.flush();
        }
        chunk.commit(handled);
        Ok(handled)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use records::names::{error_reason, stage};
    use records::{ContentType, FixedText};
    use shm_ring::ring::{create, RingOptions};
    use shm_ring::segment::PrefixGuard;
    use shm_ring::stats::{create_stats_page, StatsReader};
    use shm_ring::SegmentName;
    use telemetry_config::Decoded;

    use super::*;
    use std::time::Instant;

    /// Rings and a stats page under a unique prefix, removed on drop.
    struct Rings {
        raw: SegmentName,
        readings: SegmentName,
        stats: SegmentName,
        _guard: PrefixGuard,
    }

    impl Rings {
        fn new(test: &str, raw_cap: u64, readings_cap: u64, raw_start: u64) -> Rings {
            let prefix = format!("test-decoded-unit-{test}-{}", std::process::id());
            let guard = PrefixGuard::new(&prefix);
            let raw = SegmentName::new(&prefix, segment::RAW).unwrap();
            let readings = SegmentName::new(&prefix, segment::READINGS).unwrap();
            let stats = SegmentName::new(&prefix, segment::STATS).unwrap();
            create::<RawRecord>(&raw, &RingOptions::new(raw_cap).start_position(raw_start)).unwrap();
            create::<Reading>(&readings, &RingOptions::new(readings_cap)).unwrap();
            create_stats_page(
                &stats,
                &stage::ALL,
                &[(segment::RAW, raw_cap), (segment::READINGS, readings_cap)],
            )
            .unwrap();
            Rings {
                raw,
                readings,
                stats,
                _guard: guard,
            }
        }

        fn stage(&self) -> Stage {
            Stage::new(
                Consumer::attach(&self.raw).unwrap(),
                Producer::attach(&self.readings).unwrap(),
                StageCounters::attach(&self.stats, stage::DECODED).unwrap(),
                FormatChooser::new(&Decoded::default()).unwrap(),
                WaitStrategy::immediate(),
            )
            .unwrap()
        }

        fn counter(&self, name: &str) -> u64 {
            let snap = StatsReader::open(&self.stats).unwrap().snapshot();
            snap.stage(stage::DECODED).unwrap().counter(name).unwrap_or(0)
        }
    }

    fn json(seq: u64) -> RawRecord {
        let payload = format!(r#"{{"d":"dev1","s":"temp","v":{seq}.5,"n":{seq}}}"#);
        RawRecord::new(
            b"site/s1/sensor/t",
            payload.as_bytes(),
            ContentType::Unknown,
            1000 + seq,
        )
        .unwrap()
    }

    fn drain_readings(consumer: &mut Consumer<Reading>) -> Vec<Reading> {
        let chunk = consumer.read_chunk(usize::MAX).unwrap();
        let out: Vec<Reading> = chunk.iter().copied().collect();
        chunk.commit_all();
        out
    }

    #[test]
    fn a_batch_is_decoded_counted_and_committed() {
        let rings = Rings::new("batch", 64, 64, u64::MAX - 3);
        let mut raw = Producer::<RawRecord>::attach(&rings.raw).unwrap();
        let mut out = Consumer::<Reading>::attach(&rings.readings).unwrap();
        let bad = RawRecord::new(b"t", b"{\"d\":\"\",\"s\":\"x\",\"v\":1}", ContentType::Json, 0).unwrap();
        let garbage = RawRecord::new(b"t", &[0xff, 0x00], ContentType::Unknown, 0).unwrap();
        raw.push_slice(&[json(1), bad, json(2), garbage, json(3)]).unwrap();

        let mut stage = rings.stage();
        assert_eq!(stage.poll(Duration::from_secs(10)).unwrap(), 5);
        let readings = drain_readings(&mut out);
        assert_eq!(readings.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3]);
        // Sources are raw positions, across the 2^64 wrap.
        assert_eq!(
            readings.iter().map(|r| r.source).collect::<Vec<_>>(),
            [u64::MAX - 3, u64::MAX - 1, 0]
        );
        assert_eq!(readings[1].value, 2.5);
        assert_eq!(readings[1].received_ms, 1002);
        assert_eq!(readings[1].device().text(), "dev1");

        assert_eq!(rings.counter(counter::RECEIVED), 5);
        assert_eq!(rings.counter(counter::FORWARDED), 3);
        assert_eq!(rings.counter(error_reason::EMPTY_ID), 1);
        assert_eq!(rings.counter(error_reason::MALFORMED), 1);
        assert_eq!(rings.counter(error_reason::BAD_TYPE), 0);
        // The raw chunk was committed.
        assert_eq!(stage.poll(Duration::ZERO).unwrap(), 0);
    }

    #[test]
    fn a_restart_skips_what_the_predecessor_forwarded() {
        let rings = Rings::new("resume", 64, 64, u64::MAX - 1);
        let mut raw = Producer::<RawRecord>::attach(&rings.raw).unwrap();
        raw.push_slice(&(1..=6).map(json).collect::<Vec<_>>()).unwrap();
        {
            // A predecessor that forwarded the first three raw records (positions MAX-1, MAX, 0)
            // and died before committing its raw chunk.
            let mut consumer = Consumer::<RawRecord>::attach(&rings.raw).unwrap();
            let chunk = consumer.read_chunk(6).unwrap();
            let chooser = FormatChooser::new(&Decoded::default()).unwrap();
            let mut producer = Producer::<Reading>::attach(&rings.readings).unwrap();
            for (i, r) in chunk.iter().take(3).enumerate() {
                let source = (u64::MAX - 1).wrapping_add(i as u64);
                producer.push(decode_raw(r, &chooser, source).unwrap()).unwrap();
            }
            // The raw chunk goes out of scope uncommitted: the predecessor "died".
        }
        let mut stage = rings.stage();
        assert_eq!(stage.poll(Duration::from_secs(10)).unwrap(), 3);
        let mut out = Consumer::<Reading>::attach(&rings.readings).unwrap();
        let seqs: Vec<u64> = drain_readings(&mut out).iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [1, 2, 3, 4, 5, 6]);
        // The predecessor died before publishing its counters: the skipped records are counted
        // now, once.
        assert_eq!(rings.counter(counter::RECEIVED), 6);
        assert_eq!(rings.counter(counter::FORWARDED), 6);

        // A second restart after a clean batch skips nothing.
        drop(stage);
        raw.push(json(7)).unwrap();
        let mut stage = rings.stage();
        assert_eq!(stage.poll(Duration::from_secs(10)).unwrap(), 1);
        assert_eq!(drain_readings(&mut out).iter().map(|r| r.seq).collect::<Vec<_>>(), [7]);
    }

    #[test]
    fn what_a_predecessor_counted_before_it_died_is_not_counted_again() {
        let rings = Rings::new("counted", 64, 64, 0);
        let mut raw = Producer::<RawRecord>::attach(&rings.raw).unwrap();
        raw.push_slice(&(1..=4).map(json).collect::<Vec<_>>()).unwrap();
        {
            // A predecessor that forwarded and counted two records, then died before committing
            // its raw chunk.
            let mut consumer = Consumer::<RawRecord>::attach(&rings.raw).unwrap();
            let chunk = consumer.read_chunk(4).unwrap();
            let chooser = FormatChooser::new(&Decoded::default()).unwrap();
            let mut producer = Producer::<Reading>::attach(&rings.readings).unwrap();
            for (i, r) in chunk.iter().take(2).enumerate() {
                producer.push(decode_raw(r, &chooser, i as u64).unwrap()).unwrap();
            }
            let mut counters = StageCounters::attach(&rings.stats, stage::DECODED).unwrap();
            let (received, forwarded) = (
                counters.id(counter::RECEIVED).unwrap(),
                counters.id(counter::FORWARDED).unwrap(),
            );
            counters.add(received, 2);
            counters.add(forwarded, 2);
            counters.flush();
        }
        let mut stage = rings.stage();
        assert_eq!(stage.poll(Duration::from_secs(10)).unwrap(), 2);
        assert_eq!(rings.counter(counter::RECEIVED), 4);
        assert_eq!(rings.counter(counter::FORWARDED), 4);
    }

    #[test]
    fn a_full_readings_ring_blocks_instead_of_dropping() {
        let rings = Rings::new("backpressure", 256, 4, 0);
        let mut raw = Producer::<RawRecord>::attach(&rings.raw).unwrap();
        let total = 200u64;
        raw.push_slice(&(1..=total).map(json).collect::<Vec<_>>()).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let mut stage = rings.stage();
        let worker = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    stage.poll(POLL).unwrap();
                }
                stage.drain_queued().unwrap()
            })
        };
        // The stage fills the ring of 4 and waits; we take readings one at a time.
        let mut out = Consumer::<Reading>::attach(&rings.readings).unwrap();
        let mut seqs = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while (seqs.len() as u64) < total {
            assert!(Instant::now() < deadline, "hang guard: got {} of {total}", seqs.len());
            match out.pop() {
                Ok(r) => seqs.push(r.seq),
                Err(_) => std::thread::yield_now(),
            }
        }
        stop.store(true, Ordering::SeqCst);
        worker.join().unwrap();
        assert_eq!(seqs, (1..=total).collect::<Vec<_>>());
        assert_eq!(rings.counter(counter::FORWARDED), total);
    }

    #[test]
    fn a_blocked_stage_has_committed_what_it_handled() {
        let rings = Rings::new("blocked", 64, 4, 0);
        let mut raw = Producer::<RawRecord>::attach(&rings.raw).unwrap();
        let garbage = RawRecord::new(b"t", &[0xff], ContentType::Unknown, 0).unwrap();
        raw.push_slice(&[json(1), garbage, json(2), json(3), json(4), json(5), json(6)])
            .unwrap();
        let mut stage = rings.stage();
        // Four readings fit; the raw records they came from, and the rejected one, are committed.
        assert_eq!(stage.poll(Duration::from_secs(10)).unwrap(), 5);
        let observer = shm_ring::ring::RingObserver::attach(&rings.raw).unwrap();
        assert_eq!(observer.positions(), (7, 5));
        assert_eq!(rings.counter(counter::RECEIVED), 5);
        // Full: a poll handles nothing, waits out its timeout, and commits nothing.
        assert_eq!(stage.poll(Duration::from_millis(1)).unwrap(), 0);
        assert_eq!(observer.positions(), (7, 5));
        let mut out = Consumer::<Reading>::attach(&rings.readings).unwrap();
        assert_eq!(
            drain_readings(&mut out).iter().map(|r| r.seq).collect::<Vec<_>>(),
            [1, 2, 3, 4]
        );
        assert_eq!(stage.poll(Duration::from_secs(10)).unwrap(), 2);
        assert_eq!(
            drain_readings(&mut out).iter().map(|r| r.seq).collect::<Vec<_>>(),
            [5, 6]
        );
    }

    #[test]
    fn stopping_drains_what_is_queued() {
        let rings = Rings::new("drain", 512, 512, 0);
        let mut raw = Producer::<RawRecord>::attach(&rings.raw).unwrap();
        raw.push_slice(&(1..=300).map(json).collect::<Vec<_>>()).unwrap();
        let mut stage = rings.stage();
        assert_eq!(stage.drain_queued().unwrap(), 300);
        let mut out = Consumer::<Reading>::attach(&rings.readings).unwrap();
        assert_eq!(drain_readings(&mut out).len(), 300);
        assert_eq!(rings.counter(counter::RECEIVED), 300);
    }
}
