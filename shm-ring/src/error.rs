//! The one error type of this crate. Every variant names the segment it is about, so an operator
//! reading a log line knows which file in `/dev/shm` to look at.

use std::fmt;

/// Everything that can go wrong when creating, opening or using a segment.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A prefix or segment name contains characters outside `[A-Za-z0-9_.-]`, or is empty or too long.
    InvalidName {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A parameter passed to create a segment is out of range (for example a capacity that is not a power of two).
    InvalidParameter {
        /// What is wrong.
        reason: String,
    },
    /// A system call failed.
    Os {
        /// The segment's name.
        segment: String,
        /// What was being done, for example `"shm_open"`.
        op: &'static str,
        /// The error number.
        errno: nix::errno::Errno,
    },
    /// No segment by that name exists.
    NotFound {
        /// The segment's name.
        segment: String,
    },
    /// A segment by that name already exists and the caller asked not to touch it.
    AlreadyExists {
        /// The segment's name.
        segment: String,
    },
    /// The segment belongs to another user; it is never opened or replaced.
    ForeignOwner {
        /// The segment's name.
        segment: String,
        /// The segment's owner.
        owner_uid: u32,
        /// This process's effective uid.
        our_uid: u32,
    },
    /// The segment exists but its creator has not finished writing the header (or died before it did).
    NotReady {
        /// The segment's name.
        segment: String,
    },
    /// The segment's header is not one this crate wrote, or it is inconsistent or truncated.
    Corrupt {
        /// The segment's name.
        segment: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The segment is valid, but was created for another record type, size, alignment or layout version.
    Mismatch {
        /// The segment's name.
        segment: String,
        /// What the segment says, for example `record RawRecord/1 size 320 align 8 layout 1`.
        found: String,
        /// What the caller asked for, in the same form.
        expected: String,
    },
    /// Another live process holds the role (producer, consumer or stage writer).
    RoleHeld {
        /// The segment's name.
        segment: String,
        /// The role, for example `"producer"`.
        role: &'static str,
        /// The pid that last took the role, as recorded in the segment (informational).
        pid: u32,
    },
    /// The segment was opened read-only and cannot take this role.
    ReadOnly {
        /// The segment's name.
        segment: String,
    },
}

impl Error {
    pub(crate) fn os(segment: &str, op: &'static str, errno: nix::errno::Errno) -> Self {
        Error::Os {
            segment: segment.to_owned(),
            op,
            errno,
        }
    }

    pub(crate) fn corrupt(segment: &str, reason: impl Into<String>) -> Self {
        Error::Corrupt {
            segment: segment.to_owned(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidName { name, reason } => write!(f, "invalid segment name {name:?}: {reason}"),
            Error::InvalidParameter { reason } => write!(f, "invalid parameter: {reason}"),
            Error::Os { segment, op, errno } => write!(f, "{op} on shared memory segment {segment} failed: {errno}"),
            Error::NotFound { segment } => write!(f, "shared memory segment {segment} does not exist"),
            Error::AlreadyExists { segment } => write!(f, "shared memory segment {segment} already exists"),
            Error::ForeignOwner {
                segment,
                owner_uid,
                our_uid,
            } => write!(
                f,
                "shared memory segment {segment} belongs to uid {owner_uid}, not to this process's uid {our_uid}; refusing to use it"
            ),
            Error::NotReady { segment } => write!(
                f,
                "shared memory segment {segment} is not initialised (its creator has not finished, or died while creating it)"
            ),
            Error::Corrupt { segment, reason } => write!(f, "shared memory segment {segment} is corrupt or foreign: {reason}"),
            Error::Mismatch {
                segment,
                found,
                expected,
            } => write!(f, "shared memory segment {segment} holds {found}, but this process expects {expected}"),
            Error::RoleHeld { segment, role, pid } => write!(
                f,
                "the {role} role of shared memory segment {segment} is held by a live process (pid {pid} took it last)"
            ),
            Error::ReadOnly { segment } => write!(f, "shared memory segment {segment} is open read-only"),
        }
    }
}

impl std::error::Error for Error {}

/// Shorthand for this crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;
