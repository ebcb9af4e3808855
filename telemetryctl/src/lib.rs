//! `telemetryctl`: the operator's read-only view of a running pipeline (the stats page and the
//! rings in `/dev/shm/<prefix>/`), its health check, and restart requests. See
//! `docs/telemetryctl.md` for the user's guide.
//!
//! A crate of its own, beside the supervisor's: both read what the stats page means from
//! `pipeline-stats` (the supervisor's control words, counter kinds and stage order), and neither
//! depends on the other.
//!
//! - [`args`]: the command line;
//! - [`commands`]: running `stats`, `status` and `restart`;
//! - [`sample`]: reading the stats page and the rings, read-only;
//! - [`trust`]: whose stats page is believed (the pipeline's user, root, ourselves);
//! - [`balance`]: conservation, `BALANCE: ok` or `off by N at <stage>`;
//! - [`rates`]: per-second rates between two samples;
//! - [`health`]: what `status` calls healthy;
//! - [`table`], [`json`]: the two renderings of `stats` (the JSON schema is in [`json`]);
//! - [`format`](mod@format): durations, exit statuses, timestamps, columns;
//! - [`error`]: messages and exit codes.

#![deny(missing_docs)]

pub mod args;
pub mod balance;
pub mod commands;
pub mod error;
pub mod format;
pub mod health;
pub mod json;
pub mod rates;
pub mod sample;
pub mod table;
pub mod trust;
