//! Segments: the files in a pipeline's directory `/dev/shm/<prefix>/` that rings, tables and
//! the stats page live in. Their names ([`SegmentName`]); what creating one does when the name is
//! taken ([`IfExists`], [`Created`]) and how its pages are allocated ([`Pages`]); the directory
//! itself ([`prepare_dir`]); and housekeeping ([`list`], [`remove`], [`remove_all`],
//! [`remove_segments`], [`PrefixGuard`]).
//!
//! Inside the crate every kind of segment is opened and mapped by one type, `Mapping`
//! (`mapping.rs`), after the trust checks on the directory and the file (`dir.rs`; see "Trust"
//! in the crate docs). Nothing here knows what is inside a segment.

mod dir;
mod mapping;

use std::path::PathBuf;

use nix::sys::stat::Mode;

use crate::error::{Error, Result};

pub use crate::layout::LAYOUT_VERSION;
pub use dir::{prepare_dir, SHM_DIR};
pub(crate) use mapping::Mapping;

/// Longest prefix or name we accept; the whole object name must stay well below `NAME_MAX` (255).
const MAX_PART_LEN: usize = 100;

/// The name of one segment: a prefix shared by all segments of one pipeline (the name of its
/// directory in `/dev/shm`), and the segment's own name (a file in that directory). It displays
/// as the file's path, which every error names.
///
/// Both parts may only use `[A-Za-z0-9_-]` (the prefix may also contain `.`, but not start with
/// one), so a name can never reach outside its directory or be confused with another pipeline's.
///
/// ```
/// let name = shm_ring::SegmentName::new("plant-a", "raw")?;
/// assert_eq!(name.to_string(), "/dev/shm/plant-a/raw");
/// assert!(shm_ring::SegmentName::new("plant-a", "../etc").is_err());
/// # Ok::<(), shm_ring::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SegmentName {
    prefix: String,
    name: String,
}

impl SegmentName {
    /// Checks both parts and joins them.
    pub fn new(prefix: &str, name: &str) -> Result<Self> {
        check_part(prefix, true)?;
        check_part(name, false)?;
        Ok(SegmentName {
            prefix: prefix.to_owned(),
            name: name.to_owned(),
        })
    }

    /// The pipeline prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The segment's own name, without the prefix.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The segment's file: `/dev/shm/<prefix>/<name>`.
    pub fn path(&self) -> PathBuf {
        dir::dir_path(&self.prefix).join(&self.name)
    }
}

impl std::fmt::Display for SegmentName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", dir::SHM_DIR, self.prefix, self.name)
    }
}

pub(crate) fn check_part(part: &str, dots_allowed: bool) -> Result<()> {
    let reject = |reason| {
        Err(Error::InvalidName {
            name: part.to_owned(),
            reason,
        })
    };
    if part.is_empty() {
        return reject("empty");
    }
    if part.len() > MAX_PART_LEN {
        return reject("longer than 100 bytes");
    }
    if part.starts_with('.') {
        return reject("starts with a dot");
    }
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-' || (dots_allowed && c == '.');
    if !part.chars().all(ok) {
        return reject(if dots_allowed {
            "only A-Z a-z 0-9 _ - . are allowed"
        } else {
            "only A-Z a-z 0-9 _ - are allowed"
        });
    }
    Ok(())
}

/// What creating a segment ([`ring::create`](crate::ring::create),
/// [`table::create_table`](crate::table::create_table)) does when one of that name is already
/// there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IfExists {
    /// Return [`Error::AlreadyExists`].
    Fail,
    /// Keep it, with everything queued in it, if its header is valid for this record type and
    /// capacity (a table: row count); otherwise replace it. This is what a restarted supervisor
    /// wants.
    Adopt,
    /// Replace it with an empty one.
    Replace,
}

/// What creating a segment found and did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Created {
    /// A new, empty segment.
    New,
    /// An existing segment was kept; `depth` records were queued in it (0 for a table).
    Adopted {
        /// Records queued at the time of adoption.
        depth: u64,
    },
    /// An existing segment was replaced by a new, empty one; `reason` says why.
    Replaced {
        /// Why the old segment could not be kept.
        reason: String,
    },
}

/// File mode of a new segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// `0600`: only the owner. The default for rings.
    OwnerOnly,
    /// `0640`: the owner's group may read. For the stats page, so that an unprivileged
    /// `telemetryctl` in that group can observe.
    GroupRead,
}

impl Access {
    fn mode(self) -> Mode {
        match self {
            Access::OwnerOnly => Mode::from_bits_truncate(0o600),
            Access::GroupRead => Mode::from_bits_truncate(0o640),
        }
    }
}

