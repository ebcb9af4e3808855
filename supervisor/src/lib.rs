//! The supervisor (`telemetry-supervisor`). `telemetryctl` is a crate of its own, and neither
//! depends on the other: what both need to know about the stats page (the supervisor's control
//! words, the kinds of counters) is in the `pipeline-stats` crate below them.
//!
//! The supervisor follows Erlang/OTP's vocabulary: each stage has a child spec, the strategy is
//! one_for_one (a stage that exits is restarted alone, the others keep their pids), and more
//! than `restart_intensity` restarts within `restart_period_s` escalate: the supervisor stops
//! everything in order and exits non-zero, so that systemd's `Restart=` takes over.
//!
//! - `child_spec`: the four stages, their binaries, rings and start order;
//! - `child`: one supervised stage: its process, phase, deadlines, backoff and stall tracking;
//! - `segments`: creating or re-adopting the rings and the stats page;
//! - `spawn`: starting a stage so that it dies with the supervisor and can wake it when ready;
//! - `events`: what the loop sleeps on (poll over pidfds, the readiness and shutdown pipes);
//! - `intensity`: restart intensity and period;
//! - `supervisor`: the event loop (exits, readiness, restarts with backoff, deadlines), which
//!   owns the pieces below and decides; none of them reaches into another;
//! - `page`: the supervisor's counters and the stages' control words in the stats page;
//! - `liveness`: readiness, hangs (heartbeat, start timeout, no progress), the periodic look;
//! - `stop`: the ordered stop;
//! - `poison`: taking out a record a stage keeps dying on, into a dead-letter file;
//! - `service`: what systemd is told and when (ready, status, watchdog, stopping);
//! - `notify`: systemd's notify protocol;
//! - `metrics`: the Prometheus endpoint and its text.

#![deny(missing_docs)]

pub mod child;
pub mod child_spec;
pub mod events;
pub mod intensity;
pub mod liveness;
pub mod metrics;
pub mod notify;
pub mod page;
pub mod poison;
pub mod segments;
pub mod service;
pub mod spawn;
pub mod stop;
pub mod supervisor;
