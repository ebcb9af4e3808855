//! What `telemetryctl` shows and does: the operator's read-only view of a running pipeline (the
//! stats page and the rings in `/dev/shm/<prefix>/`), its health check, and restart requests. See
//! `docs/telemetryctl.md` for the user's guide.
//!
//! - [`args`]: the command line;
//! - [`commands`]: running `stats`, `status` and `restart`;
//! - [`sample`]: reading the stats page and the rings, read-only;
//! - [`trust`]: whose stats page is believed (the pipeline's user, root, ourselves);
//! - [`counters`]: grouping stages and counters (received, forwarded, `dropped.*`, `error.*`);
//! - [`balance`]: conservation, `BALANCE: ok` or `off by N at <stage>`;
//! - [`rates`]: per-second rates between two samples;
//! - [`health`]: what `status` calls healthy;
//! - [`table`], [`json`]: the two renderings of `stats` (the JSON schema is in [`json`]);
//! - [`prometheus`]: the same data as Prometheus text, for the supervisor's metrics endpoint;
//! - [`format`](mod@format): durations, exit statuses, timestamps, columns;
//! - [`error`]: messages and exit codes.

pub mod args;
pub mod balance;
pub mod commands;
pub mod counters;
pub mod error;
pub mod format;
pub mod health;
pub mod json;
pub mod prometheus;
pub mod rates;
pub mod sample;
pub mod table;
pub mod trust;

pub use prometheus::render_prometheus;
