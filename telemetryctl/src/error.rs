//! `telemetryctl`'s errors and exit codes: every failure becomes one clear message and one of a
//! few distinct exit codes, so scripts and systemd units can tell "no pipeline" from "no
//! permission" from "incompatible page".
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success (`status`: every stage healthy) |
//! | 1 | `status` only: at least one stage is not running or its heartbeat is stale |
//! | 2 | bad arguments (usage) |
//! | 3 | no pipeline with this prefix is running (no stats page) |
//! | 4 | permission denied (for example `restart` without write access to the page) |
//! | 5 | the stats page is of another layout version, corrupt, or not initialised |
//! | 6 | the configuration file cannot be read or is invalid |
//! | 7 | another system error |
//! | 8 | the stats page or its directory is not the pipeline's: another owner, a symlink, or writable by group or others (refused, never read) |

use std::fmt;

use nix::errno::Errno;

/// Everything is fine.
pub const EXIT_OK: i32 = 0;
/// `status`: a stage is unhealthy.
pub const EXIT_UNHEALTHY: i32 = 1;
/// Bad arguments.
pub const EXIT_USAGE: i32 = 2;
/// No stats page: no pipeline with this prefix is running.
pub const EXIT_NOT_RUNNING: i32 = 3;
/// Permission denied.
pub const EXIT_PERMISSION: i32 = 4;
/// The stats page is of another layout version, corrupt, or not initialised.
pub const EXIT_INCOMPATIBLE: i32 = 5;
/// The configuration file is unreadable or invalid.
pub const EXIT_CONFIG: i32 = 6;
/// Any other system error.
pub const EXIT_OTHER: i32 = 7;
/// The stats page (or its directory) is not the pipeline's: refused unread.
pub const EXIT_UNTRUSTED: i32 = 8;

/// A failure with its message and exit code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CtlError {
    /// One of the `EXIT_*` codes.
    pub code: i32,
    /// What went wrong and, where possible, what to do about it.
    pub message: String,
}

impl CtlError {
    /// A usage error (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        CtlError {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }

    /// A configuration error (exit 6).
    pub fn config(message: impl Into<String>) -> Self {
        CtlError {
            code: EXIT_CONFIG,
            message: message.into(),
        }
    }
}

impl fmt::Display for CtlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CtlError {}

/// What we were doing with the stats page when an error happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Reading it (`stats`, `status`): `O_RDONLY`, `PROT_READ`.
    Read,
    /// Writing a restart request (`restart`): `O_RDWR`.
    Write,
}

