//! The directory that holds one pipeline's segments, `/dev/shm/<prefix>/`, and the checks that
//! decide whether what was found there may be trusted.
//!
//! `/dev/shm` is writable by every local user, so a fixed name directly in it can be taken first
//! by anyone (a squat): the pipeline could then neither create nor safely adopt it. Inside a
//! directory that only the pipeline's user may write, nobody else can create a name. The
//! directory is opened once with `O_DIRECTORY|O_NOFOLLOW` (a symlink in its place is refused),
//! checked on its descriptor (owner, mode), and every segment is then opened relative to that
//! descriptor (`openat`), so no path is resolved twice.
//!
//! The rules:
//! - to create or write, the directory must be owned by this process's euid and not writable
//!   by group or others; the segment must be owned by this euid and not writable by group or
//!   others;
//! - to read (an observer such as `telemetryctl`), the directory may belong to another user, but
//!   the segment must have the same owner as its directory and neither may be writable by group
//!   or others. Who that owner may be is the caller's decision ([`crate::stats::StatsReader::owner_uid`]).

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{fchmod, fstat, fstatat, mkdirat, FileStat, Mode};
use nix::unistd::{unlinkat, UnlinkatFlags};

use crate::error::{Error, Result};

/// Where POSIX shared memory lives on Linux (a tmpfs). Each pipeline has a directory in it.
pub const SHM_DIR: &str = "/dev/shm";

/// Mode of a prefix directory the pipeline creates itself: the owner writes, its group may
/// enter (to read the stats page), others nothing.
const DIR_MODE: u32 = 0o750;

/// Mode bits that would let someone other than the owner create, replace or change a file.
const UNSAFE_WRITE_BITS: u32 = 0o022;

/// What an open of a prefix directory is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// Create it if it is missing; it must be ours. For creating segments.
    Create,
    /// It must be ours. For read-write opens of segments.
    Write,
    /// It may be another user's, but not writable by group or others. For read-only observers.
    Read,
}

/// An open, checked prefix directory.
pub(crate) struct PrefixDir {
    fd: OwnedFd,
    owner: u32,
}

impl PrefixDir {
    /// Opens `/dev/shm/<prefix>` for `purpose` and checks it. `Ok(None)`: it does not exist
    /// (never for [`Purpose::Create`], which creates it).
    pub(crate) fn open(prefix: &str, purpose: Purpose) -> Result<Option<PrefixDir>> {
        Ok(open_dir(prefix, purpose)?.map(|(dir, _)| dir))
    }

    /// The directory's descriptor, for `openat`.
    pub(crate) fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// The directory's owner.
    pub(crate) fn owner(&self) -> u32 {
        self.owner
    }
}

/// The path of a prefix directory, for messages and for listing.
pub(crate) fn dir_path(prefix: &str) -> PathBuf {
    PathBuf::from(SHM_DIR).join(prefix)
}

fn root() -> Result<OwnedFd> {
    nix::fcntl::open(
        SHM_DIR,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::os(SHM_DIR, "open", e))
}

/// Opens (and for `Create`, makes) the directory; the bool says whether this call created it.
fn open_dir(prefix: &str, purpose: Purpose) -> Result<Option<(PrefixDir, bool)>> {
    let path = dir_path(prefix).display().to_string();
    let root = root()?;
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut created = false;
    let fd = loop {
        match openat(root.as_fd(), prefix, flags, Mode::empty()) {
            Ok(fd) => break fd,
            Err(Errno::ENOENT) if purpose == Purpose::Create && !created => {
                match mkdirat(root.as_fd(), prefix, Mode::from_bits_truncate(DIR_MODE)) {
                    Ok(()) => created = true,
                    // Another process made it between our two calls: check what it made.
                    Err(Errno::EEXIST) => {}
                    Err(e) => return Err(Error::os(&path, "mkdir", e)),
                }
            }
            Err(Errno::ENOENT) => return Ok(None),
            // O_NOFOLLOW on a symlink gives ELOOP; O_DIRECTORY on anything else ENOTDIR.
            Err(Errno::ELOOP | Errno::ENOTDIR) => {
                let st = fstatat(root.as_fd(), prefix, AtFlags::AT_SYMLINK_NOFOLLOW).ok();
                return Err(untrusted(&path, st.as_ref(), "is a symbolic link or not a directory"));
            }
            Err(e) => return Err(Error::os(&path, "open", e)),
        }
    };
    if created {
        // The umask may have narrowed the mode (or a wide one widened nothing): set it exactly.
        fchmod(fd.as_fd(), Mode::from_bits_truncate(DIR_MODE)).map_err(|e| Error::os(&path, "fchmod", e))?;
    }
    let st = fstat(fd.as_fd()).map_err(|e| Error::os(&path, "fstat", e))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
        return Err(untrusted(&path, Some(&st), "is not a directory"));
    }
    let our_uid = nix::unistd::geteuid().as_raw();
    if purpose != Purpose::Read && st.st_uid != our_uid {
        return Err(Error::ForeignOwner {
            segment: path,
            owner_uid: st.st_uid,
            our_uid,
        });
    }
    if st.st_mode & UNSAFE_WRITE_BITS != 0 {
        return Err(untrusted(&path, Some(&st), "is writable by its group or by others"));
    }
    Ok(Some((PrefixDir { fd, owner: st.st_uid }, created)))
}

