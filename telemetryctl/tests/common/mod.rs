//! Helpers shared by the supervisor's test binaries.

pub mod run;
