//! Helpers shared by decoded's integration tests. Each test binary uses a different part.

#[allow(dead_code)]
pub mod reference_proto;
