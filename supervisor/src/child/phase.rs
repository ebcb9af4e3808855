//! Where a supervised stage is in its life, as the supervisor sees it: the one state that the
//! loop's deadlines ([`super::Supervised::deadline`]) and the liveness checks read.

use std::time::Instant;

/// Where a stage is in its life, as the supervisor sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Not started yet (waiting for the stages before it).
    Pending,
    /// Spawned at `since`, not yet reporting ready.
    Starting {
        /// When it was spawned.
        since: Instant,
    },
    /// Reporting ready since `since`.
    Running {
        /// When the supervisor saw it ready.
        since: Instant,
    },
    /// Exited; restart due at the given time.
    RestartAt(Instant),
    /// Asked to stop (an operator's restart request); killed at the deadline.
    Stopping {
        /// When it gets SIGKILL.
        deadline: Instant,
        /// Whether to start it again once it has exited.
        restart: bool,
    },
    /// Killed as hung; waiting for its exit.
    Killed,
}
