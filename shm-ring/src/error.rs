//! The one error type of this crate. Every variant names the segment (or directory) it is about
//! by its path, so an operator reading a log line knows which file in `/dev/shm` to look at.

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
        /// What was being done, for example `"open"`.
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
    /// The segment, or its prefix directory, belongs to another user; it is never written to,
    /// adopted or replaced. Another user may have created the name first (a squat).
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
    /// What was found at a segment's or prefix directory's path cannot be trusted: a symlink, not
    /// a directory or regular file, writable by group or others, or (for a reader) a segment
    /// whose owner is not its directory's. It is never opened, adopted or replaced.
    Untrusted {
        /// The path.
        path: String,
        /// Its owner, when it could be read.
        owner_uid: Option<u32>,
        /// Its permission bits, when they could be read.
        mode: Option<u32>,
        /// What is wrong with it.
        reason: String,
    },
    /// The pages of a new segment could not be reserved: `/dev/shm` (or the memory limit) has
    /// no room for it. The segment is removed again.
    NoSpace {
        /// The segment's name.
        segment: String,
        /// Its size.
        bytes: u64,
        /// What `posix_fallocate` said (`ENOSPC`, or `ENOMEM` under a memory limit).
        errno: nix::errno::Errno,
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
            Error::Os { segment, op, errno } => write!(f, "{op} on {segment} (shared memory) failed: {errno}"),
            Error::NotFound { segment } => write!(f, "shared memory segment {segment} does not exist"),
            Error::AlreadyExists { segment } => write!(f, "shared memory segment {segment} already exists"),
            Error::ForeignOwner {
                segment,
                owner_uid,
                our_uid,
            } => write!(
                f,
                "{segment} belongs to uid {owner_uid}, not to this process's uid {our_uid}; refusing to use it \
                 (if another user created it first, remove it as root or as its owner, or use another prefix)"
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
            Error::Untrusted {
                path,
                owner_uid,
                mode,
                reason,
            } => {
                write!(f, "refusing {path}: it {reason}")?;
                match (owner_uid, mode) {
                    (Some(uid), Some(mode)) => write!(f, " (owner uid {uid}, mode {mode:04o})")?,
                    (Some(uid), None) => write!(f, " (owner uid {uid})")?,
                    _ => {}
                }
                write!(
                    f,
                    "; if another user made it, remove it as root or as its owner, or use another prefix"
                )
            }
            Error::NoSpace { segment, bytes, errno } => write!(
                f,
                "no room for shared memory segment {segment} ({bytes} bytes, {:.1} MiB): {errno}; free space in \
                 /dev/shm (df /dev/shm) or make the segment smaller",
                *bytes as f64 / (1024.0 * 1024.0)
            ),
        }
    }
}

impl std::error::Error for Error {}

/// Shorthand for this crate's results.
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;
