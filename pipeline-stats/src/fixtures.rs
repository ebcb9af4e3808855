//! Stage snapshots built by hand, for the tests of whatever renders or judges a snapshot (this
//! crate's, `telemetryctl`'s and the supervisor's Prometheus text): one definition, so that they
//! all read the same ingestd.

use shm_ring::stats::{StageSnapshot, StageState, CONTROL_WORDS};

/// ingestd as the json and prometheus tests see it: 10 received, 8 forwarded, 2 dropped, one
/// counter outside the balance (a real one: `records::names::session::CONNECTS`).
pub fn ingestd_sample() -> StageSnapshot {
    stage(
        "ingestd",
        &[
            ("received", 10),
            ("forwarded", 8),
            ("dropped.ring_full", 2),
            (records::names::session::CONNECTS, 1),
        ],
    )
}

/// A stage snapshot for tests.
pub fn stage(name: &str, counters: &[(&str, u64)]) -> StageSnapshot {
    StageSnapshot {
        name: name.into(),
        state: Some(StageState::Running),
        pid: 100,
        heartbeat_age_ms: Some(5),
        started_unix_ms: 1_700_000_000_000,
        control: [0; CONTROL_WORDS],
        counters: counters.iter().map(|(n, v)| ((*n).to_owned(), *v)).collect(),
        consistent: true,
    }
}
