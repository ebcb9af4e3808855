//! The frame: the one life of a stage process, from its command line to its exit code. A stage
//! is what implements [`Stage`]; everything else happens here, in this order, for every stage.

use std::process::ExitCode;

use shm_ring::stats::StageState;
use telemetry_config::Config;
use tracing::{error, info};

use crate::{init_logging, Context, Error, Shutdown};

/// One stage of the pipeline: its own work, and nothing else. [`run`] starts it, reports it
/// ready, calls [`Stage::step`] until a shutdown is requested, reports it stopping, drains it
/// and exits 0; any error ends it with the exit code of [`Error::exit_code`].
///
/// A stage that runs an async runtime (ingestd, emitd) builds it in `start`, keeps it, and
/// blocks on it in each `step` and in `drain`: the frame's loop stays the same for all.
///
/// ```
/// use shm_ring::stats::{CounterId, StageState, StatsReader};
/// use stage_runtime::{Context, Error, Shutdown, StageCounters};
///
/// /// Counts ticks; asks for its own shutdown after three, as SIGTERM would.
/// struct Ticker {
///     counters: StageCounters,
///     ticks: CounterId,
///     shutdown: Shutdown,
///     seen: u64,
/// }
///
/// impl stage_runtime::Stage for Ticker {
///     fn start(ctx: &mut Context) -> Result<Self, Error> {
///         let mut counters = ctx.counters()?;
///         let ticks = counters.id("ticks")?;
///         Ok(Ticker { counters, ticks, shutdown: ctx.shutdown(), seen: 0 })
///     }
///
///     fn step(&mut self) -> Result<(), Error> {
///         self.counters.add(self.ticks, 1);
///         self.counters.flush();
///         self.seen += 1;
///         if self.seen == 3 {
///             self.shutdown.request();
///         }
///         Ok(())
///     }
///
///     fn drain(mut self) -> Result<(), Error> {
///         self.counters.flush();
///         Ok(())
///     }
/// }
///
/// let prefix = format!("doc-frame-{}", std::process::id());
/// let page = shm_ring::SegmentName::new(&prefix, "stats")?;
/// shm_ring::stats::create_stats_page(&page, &["ticker"], &[])?;
/// let config = telemetry_config::Config::from_toml(&format!("[pipeline]\nprefix = \"{prefix}\"\n"))?;
///
/// // What `stage_runtime::run::<Ticker>("ticker")` does after the command line, logging and signals:
/// stage_runtime::run_with::<Ticker>("ticker", config, Shutdown::install()?).map_err(|e| e.to_string())?;
///
/// let snapshot = StatsReader::open(&page)?.snapshot();
/// let ticker = snapshot.stage("ticker").unwrap();
/// assert_eq!(ticker.counter("ticks"), Some(3));
/// assert_eq!(ticker.state, Some(StageState::Stopping), "reported by the frame before the drain");
/// shm_ring::segment::remove_all(&prefix)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Stage: Sized {
    /// Who reports the stage ready; see [`Ready`].
    const READY: Ready = Ready::OnStart;

    /// Checks the stage's own configuration ([`Error::config`], exit 2: before anything is
    /// attached, so nothing is touched), attaches to its segments through `ctx` (ring roles, its
    /// counters: [`Context::counters`]), and resumes where a predecessor stopped. Returns once
    /// the stage can do its work.
    fn start(ctx: &mut Context) -> Result<Self, Error>;

    /// One turn of work: a batch, or a wait for one. Returns within a fraction of a second
    /// (the stages wait at most 250 ms, or until a shutdown request wakes them), since the
    /// frame looks at the shutdown flag between steps.
    fn step(&mut self) -> Result<(), Error>;

    /// After a shutdown request: hands on what the stage holds (its input ring as queued now, a
    /// client's buffers) and returns; the process then exits 0. The supervisor's SIGKILL after
    /// `[supervisor] shutdown_timeout_ms` interrupts a drain that takes longer, losing nothing
    /// queued in a ring.
    fn drain(self) -> Result<(), Error>;
}

/// Who reports a stage ready (`Running` in its slot, and a wake-up for the supervisor that waits
/// for it; see [`StageCounters::set_state`](crate::StageCounters::set_state)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ready {
    /// The frame, as soon as [`Stage::start`] returns (decoded, aggd, emitd).
    OnStart,
    /// The stage itself, when it says so: ingestd, once a source has taken input (connected and
    /// subscribed to its broker, or listening), or has found that it cannot yet.
    Announced,
}

/// Exit code after a shutdown request was handled: the stage drained.
pub const EXIT_DONE: u8 = 0;
/// Exit code of a runtime error ([`Error::Failed`]).
pub const EXIT_FAILED: u8 = 1;
/// Exit code of a configuration or usage error ([`Error::Config`]).
pub const EXIT_CONFIG: u8 = 2;

/// The whole life of the stage process `S`, named `stage` (`records::names::stage`): the
/// command line (`--config PATH`; a bad one exits 2 before anything else), logging, the signal
/// handlers, then [`run_with`]. Every stage's `main` is this one call.
pub fn run<S: Stage>(stage: &'static str) -> ExitCode {
    let config = match telemetry_config::from_args() {
        Ok(config) => config,
        Err(e) => {
            // Before logging: usage errors read best as one plain line.
            eprintln!("{stage}: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    init_logging(stage);
    let shutdown = match Shutdown::install() {
        Ok(shutdown) => shutdown,
        Err(e) => {
            error!(error = %e, "cannot install the signal handlers");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    match run_with::<S>(stage, config, shutdown) {
        Ok(()) => ExitCode::from(EXIT_DONE),
        Err(e) => e.exit_code(),
    }
}

/// The stage's part of [`run`], for a process that has its configuration and signal handlers:
/// [`Stage::start`], ready (see [`Ready`]), [`Stage::step`] until `shutdown` is requested,
/// `Stopping`, [`Stage::drain`]. Logs how it ended, and returns the error that ended it.
pub fn run_with<S: Stage>(stage: &'static str, config: Config, shutdown: Shutdown) -> Result<(), Error> {
    let mut ctx = Context::new(stage, config, shutdown);
    let mut running = S::start(&mut ctx).inspect_err(|e| match e {
        Error::Config(_) => error!(error = %e, "cannot run with this configuration"),
        Error::Failed(_) => error!(error = %e, "cannot start"),
    })?;
    let state = ctx
        .state()
        .map_err(Error::from)
        .inspect_err(|e| error!(error = %e, "cannot start"))?;
    if S::READY == Ready::OnStart {
        state.set(StageState::Running);
    }
    while !shutdown.requested() {
        running
            .step()
            .inspect_err(|e| error!(error = %e, "stopped on an error"))?;
    }
    state.set(StageState::Stopping);
    running
        .drain()
        .inspect_err(|e| error!(error = %e, "stopped on an error while draining"))?;
    info!("stopped");
    Ok(())
}