/// Turns an error from opening or using the stats page of pipeline `prefix` into a message and
/// exit code.
pub fn page_error(err: &shm_ring::Error, prefix: &str, access: Access) -> CtlError {
    let page = crate::sample::page_path(prefix);
    let (code, message) = match err {
        shm_ring::Error::NotFound { .. } => (
            EXIT_NOT_RUNNING,
            format!("no pipeline with prefix {prefix} is running (no {page})"),
        ),
        shm_ring::Error::Os {
            errno: Errno::EACCES | Errno::EPERM,
            ..
        } => (
            EXIT_PERMISSION,
            match access {
                Access::Read => format!(
                    "permission denied reading {page}: run telemetryctl as the pipeline's user, or as a \
                     member of the page's group ({err})"
                ),
                Access::Write => format!(
                    "permission denied: restarting a stage needs write access to {page}, which this user \
                     lacks; run telemetryctl restart as the pipeline's user ({err})"
                ),
            },
        ),
        shm_ring::Error::ForeignOwner { owner_uid, our_uid, .. } => (
            EXIT_PERMISSION,
            format!(
                "permission denied: {page} belongs to uid {owner_uid} and this is uid {our_uid}; shm-ring only \
                 opens segments of its own uid, so run telemetryctl as the pipeline's user"
            ),
        ),
        shm_ring::Error::Untrusted { .. } => (
            EXIT_UNTRUSTED,
            format!(
                "{err}. telemetryctl reads only a page in a directory of the pipeline's user that nobody else \
                 can write: another local user may have planted this one"
            ),
        ),
        shm_ring::Error::Mismatch { found, expected, .. } => (
            EXIT_INCOMPATIBLE,
            format!(
                "{page} is a stats page of another layout version (it holds {found}; this telemetryctl reads \
                 {expected}): use the telemetryctl of the running pipeline's release"
            ),
        ),
        shm_ring::Error::Corrupt { reason, .. } => (
            EXIT_INCOMPATIBLE,
            format!("{page} is corrupt or not a stats page: {reason}"),
        ),
        shm_ring::Error::NotReady { .. } => (
            EXIT_INCOMPATIBLE,
            format!("{page} is not initialised: the supervisor is still creating it, or died while creating it"),
        ),
        shm_ring::Error::InvalidName { .. } => (EXIT_USAGE, format!("invalid prefix {prefix:?}: {err}")),
        shm_ring::Error::InvalidParameter { reason } => {
            (EXIT_INCOMPATIBLE, format!("{page} does not fit this request: {reason}"))
        }
        other => (EXIT_OTHER, format!("{page}: {other}")),
    };
    CtlError { code, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_has_its_own_code_and_message() {
        let e = page_error(
            &shm_ring::Error::NotFound {
                segment: "p.stats".into(),
            },
            "p",
            Access::Read,
        );
        assert_eq!(e.code, EXIT_NOT_RUNNING);
        assert_eq!(e.message, "no pipeline with prefix p is running (no /dev/shm/p/stats)");

        let denied = shm_ring::Error::Os {
            segment: "p.stats".into(),
            op: "shm_open",
            errno: Errno::EACCES,
        };
        let e = page_error(&denied, "p", Access::Write);
        assert_eq!(e.code, EXIT_PERMISSION);
        assert!(e.message.contains("needs write access"), "{e}");
        assert!(page_error(&denied, "p", Access::Read)
            .message
            .contains("permission denied reading"));

        let e = page_error(
            &shm_ring::Error::ForeignOwner {
                segment: "p.stats".into(),
                owner_uid: 0,
                our_uid: 1000,
            },
            "p",
            Access::Read,
        );
        assert_eq!(e.code, EXIT_PERMISSION);
        assert!(e.message.contains("belongs to uid 0"), "{e}");

        let e = page_error(
            &shm_ring::Error::Mismatch {
                segment: "p.stats".into(),
                found: "stats page of record  size 0 align 0 layout 9".into(),
                expected: "stats page of layout 1".into(),
            },
            "p",
            Access::Read,
        );
        assert_eq!(e.code, EXIT_INCOMPATIBLE);
        assert!(e.message.contains("another layout version"), "{e}");

        let e = page_error(
            &shm_ring::Error::Corrupt {
                segment: "p.stats".into(),
                reason: "bad magic 0x0".into(),
            },
            "p",
            Access::Read,
        );
        assert_eq!(e.code, EXIT_INCOMPATIBLE);
        assert!(e.message.contains("corrupt or not a stats page: bad magic"), "{e}");

        let e = page_error(
            &shm_ring::Error::Os {
                segment: "p.stats".into(),
                op: "mmap",
                errno: Errno::ENOMEM,
            },
            "p",
            Access::Read,
        );
        assert_eq!(e.code, EXIT_OTHER);

        let e = page_error(
            &shm_ring::Error::Untrusted {
                path: "/dev/shm/p".into(),
                owner_uid: Some(1001),
                mode: Some(0o777),
                reason: "is writable by its group or by others".into(),
            },
            "p",
            Access::Read,
        );
        assert_eq!(e.code, EXIT_UNTRUSTED);
        assert!(
            e.message
                .contains("refusing /dev/shm/p: it is writable by its group or by others (owner uid 1001, mode 0777)"),
            "{e}"
        );
        assert!(e.message.contains("planted"), "{e}");
    }
}
