//! The two clocks the pipeline stamps things with, in milliseconds.
//!
//! The wall clock is for stamps other processes and people read (a stage's start, a reading's
//! arrival); the monotonic clock is for intervals inside one boot (heartbeats), where a wall
//! clock step must not look like a hung or a reborn stage. They live in the lowest crate because
//! the stats page stamps with both; `stage_runtime::unix_ms` re-exports the wall clock.

/// Milliseconds since the Unix epoch, by the wall clock (0 if the clock is before 1970).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Milliseconds of `CLOCK_MONOTONIC` (since boot, not counting suspend), or 0 if it cannot be read.
pub(crate) fn monotonic_ms() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1000 + t.tv_nsec() as u64 / 1_000_000)
        .unwrap_or(0)
}
