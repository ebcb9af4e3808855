//! The publish/consume/sleep protocol, written once over an abstract set of atomics so that the
//! same code runs on the real shared-memory words and, under `--cfg loom`, on loom's model
//! atomics (see the `loom_model` tests at the bottom, and `docs/decisions.md`).
//!
//! Two facts make the rings correct:
//!
//! 1. **Visibility.** A side fills or drains slots first and then stores its position with
//!    `Release`; the other side loads that position with `Acquire` before touching the slots. So
//!    a record is visible only once complete, and a slot is reused only once read.
//! 2. **No lost wake-up.** A side that wants to sleep stores 1 to its flag, issues a `SeqCst`
//!    fence, and only then re-loads the peer's position; a side that advances stores its
//!    position, issues a `SeqCst` fence, then loads the peer's flag. The two fences order the
//!    four accesses, so at least one side sees the other's store: either the sleeper sees the new
//!    position and does not sleep, or the advancer sees the flag and wakes it.

use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};

/// The atomics the protocol needs, so that loom can stand in for std.
pub(crate) trait Atomics {
    type U32;
    type U64;
    fn load32(a: &Self::U32) -> u32;
    fn store32(a: &Self::U32, v: u32);
    fn swap32(a: &Self::U32, v: u32) -> u32;
    #[cfg_attr(not(loom), allow(dead_code))] // the real code loads positions directly
    fn load64_acquire(a: &Self::U64) -> u64;
    fn store64_release(a: &Self::U64, v: u64);
    fn fence_seqcst();
}

/// The real thing: std atomics in the shared mapping.
pub(crate) struct Std;

impl Atomics for Std {
    type U32 = std::sync::atomic::AtomicU32;
    type U64 = std::sync::atomic::AtomicU64;
    #[inline]
    fn load32(a: &Self::U32) -> u32 {
        a.load(Relaxed)
    }
    #[inline]
    fn store32(a: &Self::U32, v: u32) {
        a.store(v, Relaxed)
    }
    #[inline]
    fn swap32(a: &Self::U32, v: u32) -> u32 {
        a.swap(v, Relaxed)
    }
    #[inline]
    fn load64_acquire(a: &Self::U64) -> u64 {
        a.load(Acquire)
    }
    #[inline]
    fn store64_release(a: &Self::U64, v: u64) {
        a.store(v, Release)
    }
    #[inline]
    fn fence_seqcst() {
        std::sync::atomic::fence(SeqCst)
    }
}

/// Stores a side's new position (after its slots are written or read) and says whether the peer
/// announced that it sleeps; if so the flag has been cleared and the caller must wake the futex.
#[inline]
pub(crate) fn advance<A: Atomics>(my_pos: &A::U64, new_pos: u64, peer_sleeping: &A::U32) -> bool {
    A::store64_release(my_pos, new_pos);
    A::fence_seqcst();
    // The plain load keeps the common case (peer awake) free of a read-modify-write.
    A::load32(peer_sleeping) != 0 && A::swap32(peer_sleeping, 0) != 0
}

/// Announces that this side is about to sleep, then re-checks `blocked` (which must load the
/// peer's position afresh). Returns `true` if the caller may sleep on `my_flag` with expected
/// value 1; returns `false`, with the flag cleared, if the peer moved meanwhile.
#[inline]
pub(crate) fn prepare_sleep<A: Atomics>(my_flag: &A::U32, blocked: impl FnOnce() -> bool) -> bool {
    // A read-modify-write rather than a plain store: the same cost on this (rare) path, and it
    // puts the flag after every earlier clear in the modification order without relying on the
    // fence alone, a case loom's fence model cannot show (see docs/decisions.md).
    A::swap32(my_flag, 1);
    A::fence_seqcst();
    if blocked() {
        true
    } else {
        A::store32(my_flag, 0);
        false
    }
}

/// Clears this side's flag after a sleep ended for any reason (wake, timeout, signal).
#[inline]
pub(crate) fn finish_sleep<A: Atomics>(my_flag: &A::U32) {
    A::store32(my_flag, 0);
}

#[cfg(all(test, loom))]
mod loom_model {
    //! Exhaustive interleavings of one producer and one consumer on a 2-slot ring, both of which
    //! sleep when blocked. The futex is modelled by a mutex and condvar with futex semantics
    //! (compare-and-block under the lock, wake under the lock) and, unlike the real one, has no
    //! timeout, so a lost wake-up shows up as a deadlock that loom reports.
    use super::*;
    use loom::cell::UnsafeCell;
    use loom::sync::atomic::{AtomicU32, AtomicU64};
    use loom::sync::{Arc, Condvar, Mutex};

