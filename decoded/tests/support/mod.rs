//! Helpers shared by decoded's integration tests.

pub mod reference_proto;
