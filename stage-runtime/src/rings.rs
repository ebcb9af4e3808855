//! Opening the pipeline's segments by their shared names, with errors that say which stage and
//! which segment, and the ring wait strategy from `[wait]`.

use std::time::{Duration, Instant};

use shm_ring::ring::WaitStrategy;
use shm_ring::{Consumer, Producer, Record, SegmentName};
use telemetry_config::Config;

/// How long a stage retries attaching to a segment (a ring role, its stats slot, a table) while a
/// predecessor still holds it or the supervisor is still creating it: the one patience of every
/// stage ([`Context`](crate::Context) attaches with it). A SIGKILLed predecessor's roles are
/// released by the kernel as its descriptors close, within milliseconds; a predecessor that is
/// still exiting (draining, dumping core) may hold them for seconds. 10 s is the supervisor's
/// own patience when it prepares the segments, and a third of its default start timeout, so a
/// stage that cannot attach fails and is restarted with backoff long before it is taken for hung.
/// Waiting costs nothing when the role is free: the first attempt succeeds.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// The segment `name` (see `records::names::segment`) of this configuration's pipeline.
pub fn segment(config: &Config, name: &str) -> Result<SegmentName, shm_ring::Error> {
    SegmentName::new(&config.pipeline.prefix, name)
}

/// The wait strategy of `[wait]`.
pub fn wait_strategy(config: &Config) -> WaitStrategy {
    WaitStrategy::batching(Duration::from_micros(config.wait.nap_us), config.wait.naps)
}

/// Attaches as the producer of a ring, retrying for up to `patience` while the role is still
/// held: a stage restarted by the supervisor may start before the kernel has released its
/// predecessor's lock.
pub fn attach_producer<T: Record>(name: &SegmentName, patience: Duration) -> Result<Producer<T>, shm_ring::Error> {
    patiently(patience, || Producer::attach(name))
}

/// Attaches as the consumer of a ring; see [`attach_producer`].
pub fn attach_consumer<T: Record>(name: &SegmentName, patience: Duration) -> Result<Consumer<T>, shm_ring::Error> {
    patiently(patience, || Consumer::attach(name))
}

/// Retries `f` for up to `patience` while it fails because a role is still held or a segment is
/// not initialised yet (a predecessor exiting, a supervisor still creating segments); any other
/// result is returned at once.
pub fn patiently<T>(
    patience: Duration,
    mut f: impl FnMut() -> Result<T, shm_ring::Error>,
) -> Result<T, shm_ring::Error> {
    let deadline = Instant::now() + patience;
    loop {
        match f() {
            Err(shm_ring::Error::RoleHeld { .. } | shm_ring::Error::NotReady { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}
