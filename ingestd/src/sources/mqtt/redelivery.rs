//! Recognising the broker's redeliveries: which QoS 1 messages carrying MQTT's DUP flag ingestd
//! already took (into the raw ring, or into the batch on its way there), in O(1) per message.
//!
//! After a reconnect with a session, the broker resends every message it sent and saw no ack
//! for, with the DUP flag. Those ingestd took before (its ack was lost with a killed process or
//! connection) must not be taken again. The index keeps a digest of the topic and payload of the
//! last [`Redelivered::window`] messages taken (as many as the raw ring holds) and answers with
//! one hash lookup.
//!
//! Why content and not the packet id: mosquitto 2.0.11, resuming a session, moves every message
//! it queued for us into flight at once, past our Receive Maximum, and with a backlog of more
//! than 65,535 messages their packet ids repeat. A restarted ingestd was seen receiving over
//! 100,000 DUP messages; keyed by packet id, most duplicates went unrecognised. The scan that came
//! before (the last ~3,000 ring records, compared per DUP message) both crawled at ~1,300 msg/s
//! through such a resend and missed duplicates further back (docs/benchmarks.md, "Restarts").
//!
//! Only DUP messages are looked up: two messages that arrive normally with the same topic and
//! payload are two readings (a sensor repeating a value). A DUP message identical to one taken
//! within the window is taken for its redelivery; readings that carry a sequence number `n` or a
//! time `t` are never confused.
//!
//! A restarted ingestd takes over its predecessor's window from the raw ring
//! ([`Redelivered::inherit`]), so redeliveries of what a killed process took are recognised too.
//! It does so at the first DUP message, not at start: reading 65,536 ring records (32 MiB, most
//! of it not yet mapped in the new process) took a median of 42 ms under load, which would have
//! delayed every restart; a restart that meets no redelivery never pays it.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

use records::RawRecord;

/// A message's identity for redelivery: a 64-bit digest of its topic and payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Digest(u64);

/// The digest's keys: random, drawn once per process (std's `RandomState`, seeded from the
/// operating system, as aggd seeds its key index). A publisher cannot precompute topics and
/// payloads whose digests collide, so it cannot make the index's lookups walk long chains.
///
/// Per process is enough: digests are never stored or compared across processes. A restarted
/// ingestd digests its predecessor's ring records afresh, with its own keys
/// ([`Redelivered::inherit`]), before it compares redeliveries against them.
static KEYS: std::sync::OnceLock<RandomState> = std::sync::OnceLock::new();

impl Digest {
    /// The digest of a message: SipHash-1-3 keyed with this process's random [`KEYS`].
    pub fn of(topic: &[u8], payload: &[u8]) -> Digest {
        let mut h = KEYS.get_or_init(RandomState::new).build_hasher();
        h.write(topic);
        h.write_u8(0xff);
        h.write(payload);
        Digest(h.finish())
    }
}

/// Digests are already well mixed, and keyed with secret keys: hash them as they are.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// The digests of the last `window` messages taken, with O(1) membership.
pub struct Redelivered {
    window: usize,
    /// Oldest first.
    order: VecDeque<Digest>,
    /// How many times each digest is in `order`.
    counts: HashMap<Digest, u32, BuildHasherDefault<PassThrough>>,
}

impl Redelivered {
    /// An empty index over the last `window` messages taken.
    pub fn new(window: usize) -> Self {
        Redelivered {
            window: window.max(1),
            order: VecDeque::with_capacity(window),
            counts: HashMap::with_capacity_and_hasher(window, BuildHasherDefault::default()),
        }
    }

    /// How many messages it remembers at most.
    pub fn window(&self) -> usize {
        self.window
    }

    /// Remembers a message taken; the oldest one leaves the window.
    pub fn remember(&mut self, digest: Digest) {
        if self.order.len() == self.window {
            if let Some(old) = self.order.pop_front() {
                if let Some(n) = self.counts.get_mut(&old) {
                    *n -= 1;
                    if *n == 0 {
                        self.counts.remove(&old);
                    }
                }
            }
        }
        self.order.push_back(digest);
        *self.counts.entry(digest).or_insert(0) += 1;
    }

    /// Whether a message with this digest was taken within the window.
    pub fn holds(&self, digest: Digest) -> bool {
        self.counts.contains_key(&digest)
    }

    /// Takes over what a predecessor took: `newest_first` are the raw ring's records from the
    /// predecessor's newest back. They are older than anything remembered already, so they fill
    /// the window from behind, as far as it has room. Returns how many it remembered.
    pub fn inherit(&mut self, newest_first: impl Iterator<Item = RawRecord>) -> usize {
        let room = self.window - self.order.len();
        let mut n = 0;
        for r in newest_first.take(room) {
            let d = Digest::of(r.topic(), r.payload());
            self.order.push_front(d);
            *self.counts.entry(d).or_insert(0) += 1;
            n += 1;
        }
        n
    }

