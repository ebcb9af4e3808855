//! The frame every stage process runs in. A stage (ingestd, decoded, aggd, emitd) implements
//! [`Stage`], its own work in three calls: [`start`](Stage::start), [`step`](Stage::step),
//! [`drain`](Stage::drain). Its `main` names it and nothing else:
//!
//! ```no_run
//! # struct Aggd;
//! # impl stage_runtime::Stage for Aggd {
//! #     fn start(_: &mut stage_runtime::Context) -> Result<Self, stage_runtime::Error> { Ok(Aggd) }
//! #     fn step(&mut self) -> Result<(), stage_runtime::Error> { Ok(()) }
//! #     fn drain(self) -> Result<(), stage_runtime::Error> { Ok(()) }
//! # }
//! fn main() -> std::process::ExitCode {
//!     stage_runtime::run::<Aggd>(records::names::stage::AGGD)
//! }
//! ```
//!
//! Everything else a stage process does is here, once, in this order ([`run`]):
//!
//! 1. **The command line and the configuration**: `--config PATH` (`--help`, `--version`), the
//!    file read and checked as a whole. A bad one exits 2 before anything else.
//! 2. **Logging**: `tracing`, structured, to stderr ([`init_logging`]; `TELEMETRY_LOG` sets the
//!    level).
//! 3. **Signals**: SIGTERM and SIGINT set the [`Shutdown`] flag.
//! 4. **Start**: [`Stage::start`] checks the stage's own settings (exit 2, still nothing
//!    touched), then attaches through its [`Context`]: ring roles and its counters in the stats
//!    page ([`StageCounters`]), each retried for up to the one [`PATIENCE`] while a predecessor
//!    lets go.
//! 5. **Ready**: `Running` in the stage's slot, and a wake-up for the supervisor that started it
//!    ([`READY_FD_ENV`]), as soon as `start` returns ([`Ready`]).
//! 6. **Work**: [`Stage::step`] until a shutdown is requested.
//! 7. **Drain, then exit**: `Stopping` in the slot, [`Stage::drain`], exit 0.
//!
//! # Exit codes
//!
//! The same for every stage:
//!
//! | code | when |
//! |---|---|
//! | 0 ([`EXIT_DONE`]) | a shutdown request was handled: the stage drained (or `--help`, `--version`) |
//! | 1 ([`EXIT_FAILED`]) | a runtime error ([`Error::Failed`]): a ring, the stats page, a listener, a client |
//! | 2 ([`EXIT_CONFIG`]) | a configuration or usage error ([`Error::Config`]), found before the stage attached anything (but for what only starting a client finds: emitd's sinks) |
//!
//! The supervisor restarts a stage that exits when it was not asked to stop, whatever the code;
//! nothing queued in a ring is lost by an exit. A stage killed by a signal (the supervisor's
//! SIGKILL after `[supervisor] shutdown_timeout_ms`, or a crash) has no exit code; what it held
//! stays in its input ring.
//!
//! # Also here
//!
//! What stages share besides the frame: [`Backoff`] (reconnects, restarts), `linger` (feature
//! `net`: closing a door's socket so the client reads its answer), the ring helpers
//! ([`segment`], [`wait_strategy`], [`attach_consumer`], [`attach_producer`], [`patiently`]) that
//! the supervisor uses too, and [`unix_ms`].

#![deny(missing_docs)]

pub mod backoff;
mod context;
mod counters;
mod error;
mod frame;
#[cfg(feature = "net")]
pub mod linger;
mod logging;
mod ready;
mod rings;
mod shutdown;

pub use backoff::Backoff;
pub use context::Context;
pub use counters::StageCounters;
pub use error::Error;
pub use frame::{run, run_with, Ready, Stage, EXIT_CONFIG, EXIT_DONE, EXIT_FAILED};
pub use logging::init_logging;
pub use ready::READY_FD_ENV;
pub use rings::{attach_consumer, attach_producer, patiently, segment, wait_strategy, PATIENCE};
/// The wall clock every stage stamps with, defined once in the lowest crate.
pub use shm_ring::unix_ms;
pub use shutdown::Shutdown;
