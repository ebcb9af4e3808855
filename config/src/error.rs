//! Configuration errors, and the checks that several sections share.

use std::fmt;

/// A configuration error: which key, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// `section.key`, or empty when the file itself is the problem.
    pub key: String,
    /// What is wrong.
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "config: {}", self.problem)
        } else {
            write!(f, "config: {}: {}", self.key, self.problem)
        }
    }
}

impl std::error::Error for ConfigError {}

pub(crate) fn bad(key: &str, value: impl fmt::Display, problem: &str) -> ConfigError {
    ConfigError {
        key: format!("{key} = {value}"),
        problem: problem.to_owned(),
    }
}

pub(crate) fn check_ring(key: &str, slots: u64) -> Result<(), ConfigError> {
    if !(2..=1 << 24).contains(&slots) || !slots.is_power_of_two() {
        return Err(bad(key, slots, "must be a power of two from 2 to 16777216"));
    }
    Ok(())
}

pub(crate) fn check_name(key: &str, value: &str) -> Result<(), ConfigError> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && !value.starts_with('.')
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !ok {
        return Err(bad(
            key,
            format!("{value:?}"),
            "must be 1 to 64 of A-Z a-z 0-9 _ - . and not start with a dot",
        ));
    }
    Ok(())
}

pub(crate) fn check_url(key: &str, value: &str, schemes: &[&str]) -> Result<(), ConfigError> {
    let Some((scheme, rest)) = value.split_once("://") else {
        return Err(bad(
            key,
            format!("{:?}", crate::wire::redact_url(value)),
            &format!("must be a URL with scheme {}", schemes.join(" or ")),
        ));
    };
    if !schemes.contains(&scheme) {
        return Err(bad(
            key,
            format!("{:?}", crate::wire::redact_url(value)),
            &format!("scheme must be {}", schemes.join(" or ")),
        ));
    }
    let Some((host, port)) = rest.trim_end_matches('/').rsplit_once(':') else {
        return Err(bad(
            key,
            format!("{:?}", crate::wire::redact_url(value)),
            "must name a host and a port",
        ));
    };
    if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(bad(
            key,
            format!("{:?}", crate::wire::redact_url(value)),
            "must name a host and a port from 1 to 65535",
        ));
    }
    Ok(())
}