    struct Loom;
    impl Atomics for Loom {
        type U32 = AtomicU32;
        type U64 = AtomicU64;
        fn load32(a: &AtomicU32) -> u32 {
            a.load(Relaxed)
        }
        fn store32(a: &AtomicU32, v: u32) {
            a.store(v, Relaxed)
        }
        fn swap32(a: &AtomicU32, v: u32) -> u32 {
            a.swap(v, Relaxed)
        }
        fn load64_acquire(a: &AtomicU64) -> u64 {
            a.load(Acquire)
        }
        fn store64_release(a: &AtomicU64, v: u64) {
            a.store(v, Release)
        }
        fn fence_seqcst() {
            loom::sync::atomic::fence(SeqCst)
        }
    }

    struct Futex {
        lock: Mutex<()>,
        cv: Condvar,
    }
    impl Futex {
        fn new() -> Self {
            Futex {
                lock: Mutex::new(()),
                cv: Condvar::new(),
            }
        }
        fn wait(&self, word: &AtomicU32, expected: u32) {
            let g = self.lock.lock().unwrap();
            if word.load(SeqCst) == expected {
                drop(self.cv.wait(g).unwrap());
            }
        }
        fn wake(&self) {
            let _g = self.lock.lock().unwrap();
            self.cv.notify_all();
        }
    }

    /// The bare store-buffering shape of `advance` against `prepare_sleep`.
    #[test]
    fn sleeper_or_advancer_sees_the_other() {
        loom::model(|| {
            let pos = Arc::new(AtomicU64::new(0));
            let flag = Arc::new(AtomicU32::new(0));
            let (p2, f2) = (pos.clone(), flag.clone());
            let t = loom::thread::spawn(move || advance::<Loom>(&p2, 1, &f2));
            let may_sleep = prepare_sleep::<Loom>(&flag, || Loom::load64_acquire(&pos) == 0);
            let woke = t.join().unwrap();
            assert!(!may_sleep || woke, "lost wake-up");
        });
    }

    const CAP: u64 = 2;
    const N: u64 = 3;

    struct Ring {
        write_pos: AtomicU64,
        read_pos: AtomicU64,
        consumer_sleeping: AtomicU32,
        producer_sleeping: AtomicU32,
        slots: [UnsafeCell<u64>; CAP as usize],
        consumer_futex: Futex,
        producer_futex: Futex,
    }

    #[test]
    fn every_record_arrives_once_in_order_and_nobody_sleeps_forever() {
        // Positions start near u64::MAX so the model also crosses the wrap.
        const START: u64 = u64::MAX - 1;
        loom::model(|| {
            let ring = Arc::new(Ring {
                write_pos: AtomicU64::new(START),
                read_pos: AtomicU64::new(START),
                consumer_sleeping: AtomicU32::new(0),
                producer_sleeping: AtomicU32::new(0),
                slots: [UnsafeCell::new(0), UnsafeCell::new(0)],
                consumer_futex: Futex::new(),
                producer_futex: Futex::new(),
            });
            let r = ring.clone();
            let producer = loom::thread::spawn(move || {
                let mut w = START;
                for value in 0..N {
                    let full = |r: &Ring| w.wrapping_sub(Loom::load64_acquire(&r.read_pos)) >= CAP;
                    while full(&r) {
                        if prepare_sleep::<Loom>(&r.producer_sleeping, || full(&r)) {
                            r.producer_futex.wait(&r.producer_sleeping, 1);
                            finish_sleep::<Loom>(&r.producer_sleeping);
                        }
                    }
                    r.slots[(w % CAP) as usize].with_mut(|p| unsafe { *p = value });
                    w = w.wrapping_add(1);
                    if advance::<Loom>(&r.write_pos, w, &r.consumer_sleeping) {
                        r.consumer_futex.wake();
                    }
                }
            });
            let mut rd = START;
            for expected in 0..N {
                let empty = |r: &Ring| Loom::load64_acquire(&r.write_pos) == rd;
                while empty(&ring) {
                    if prepare_sleep::<Loom>(&ring.consumer_sleeping, || empty(&ring)) {
                        ring.consumer_futex.wait(&ring.consumer_sleeping, 1);
                        finish_sleep::<Loom>(&ring.consumer_sleeping);
                    }
                }
                let got = ring.slots[(rd % CAP) as usize].with(|p| unsafe { *p });
                assert_eq!(got, expected);
                rd = rd.wrapping_add(1);
                if advance::<Loom>(&ring.read_pos, rd, &ring.producer_sleeping) {
                    ring.producer_futex.wake();
                }
            }
            producer.join().unwrap();
        });
    }
}