/// How a new segment's pages are allocated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pages {
    /// Every page at creation (`posix_fallocate`): a full `/dev/shm` is an error then, never a
    /// SIGBUS later. What rings, the stats page and tables get unless they ask otherwise.
    Reserved,
    /// On first touch (a sparse file, `ftruncate`): for a table sized for the worst case and
    /// used by a small part of it (aggd's interned key text), where reserving would pay memory
    /// for pages that are never written. A page that cannot be allocated when first written
    /// is a SIGBUS in the writer: only for tables whose writer survives a restart (a poison
    /// record is skipped, the table adopted).
    OnFirstTouch,
}

/// Removes one segment. Processes that have it mapped keep their mapping.
/// Returns `false` if it did not exist.
///
/// ```
/// let name = shm_ring::SegmentName::new("doc-remove", "nothing-here")?;
/// assert_eq!(shm_ring::segment::remove(&name)?, false);
/// # Ok::<(), shm_ring::Error>(())
/// ```
pub fn remove(name: &SegmentName) -> Result<bool> {
    dir::remove_entry(&name.prefix, &name.name)
}

/// Removes every segment of a prefix, and its directory, when dropped, including during a
/// panic. Tests use it so that a failing test leaves nothing in `/dev/shm`.
///
/// ```
/// # use shm_ring::ring::{create, RingOptions};
/// # use shm_ring::segment::{list, PrefixGuard};
/// # use shm_ring::{Record, SegmentName};
/// # #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)] #[repr(C)] struct Sample { seq: u64 }
/// # impl Record for Sample { const TYPE_NAME: &'static str = "Sample/1"; }
/// let prefix = format!("doc-guard-{}", std::process::id());
/// {
///     let _guard = PrefixGuard::new(&prefix);
///     create::<Sample>(&SegmentName::new(&prefix, "a")?, &RingOptions::new(8))?;
///     assert_eq!(list(&prefix)?.len(), 1);
/// }
/// assert!(list(&prefix)?.is_empty());
/// assert!(!std::path::Path::new("/dev/shm").join(&prefix).exists());
/// # Ok::<(), shm_ring::Error>(())
/// ```
#[derive(Debug)]
pub struct PrefixGuard {
    prefix: String,
}

impl PrefixGuard {
    /// Guards `prefix`. Nothing is checked or removed until drop.
    pub fn new(prefix: &str) -> Self {
        PrefixGuard {
            prefix: prefix.to_owned(),
        }
    }

    /// The guarded prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

impl Drop for PrefixGuard {
    fn drop(&mut self) {
        let _ = remove_all(&self.prefix);
    }
}

/// Lists the segments in `/dev/shm/<prefix>/`.
///
/// ```
/// assert!(shm_ring::segment::list("doc-list-nothing")?.is_empty());
/// # Ok::<(), shm_ring::Error>(())
/// ```
pub fn list(prefix: &str) -> Result<Vec<SegmentName>> {
    check_part(prefix, true)?;
    dir::segment_names(prefix)?
        .into_iter()
        .map(|n| SegmentName::new(prefix, &n))
        .collect()
}

/// Removes every segment of one prefix and its directory, for example when a test ends or a
/// package is purged. Nothing is followed: a symlink in the directory's place is removed, not
/// what it points to. Returns how many segments were removed.
///
/// ```
/// assert_eq!(shm_ring::segment::remove_all("doc-remove-all-nothing")?, 0);
/// # Ok::<(), shm_ring::Error>(())
/// ```
pub fn remove_all(prefix: &str) -> Result<usize> {
    dir::clear(prefix, true)
}

/// Removes every segment of one prefix but keeps its directory (a clean stop of a pipeline
/// whose directory was there before it started). Returns how many segments were removed.
///
/// ```
/// # use shm_ring::ring::{create, RingOptions};
/// # use shm_ring::segment::{remove_segments, PrefixGuard, SHM_DIR};
/// # use shm_ring::{Record, SegmentName};
/// # #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)] #[repr(C)] struct Sample { seq: u64 }
/// # impl Record for Sample { const TYPE_NAME: &'static str = "Sample/1"; }
/// let prefix = format!("doc-remove-segments-{}", std::process::id());
/// let _guard = PrefixGuard::new(&prefix);
/// create::<Sample>(&SegmentName::new(&prefix, "a")?, &RingOptions::new(8))?;
/// assert_eq!(remove_segments(&prefix)?, 1);
/// assert!(std::path::Path::new(SHM_DIR).join(&prefix).is_dir(), "the directory stays");
/// # Ok::<(), shm_ring::Error>(())
/// ```
pub fn remove_segments(prefix: &str) -> Result<usize> {
    dir::clear(prefix, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(SegmentName::new("a.b", "c").is_ok());
        assert!(SegmentName::new("a", "c.d").is_err());
        assert!(SegmentName::new("", "c").is_err());
        assert!(SegmentName::new("a", "").is_err());
        assert!(SegmentName::new("a/b", "c").is_err());
        assert!(SegmentName::new(".hidden", "c").is_err());
        assert!(SegmentName::new("a", &"x".repeat(101)).is_err());
        assert!(SegmentName::new("a", "ü").is_err());
    }
}
