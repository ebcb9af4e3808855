//! A stage's counters: registered once by name in the stats page, incremented locally per
//! record, published once per batch. Also its state, and the wake-up that tells the supervisor
//! it is ready (see [`crate::ready`]), which the frame reports through a state handle while
//! the stage owns the counters.

use std::os::fd::RawFd;

use shm_ring::stats::{CounterBatch, CounterId, Heartbeat, StageState, StageWriter};
use shm_ring::SegmentName;

/// A stage's slot in the stats page plus the batch of increments not yet published.
pub struct StageCounters {
    writer: StageWriter,
    batch: CounterBatch,
    state: StateHandle,
}

/// Reports a stage's state in its slot, and wakes the supervisor when that state is `Running`.
/// [`StageCounters::set_state`] and the frame ([`crate::run`]) both report through one.
#[derive(Clone)]
pub(crate) struct StateHandle {
    slot: Heartbeat,
    /// The supervisor's readiness pipe, when it started this stage.
    ready_fd: Option<RawFd>,
}

impl StateHandle {
    pub(crate) fn set(&self, state: StageState) {
        self.slot.set_state(state);
        if state == StageState::Running {
            if let Some(fd) = self.ready_fd {
                // After the state is stored, so that the supervisor finds it when it looks.
                crate::ready::wake(fd);
            }
        }
    }
}

impl StageCounters {
    /// Takes the stage's writer role in the stats page `page`.
    pub fn attach(page: &SegmentName, stage: &str) -> Result<Self, shm_ring::Error> {
        let writer = StageWriter::attach(page, stage)?;
        let state = StateHandle {
            slot: writer.heartbeat_handle(),
            ready_fd: crate::ready::from_env(),
        };
        Ok(StageCounters {
            writer,
            batch: CounterBatch::default(),
            state,
        })
    }

    /// Registers (or finds, after a restart) a counter.
    pub fn id(&mut self, name: &str) -> Result<CounterId, shm_ring::Error> {
        self.writer.counter(name)
    }

    /// Adds `n` to a counter, locally until the next [`StageCounters::flush`].
    #[inline]
    pub fn add(&mut self, id: CounterId, n: u64) {
        self.batch.add(id, n);
    }

    /// Sets a gauge (a counter named `gauge.<name>`, see `records::names::gauge`) to `value`,
    /// published with the next [`StageCounters::flush`] like an increment.
    ///
    /// ```
    /// # let name = shm_ring::SegmentName::new(&format!("doc-gauge-{}", std::process::id()), "stats").unwrap();
    /// # shm_ring::stats::create_stats_page(&name, &["emitd"], &[]).unwrap();
    /// let mut counters = stage_runtime::StageCounters::attach(&name, "emitd").unwrap();
    /// let backlog = counters.id("gauge.backlog.nats").unwrap();
    /// counters.set_gauge(backlog, 7);
    /// counters.set_gauge(backlog, 3);
    /// counters.flush();
    /// assert_eq!(counters.published(backlog), 3);
    /// # drop(counters);
    /// # shm_ring::segment::remove_all(name.prefix()).unwrap();
    /// ```
    pub fn set_gauge(&mut self, id: CounterId, value: u64) {
        // The batch carries increments: the step from what readers will see after the flush.
        let current = self.writer.value(id).wrapping_add(self.batch.get(id));
        self.batch.add(id, value.wrapping_sub(current));
    }

    /// A counter's published value (without increments not flushed yet).
    pub fn published(&self, id: CounterId) -> u64 {
        self.writer.value(id)
    }

    /// Publishes the increments as one consistent step and beats the heartbeat.
    pub fn flush(&mut self) {
        self.writer.flush(&mut self.batch);
    }

    /// A handle that beats the heartbeat from elsewhere (see `shm_ring::stats::Heartbeat`).
    pub fn heartbeat_handle(&self) -> Heartbeat {
        self.writer.heartbeat_handle()
    }

    /// Reports the stage's state. `Running` means ready: the supervisor that started the stage
    /// is woken and takes it as started. The frame reports `Running` when
    /// [`Stage::start`](crate::Stage::start) returns and `Stopping` before
    /// [`Stage::drain`](crate::Stage::drain); a stage calls this itself only if it announces its
    /// own readiness ([`Ready::Announced`](crate::Ready::Announced): ingestd).
    pub fn set_state(&self, state: StageState) {
        self.state.set(state);
    }

    /// The handle the frame reports the stage's state through.
    pub(crate) fn state_handle(&self) -> StateHandle {
        self.state.clone()
    }

    /// Reports the depth of a ring this stage consumes.
    pub fn set_ring_depth(&self, ring: &str, depth: u64) {
        self.writer.set_ring_depth(ring, depth);
    }
}