/// Checks a segment opened in a checked directory: a regular file, owned by our euid (to write)
/// or by the directory's owner (to read), and not writable by group or others.
pub(crate) fn check_segment(dir: &PrefixDir, st: &FileStat, segment: &str, writable: bool) -> Result<()> {
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(untrusted(segment, Some(st), "is not a regular file"));
    }
    let our_uid = nix::unistd::geteuid().as_raw();
    if writable && st.st_uid != our_uid {
        return Err(Error::ForeignOwner {
            segment: segment.to_owned(),
            owner_uid: st.st_uid,
            our_uid,
        });
    }
    if st.st_uid != dir.owner() {
        return Err(untrusted(
            segment,
            Some(st),
            &format!("is not owned by its directory's owner (uid {})", dir.owner()),
        ));
    }
    if st.st_mode & UNSAFE_WRITE_BITS != 0 {
        return Err(untrusted(segment, Some(st), "is writable by its group or by others"));
    }
    Ok(())
}

pub(crate) fn untrusted(path: &str, st: Option<&FileStat>, reason: &str) -> Error {
    Error::Untrusted {
        path: path.to_owned(),
        owner_uid: st.map(|s| s.st_uid),
        mode: st.map(|s| s.st_mode & 0o7777),
        reason: reason.to_owned(),
    }
}

/// Makes sure `/dev/shm/<prefix>/` exists and is this process's (mode 0750 if it makes it).
/// Returns whether it was created now, so that a clean stop can leave the host as it found it:
/// a directory made at boot (tmpfiles.d) is kept, so that nobody can take its name while the
/// pipeline is stopped.
///
/// ```
/// let prefix = format!("doc-dir-{}", std::process::id());
/// assert!(shm_ring::segment::prepare_dir(&prefix)?, "made now");
/// assert!(!shm_ring::segment::prepare_dir(&prefix)?, "found");
/// shm_ring::segment::remove_all(&prefix)?;
/// # Ok::<(), shm_ring::Error>(())
/// ```
pub fn prepare_dir(prefix: &str) -> Result<bool> {
    crate::segment::check_part(prefix, true)?;
    let (_, created) = open_dir(prefix, Purpose::Create)?.expect("Create makes the directory");
    Ok(created)
}

/// The directory unchecked but opened without following a symlink, for listing and removal.
enum Found {
    Missing,
    /// A symlink or another non-directory in the directory's place.
    NotADirectory,
    Dir(OwnedFd),
}

fn find(root: &OwnedFd, prefix: &str) -> Result<Found> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    match openat(root.as_fd(), prefix, flags, Mode::empty()) {
        Ok(fd) => Ok(Found::Dir(fd)),
        Err(Errno::ENOENT) => Ok(Found::Missing),
        Err(Errno::ELOOP | Errno::ENOTDIR) => Ok(Found::NotADirectory),
        Err(e) => Err(Error::os(&dir_path(prefix).display().to_string(), "open", e)),
    }
}

/// The names of the entries of a directory opened as `fd`, read through `/proc/self/fd` so that
/// they are the entries of exactly that directory (by its path where `/proc` is not mounted:
/// only names are read there; whatever is removed is removed through `fd`).
fn entries(fd: &OwnedFd, prefix: &str) -> Result<Vec<(String, bool)>> {
    use std::os::fd::AsRawFd;
    let path = dir_path(prefix).display().to_string();
    let listed = std::fs::read_dir(format!("/proc/self/fd/{}", fd.as_raw_fd())).or_else(|_| std::fs::read_dir(&path));
    let dir = listed.map_err(|e| {
        Error::os(
            &path,
            "read_dir",
            Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        )
    })?;
    let mut names = Vec::new();
    for entry in dir.flatten() {
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if let Some(name) = entry.file_name().to_str() {
            names.push((name.to_owned(), is_dir));
        }
    }
    names.sort();
    Ok(names)
}

/// The names (valid segment names only) in `/dev/shm/<prefix>/`; empty if it is missing.
pub(crate) fn segment_names(prefix: &str) -> Result<Vec<String>> {
    let root = root()?;
    let Found::Dir(fd) = find(&root, prefix)? else {
        return Ok(Vec::new());
    };
    Ok(entries(&fd, prefix)?
        .into_iter()
        .filter(|(name, is_dir)| !is_dir && crate::segment::check_part(name, false).is_ok())
        .map(|(name, _)| name)
        .collect())
}

/// Removes one entry of a prefix directory; `false` if there was none.
pub(crate) fn remove_entry(prefix: &str, name: &str) -> Result<bool> {
    let root = root()?;
    let Found::Dir(fd) = find(&root, prefix)? else {
        return Ok(false);
    };
    unlink(&fd, name, &format!("{}/{name}", dir_path(prefix).display()))
}

fn unlink(dir: &OwnedFd, name: &str, path: &str) -> Result<bool> {
    match unlinkat(dir.as_fd(), name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) => Ok(true),
        Err(Errno::ENOENT) => Ok(false),
        Err(e) => Err(Error::os(path, "unlink", e)),
    }
}

/// Removes every file in `/dev/shm/<prefix>/`, and the directory itself if `with_dir`.
/// Nothing is followed: a symlink (or file) in the directory's place is removed itself when
/// `with_dir`, never what it points to. Returns the number of files removed in the directory.
pub(crate) fn clear(prefix: &str, with_dir: bool) -> Result<usize> {
    crate::segment::check_part(prefix, true)?;
    let path = dir_path(prefix).display().to_string();
    let root = root()?;
    let fd = match find(&root, prefix)? {
        Found::Missing => return Ok(0),
        Found::NotADirectory => {
            if with_dir {
                unlink(&root, prefix, &path)?;
            }
            return Ok(0);
        }
        Found::Dir(fd) => fd,
    };
    let mut removed = 0;
    for (name, is_dir) in entries(&fd, prefix)? {
        if !is_dir && unlink(&fd, &name, &format!("{path}/{name}"))? {
            removed += 1;
        }
    }
    if with_dir {
        match unlinkat(root.as_fd(), prefix, UnlinkatFlags::RemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(Error::os(&path, "rmdir", e)),
        }
    }
    Ok(removed)
}
