//! Why a stage stopped, as the frame sees it: a configuration it cannot use (exit 2) or anything
//! else (exit 1). The stage's own error types stay its own; `?` turns any of them into
//! [`Error::Failed`], and a stage says [`Error::config`] where the configuration is at fault.

use std::fmt;
use std::process::ExitCode;

/// A stage's fatal error, classified by exit code (see the crate docs' table).
///
/// Like `anyhow::Error` it does not implement [`std::error::Error`] itself: that is what lets
/// every error type convert into it with `?`.
#[derive(Debug)]
pub enum Error {
    /// The configuration cannot be used by this stage (exit 2). The message is complete
    /// (`config: <key> = <value>: <problem>`). A stage checks its configuration before it
    /// attaches anything, so that such an exit has touched no segment.
    Config(String),
    /// Anything else: a ring, the stats page, a listener, a client (exit 1). The supervisor
    /// restarts the stage; nothing queued in a ring is lost by the exit.
    Failed(Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// A configuration error (exit 2), from any error that describes it.
    pub fn config(e: impl fmt::Display) -> Error {
        Error::Config(e.to_string())
    }

    /// A runtime error (exit 1) from an error that is already boxed (or a message).
    pub fn failed(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
        Error::Failed(e.into())
    }

    /// The process's exit code for this error: 2 for [`Error::Config`], 1 otherwise.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Config(_) => ExitCode::from(crate::EXIT_CONFIG),
            Error::Failed(_) => ExitCode::from(crate::EXIT_FAILED),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(e) => f.write_str(e),
            Error::Failed(e) => e.fmt(f),
        }
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for Error {
    fn from(e: E) -> Self {
        Error::Failed(Box::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_errors_exit_2_and_the_rest_1() {
        let config = Error::config("config: decoded.json_topics = \"a/#/b\": must be an MQTT topic filter");
        assert_eq!(config.exit_code(), ExitCode::from(2));
        assert_eq!(
            config.to_string(),
            "config: decoded.json_topics = \"a/#/b\": must be an MQTT topic filter"
        );
        let io: Error = std::io::Error::other("no such ring").into();
        assert_eq!(io.exit_code(), ExitCode::from(1));
        assert_eq!(io.to_string(), "no such ring");
        assert_eq!(Error::failed("a source ended").exit_code(), ExitCode::from(1));
    }
}