    /// Forgets everything: the broker kept no session, so it will redeliver nothing.
    pub fn forget(&mut self) {
        self.order.clear();
        self.counts.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use records::ContentType;

    fn d(topic: &str, payload: &[u8]) -> Digest {
        Digest::of(topic.as_bytes(), payload)
    }

    #[test]
    fn digests_are_stable_within_a_process_and_keyed_per_process() {
        assert_eq!(d("t/a", b"1"), d("t/a", b"1"), "the same message, the same digest");
        // Not the fixed-key SipHash of std's DefaultHasher, which anyone can compute ahead.
        let mut fixed = std::collections::hash_map::DefaultHasher::new();
        fixed.write(b"t/a");
        fixed.write_u8(0xff);
        fixed.write(b"1");
        assert_ne!(d("t/a", b"1").0, fixed.finish());
        // Another process draws other keys.
        if let Ok(exe) = std::env::current_exe() {
            let other = std::process::Command::new(exe)
                .args([
                    "--exact",
                    "sources::mqtt::redelivery::tests::print_a_digest",
                    "--nocapture",
                    "--ignored",
                ])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&other.stdout);
            let theirs = text
                .lines()
                .find_map(|l| l.strip_prefix("digest="))
                .expect("the child printed its digest");
            assert_ne!(theirs, format!("{:x}", d("t/a", b"1").0), "{text}");
        }
    }

    /// Run by `digests_are_stable_within_a_process_and_keyed_per_process` in a child process.
    #[test]
    #[ignore = "run as a child process by another test"]
    fn print_a_digest() {
        println!("digest={:x}", d("t/a", b"1").0);
    }

    #[test]
    fn a_message_taken_within_the_window_is_held() {
        let mut r = Redelivered::new(3);
        r.remember(d("t/a", b"1"));
        assert!(r.holds(d("t/a", b"1")));
        assert!(!r.holds(d("t/a", b"2")), "another payload");
        assert!(!r.holds(d("t/b", b"1")), "another topic");
        // Topic and payload are kept apart: "t/a" + "b1" is not "t/ab" + "1".
        r.remember(d("t/a", b"b1"));
        assert!(!r.holds(d("t/ab", b"1")));
    }

    #[test]
    fn the_oldest_leaves_the_window_and_repeats_are_counted() {
        let mut r = Redelivered::new(3);
        r.remember(d("x", b"1"));
        r.remember(d("x", b"1"));
        r.remember(d("y", b"2"));
        r.remember(d("z", b"3"));
        assert!(r.holds(d("x", b"1")), "one of the two copies is still inside");
        r.remember(d("w", b"4"));
        assert!(!r.holds(d("x", b"1")), "both copies have left");
        assert!(r.holds(d("y", b"2")) && r.holds(d("z", b"3")) && r.holds(d("w", b"4")));
    }

    #[test]
    fn a_predecessors_records_are_inherited_up_to_a_window() {
        let raw = |t: &str| RawRecord::new(t.as_bytes(), b"p", ContentType::Unknown, 0).unwrap();
        let mut r = Redelivered::new(2);
        // Newest first: c, b, a. Only c and b fit the window.
        assert_eq!(r.inherit([raw("c"), raw("b"), raw("a")].into_iter()), 2);
        assert!(r.holds(d("c", b"p")) && r.holds(d("b", b"p")) && !r.holds(d("a", b"p")));
        // What this process takes next pushes out the oldest inherited one (b).
        r.remember(d("mine", b"p"));
        assert!(!r.holds(d("b", b"p")) && r.holds(d("c", b"p")));
        r.forget();
        assert!(!r.holds(d("c", b"p")) && !r.holds(d("mine", b"p")));
    }

    #[test]
    fn inherited_records_are_older_than_what_this_process_took_first() {
        let raw = |t: &str| RawRecord::new(t.as_bytes(), b"p", ContentType::Unknown, 0).unwrap();
        let mut r = Redelivered::new(3);
        r.remember(d("mine", b"p"));
        // Room for two more: b and a; z does not fit.
        assert_eq!(r.inherit([raw("b"), raw("a"), raw("z")].into_iter()), 2);
        assert!(r.holds(d("a", b"p")) && !r.holds(d("z", b"p")));
        // The oldest is a (inherited), then b, then mine.
        r.remember(d("next", b"p"));
        assert!(!r.holds(d("a", b"p")) && r.holds(d("b", b"p")) && r.holds(d("mine", b"p")));
    }
}
