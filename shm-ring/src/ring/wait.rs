//! How a blocked side waits: spin briefly, then nap for a latency budget (so that a burst of
//! records costs one wake-up, not one each), then sleep on the futex until the peer wakes it.
//!
//! Four stages, a broker and a load generator share two cores, and on this kind of virtual
//! machine a futex wake-up costs microseconds. Waking once per record would eat a core at 50k
//! records/s, so under moderate load the waiting side polls once per nap and the peer makes no
//! system call at all; the futex is used only when the ring has been idle for a while.

use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

use super::futex;
use super::protocol::{self, Std};
use crate::error::Result;

/// How a producer waits for space or a consumer waits for records.
///
/// The phases, in order:
/// 1. `spins` busy polls, a few nanoseconds each: catches a peer that is mid-batch.
/// 2. `naps` sleeps of `nap` each, polling after each. The peer does not wake us here, so a nap
///    is the latency budget: records arriving meanwhile are taken in one batch after it.
/// 3. A futex sleep until the peer wakes us (it does so only after seeing our flag) or the
///    caller's timeout ends.
///
/// ```
/// use std::time::Duration;
/// use shm_ring::ring::WaitStrategy;
///
/// // Lowest latency, burns a core while waiting: for benchmarks and tests.
/// let spin = WaitStrategy::spin();
/// assert_eq!(spin.naps, 0);
/// // The default: up to 1 ms of added latency under load, no CPU when idle.
/// let default = WaitStrategy::default();
/// assert_eq!(default.nap, Duration::from_micros(250));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitStrategy {
    /// Busy polls before napping; `u32::MAX` spins until the timeout.
    pub spins: u32,
    /// Length of one nap: the latency a burst may wait to be taken as one batch.
    pub nap: Duration,
    /// Naps before sleeping on the futex. `nap × naps` is how long the ring must stay idle before
    /// the peer has to pay for a wake-up.
    pub naps: u32,
}

impl WaitStrategy {
    /// Spin until ready or timed out: lowest latency, one core busy while waiting.
    pub const fn spin() -> Self {
        WaitStrategy {
            spins: u32::MAX,
            nap: Duration::ZERO,
            naps: 0,
        }
    }

    /// Spin briefly, then sleep on the futex at once: lowest latency at low rates, one wake-up
    /// per record when records trickle in.
    pub const fn immediate() -> Self {
        WaitStrategy {
            spins: 256,
            nap: Duration::ZERO,
            naps: 0,
        }
    }

    /// Spin briefly, then nap `nap` at a time for up to `naps` naps, then sleep.
    pub const fn batching(nap: Duration, naps: u32) -> Self {
        WaitStrategy { spins: 256, nap, naps }
    }
}

impl Default for WaitStrategy {
    /// `batching(250 µs, 4)`: at most ~1 ms of added latency under load.
    fn default() -> Self {
        WaitStrategy::batching(Duration::from_micros(250), 4)
    }
}

/// Waits until `ready()` returns true or `timeout` passes. `ready` must load the peer's position
/// afresh each call. `my_flag` is this side's futex word in the ring's wait line.
pub(crate) fn wait_until(
    strategy: &WaitStrategy,
    timeout: Duration,
    my_flag: &AtomicU32,
    mut ready: impl FnMut() -> Result<bool>,
) -> Result<bool> {
    if ready()? {
        return Ok(true);
    }
    let start = Instant::now();
    let deadline = start.checked_add(timeout);
    let remaining = || match deadline {
        Some(d) => d.saturating_duration_since(Instant::now()),
        None => Duration::MAX,
    };
    let mut spins = 0u32;
    while spins < strategy.spins {
        std::hint::spin_loop();
        if ready()? {
            return Ok(true);
        }
        spins += 1;
        // Check the clock only now and then: it costs more than a poll.
        if spins.is_multiple_of(1024) && remaining().is_zero() {
            return Ok(false);
        }
    }
    for _ in 0..strategy.naps {
        let left = remaining();
        if left.is_zero() {
            return Ok(false);
        }
        std::thread::sleep(strategy.nap.min(left));
        if ready()? {
            return Ok(true);
        }
    }
    loop {
        let left = remaining();
        if left.is_zero() {
            return Ok(false);
        }
        let mut blocked = true;
        let mut err = None;
        if protocol::prepare_sleep::<Std>(my_flag, || match ready() {
            Ok(r) => {
                blocked = !r;
                blocked
            }
            Err(e) => {
                err = Some(e);
                false
            }
        }) {
            futex::wait(my_flag, 1, left);
            protocol::finish_sleep::<Std>(my_flag);
        }
        if let Some(e) = err {
            return Err(e);
        }
        if !blocked || ready()? {
            return Ok(true);
        }
    }
}
