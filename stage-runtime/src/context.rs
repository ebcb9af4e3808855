//! What a stage's [`start`](crate::Stage::start) gets from the frame: the configuration, the
//! shutdown flag, and attaching to the pipeline's segments with the one [`PATIENCE`].

use shm_ring::ring::WaitStrategy;
use shm_ring::{Consumer, Producer, Record, SegmentName};
use telemetry_config::Config;

use crate::counters::StateHandle;
use crate::{patiently, Shutdown, StageCounters, PATIENCE};

/// The stage's view of its process while it starts. Nothing is attached until the stage asks,
/// so a stage that checks its own configuration first exits 2 with nothing touched.
pub struct Context {
    stage: &'static str,
    config: Config,
    shutdown: Shutdown,
    /// Set once the stage's counters are attached: the frame reports the stage's state through it.
    state: Option<StateHandle>,
    /// The counters, if the frame had to attach them itself (the stage never asked).
    unclaimed: Option<StageCounters>,
}

impl Context {
    pub(crate) fn new(stage: &'static str, config: Config, shutdown: Shutdown) -> Context {
        Context {
            stage,
            config,
            shutdown,
            state: None,
            unclaimed: None,
        }
    }

    /// The stage's name (`records::names::stage`): its slot in the stats page.
    pub fn stage(&self) -> &'static str {
        self.stage
    }

    /// The configuration, already checked as a whole (`telemetry_config::Config::check`).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The shutdown flag. The frame checks it between steps; a stage keeps a copy only to wake
    /// early from a wait of its own ([`Shutdown::wake_pipe`]).
    pub fn shutdown(&self) -> Shutdown {
        self.shutdown
    }

    /// The segment `name` (`records::names::segment`) of this pipeline.
    pub fn segment(&self, name: &str) -> Result<SegmentName, shm_ring::Error> {
        crate::segment(&self.config, name)
    }

    /// The ring wait strategy of `[wait]`.
    pub fn wait_strategy(&self) -> WaitStrategy {
        crate::wait_strategy(&self.config)
    }

    /// Attaches as the consumer of the ring `name`, waiting up to [`PATIENCE`] for a predecessor
    /// to let go of it.
    pub fn consumer<T: Record>(&self, name: &str) -> Result<Consumer<T>, shm_ring::Error> {
        crate::attach_consumer(&self.segment(name)?, PATIENCE)
    }

    /// Attaches as the producer of the ring `name`; see [`Context::consumer`].
    pub fn producer<T: Record>(&self, name: &str) -> Result<Producer<T>, shm_ring::Error> {
        crate::attach_producer(&self.segment(name)?, PATIENCE)
    }

    /// Retries `f` for up to [`PATIENCE`] while a role is held or a segment is not ready yet
    /// (for what a stage attaches by itself: aggd's tables).
    pub fn patiently<T>(&self, f: impl FnMut() -> Result<T, shm_ring::Error>) -> Result<T, shm_ring::Error> {
        patiently(PATIENCE, f)
    }

    /// Takes the stage's slot in the stats page, waiting up to [`PATIENCE`] for a predecessor to
    /// let go of it. Once per process: the slot has one writer.
    pub fn counters(&mut self) -> Result<StageCounters, shm_ring::Error> {
        if self.state.is_some() {
            return Err(shm_ring::Error::InvalidParameter {
                reason: format!("the counters of {} were taken already", self.stage),
            });
        }
        let page = self.segment(records::names::segment::STATS)?;
        let counters = patiently(PATIENCE, || StageCounters::attach(&page, self.stage))?;
        self.state = Some(counters.state_handle());
        Ok(counters)
    }

    /// The handle the frame reports the stage's state through, attaching the counters (and
    /// keeping them here) if the stage never took them.
    pub(crate) fn state(&mut self) -> Result<StateHandle, shm_ring::Error> {
        if let Some(state) = &self.state {
            return Ok(state.clone());
        }
        let counters = self.counters()?;
        let state = counters.state_handle();
        self.unclaimed = Some(counters);
        Ok(state)
    }
}
