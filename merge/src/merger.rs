//! [`Merger`]: the partials of each (key, window end) held until the window end is complete
//! (every live pipeline's watermark has reached it, see [`Instances`]), then merged by
//! `records::merge`'s rules into one aggregate, revision 0. A partial of a window already merged
//! (a pipeline that was not waited for, or slow) is *late*: merged into the last revision, it
//! makes revision + 1, a corrected aggregate, never a silent loss and never a double count. A
//! partial of an instance a window already holds is a duplicate (a redelivery): counted, and
//! changes nothing.
//!
//! Partials are merged in instance order, whatever order they came in, so two mergers fed the
//! same partials give the same aggregate to the bit (their `Nats-Msg-Id`s, (device, sensor,
//! window end, revision), are the same too, so JetStream keeps one copy).
//!
//! Merged windows are kept for `retain_ms` after their end (late partials need them); the
//! binary keeps them across restarts as well ([`Merger::restore`]). Nothing is merged during
//! the first `timeout_ms` after the start, so that every live pipeline's watermark has been seen
//! once.

use std::collections::BTreeMap;

use records::{merge_partials, Aggregate, FixedText};

use crate::instances::Instances;
use crate::partial::Partial;

/// A (window end, device, sensor): what a merged aggregate is of.
type Key = (u64, Vec<u8>, Vec<u8>);

/// One merged aggregate and what it is made of.
#[derive(Clone, Debug)]
pub struct Merged {
    /// The merge of the partials (its `last` is the latest partial's).
    pub aggregate: Aggregate,
    /// The pipelines whose partials it holds, in order.
    pub instances: Vec<String>,
    /// The pipeline whose `last` it carries (a late partial's `last` is ordered against it by
    /// `records::merge::is_later`).
    pub last_from: String,
    /// 0 for the first merge of this key and window, then + 1 for each late partial.
    pub revision: u32,
}

/// What became of a partial.
#[derive(Clone, Debug)]
pub enum Verdict {
    /// Held until its window end is complete.
    Pending,
    /// Its window was merged already: here is the corrected aggregate (the next revision).
    Late(Box<Merged>),
    /// Its instance's partial of this key and window is held already: nothing changed.
    Duplicate,
}

/// Running totals, for the merger's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Partials taken.
    pub partials: u64,
    /// Aggregates merged (revision 0).
    pub merged: u64,
    /// Late partials (each a new revision).
    pub late: u64,
    /// Duplicate partials.
    pub duplicates: u64,
    /// Pipelines that stopped being waited for.
    pub timed_out: u64,
}

/// The merger's state.
pub struct Merger {
    instances: Instances,
    timeout_ms: u64,
    retain_ms: u64,
    started_ms: u64,
    pending: BTreeMap<Key, Vec<Partial>>,
    done: BTreeMap<Key, Merged>,
    counts: Counts,
}

fn key_of(a: &Aggregate) -> Key {
    (
        a.window_end_ms,
        a.device().bytes().to_vec(),
        a.sensor().bytes().to_vec(),
    )
}

impl Merger {
    /// A merger started at `now_ms` that stops waiting for a pipeline silent for `timeout_ms`
    /// and keeps merged windows for `retain_ms` after their end.
    pub fn new(timeout_ms: u64, retain_ms: u64, now_ms: u64) -> Merger {
        Merger {
            instances: Instances::new(timeout_ms),
            timeout_ms,
            retain_ms,
            started_ms: now_ms,
            pending: BTreeMap::new(),
            done: BTreeMap::new(),
            counts: Counts::default(),
        }
    }

    /// Takes one partial.
    pub fn partial(&mut self, p: Partial, now_ms: u64) -> Verdict {
        self.counts.partials += 1;
        self.instances.partial(&p.instance, now_ms);
        let key = key_of(&p.aggregate);
        if let Some(done) = self.done.get_mut(&key) {
            if done.instances.contains(&p.instance) {
                self.counts.duplicates += 1;
                return Verdict::Duplicate;
            }
            let parts = [
                (done.last_from.as_str(), &done.aggregate),
                (p.instance.as_str(), &p.aggregate),
            ];
            let (aggregate, from) = merge_partials(parts).expect("the same key and window");
            let from = from.to_owned();
            let at = done.instances.binary_search(&p.instance).unwrap_or_else(|i| i);
            done.instances.insert(at, p.instance.clone());
            (done.aggregate, done.last_from) = (aggregate, from);
            done.revision += 1;
            self.counts.late += 1;
            return Verdict::Late(Box::new(done.clone()));
        }
        let held = self.pending.entry(key).or_default();
        if held.iter().any(|h| h.instance == p.instance) {
            self.counts.duplicates += 1;
            return Verdict::Duplicate;
        }
        let at = held.partition_point(|h| h.instance < p.instance);
        held.insert(at, p);
        Verdict::Pending
    }

    /// `instance` published every partial of the windows ending at or before `window_end_ms`.
    pub fn watermark(&mut self, instance: &str, window_end_ms: u64, now_ms: u64) {
        self.instances.watermark(instance, window_end_ms, now_ms);
    }

    /// Merges every pending window end that is complete by `now_ms`, in window order, and
    /// forgets merged windows older than `retain_ms`. Returns the new merged aggregates
    /// (revision 0).
    pub fn complete(&mut self, now_ms: u64) -> Vec<Merged> {
        self.counts.timed_out += self.instances.expire(now_ms).len() as u64;
        let mut out = Vec::new();
        if now_ms < self.started_ms.saturating_add(self.timeout_ms) {
            return out;
        }
        let Some(through) = self.instances.complete_through() else {
            return out;
        };
        while let Some(entry) = self.pending.first_entry() {
            if entry.key().0 > through {
                break;
            }
            let (key, parts) = entry.remove_entry();
            let named = parts.iter().map(|p| (p.instance.as_str(), &p.aggregate));
            let (aggregate, from) = merge_partials(named).expect("one key and window, at least one partial");
            let merged = Merged {
                aggregate,
                last_from: from.to_owned(),
                instances: parts.iter().map(|p| p.instance.clone()).collect(),
                revision: 0,
            };
            self.counts.merged += 1;
            out.push(merged.clone());
            self.done.insert(key, merged);
        }
        let horizon = now_ms.saturating_sub(self.retain_ms);
        self.done.retain(|k, _| k.0 >= horizon);
        out
    }

    /// Takes back a merged aggregate kept elsewhere (after a restart), so that a late partial
    /// of its window makes the next revision.
    pub fn restore(&mut self, merged: Merged) {
        self.done.insert(key_of(&merged.aggregate), merged);
    }

    /// Windows waiting for their end to be complete.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Pipelines waited for.
    pub fn live_instances(&self) -> usize {
        self.instances.live()
    }

    /// The running totals.
    pub fn counts(&self) -> Counts {
        self.counts
    }
}
