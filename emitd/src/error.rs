//! What stops emitd with an error (exit 1; the supervisor restarts it). Nothing queued is lost
//! by such an exit: uncommitted aggregates stay in the ring for the next emitd.

use std::fmt;

/// A fatal error.
#[derive(Debug)]
pub enum Error {
    /// The aggregates ring or the stats page is unusable (missing, foreign, corrupt).
    Ring(shm_ring::Error),
    /// The NATS client could not be created, or was closed under us.
    Nats(String),
    /// The Kafka producer could not be created, or failed for good.
    Kafka(String),
    /// The configuration cannot be used by this emitd (exit 2).
    Config(String),
    /// The process could not be set up (signal handlers, the async runtime).
    Setup(String),
    /// A bug: an internal invariant did not hold.
    Internal(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Ring(e) => write!(f, "{e}"),
            Error::Nats(e) => write!(f, "{e}"),
            Error::Setup(e) => write!(f, "{e}"),
            Error::Kafka(e) => write!(f, "{e}"),
            Error::Config(e) => write!(f, "config: {e}"),
            Error::Internal(e) => write!(f, "internal error: {e}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<telemetry_config::ConfigError> for Error {
    /// The key and the problem, without the `config: ` prefix [`Error::Config`] adds.
    fn from(e: telemetry_config::ConfigError) -> Self {
        if e.key.is_empty() {
            Error::Config(e.problem)
        } else {
            Error::Config(format!("{}: {}", e.key, e.problem))
        }
    }
}

impl From<shm_ring::Error> for Error {
    fn from(e: shm_ring::Error) -> Self {
        Error::Ring(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_error_says_config_once() {
        let e = telemetry_config::ConfigError {
            key: "emitd.kafka.key_file".into(),
            problem: "mode 0644 is readable by others".into(),
        };
        assert_eq!(
            Error::from(e).to_string(),
            "config: emitd.kafka.key_file: mode 0644 is readable by others"
        );
    }
}
