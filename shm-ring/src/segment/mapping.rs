//! A mapped segment ([`Mapping`]): exclusive creation with every page reserved (or sparse, for
//! a table that asks), opening read-write or read-only after the owner and mode checks of
//! [`super::dir`], the mapping itself, and the per-byte OFD locks that hold roles (a ring's
//! producer and consumer, a stage's writer, a table's writer).

use std::num::NonZeroUsize;
use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;

use nix::errno::Errno;
use nix::fcntl::{openat, OFlag};
use nix::sys::mman::{mmap, munmap, MapFlags, ProtFlags};
use nix::sys::stat::{fchmod, fstat, Mode};
use nix::unistd::{unlinkat, UnlinkatFlags};

use super::dir::{self, PrefixDir, Purpose};
use super::{Access, Pages, SegmentName};
use crate::error::{Error, Result};

/// A mapped segment. Unmapped on drop; the file in `/dev/shm/<prefix>/` stays until [`remove`](super::remove).
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    writable: bool,
    fd: OwnedFd,
    owner: u32,
    name: SegmentName,
}

// SAFETY: a Mapping is a pointer to a MAP_SHARED region that lives until munmap in Drop; it has no
// thread affinity. All access to the bytes goes through atomics or through the ring's own
// single-producer/single-consumer discipline, which the owning types enforce with `&mut self`.
unsafe impl Send for Mapping {}
// SAFETY: shared references to a Mapping only hand out raw pointers; see the Send impl.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Creates a new segment of `len` bytes (zero-filled, every page reserved), failing if one of
    /// that name exists. The prefix directory is created if missing and must be ours; the file is
    /// created `O_CREAT|O_EXCL|O_NOFOLLOW` in it and its mode set with `fchmod`, so that the
    /// umask cannot widen or narrow it.
    pub(crate) fn create(name: &SegmentName, len: usize, access: Access) -> Result<Mapping> {
        Self::create_with(name, len, access, Pages::Reserved)
    }

    /// [`Mapping::create`], with the pages reserved or left to be allocated on first touch
    /// (see [`Pages`]).
    pub(crate) fn create_with(name: &SegmentName, len: usize, access: Access, pages: Pages) -> Result<Mapping> {
        let seg = name.to_string();
        let dir = PrefixDir::open(&name.prefix, Purpose::Create)?.expect("Create makes the directory");
        let flags = OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = match openat(dir.fd().as_fd(), name.name.as_str(), flags, access.mode()) {
            Ok(fd) => fd,
            Err(Errno::EEXIST) => return Err(Error::AlreadyExists { segment: seg }),
            Err(e) => return Err(Error::os(&seg, "open(O_CREAT|O_EXCL)", e)),
        };
        let init = || -> Result<Mapping> {
            fchmod(fd.as_fd(), access.mode()).map_err(|e| Error::os(&seg, "fchmod", e))?;
            match pages {
                Pages::Reserved => reserve(&fd, &seg, len)?,
                Pages::OnFirstTouch => size_sparse(&fd, &seg, len)?,
            }
            Self::map(
                fd.try_clone().map_err(|e| io_errno(&seg, "dup", e))?,
                name.clone(),
                len,
                true,
                dir.owner(),
            )
        };
        init().inspect_err(|_| {
            let _ = unlinkat(dir.fd().as_fd(), name.name.as_str(), UnlinkatFlags::NoRemoveDir);
        })
    }

    /// Opens an existing segment, after checking its directory and the file on their descriptors
    /// (see [`super::dir`]): to write, both must be ours; to read, the file must have its
    /// directory's owner, and neither may be writable by group or others. A read-only open uses
    /// `O_RDONLY` and `PROT_READ`, so it needs no write permission on the file.
    pub(crate) fn open(name: &SegmentName, writable: bool) -> Result<Mapping> {
        let seg = name.to_string();
        let purpose = if writable { Purpose::Write } else { Purpose::Read };
        let Some(dir) = PrefixDir::open(&name.prefix, purpose)? else {
            return Err(Error::NotFound { segment: seg });
        };
        let access = if writable { OFlag::O_RDWR } else { OFlag::O_RDONLY };
        let flags = access | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
        let fd = match openat(dir.fd().as_fd(), name.name.as_str(), flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Err(Error::NotFound { segment: seg }),
            Err(Errno::ELOOP) => return Err(dir::untrusted(&seg, None, "is a symbolic link")),
            Err(e) => return Err(Error::os(&seg, "open", e)),
        };
        let st = fstat(fd.as_fd()).map_err(|e| Error::os(&seg, "fstat", e))?;
        dir::check_segment(&dir, &st, &seg, writable)?;
        let len = usize::try_from(st.st_size).map_err(|_| Error::corrupt(&seg, "negative size"))?;
        if len == 0 {
            // The creator is between open and its reservation, or died there.
            return Err(Error::NotReady { segment: seg });
        }
        Self::map(fd, name.clone(), len, writable, st.st_uid)
    }

    fn map(fd: OwnedFd, name: SegmentName, len: usize, writable: bool, owner: u32) -> Result<Mapping> {
        let seg = name.to_string();
        let nz = NonZeroUsize::new(len).ok_or_else(|| Error::corrupt(&seg, "empty segment"))?;
        let prot = if writable {
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE
        } else {
            ProtFlags::PROT_READ
        };
        // SAFETY: we map a fresh region chosen by the kernel (addr = None), so no existing Rust
        // object is aliased; the region is owned by the returned Mapping and unmapped in Drop.
        let ptr = unsafe { mmap(None, nz, prot, MapFlags::MAP_SHARED, fd.as_fd(), 0) }
            .map_err(|e| Error::os(&seg, "mmap", e))?;
        Ok(Mapping {
            ptr: ptr.cast(),
            len,
            writable,
            fd,
            owner,
            name,
        })
    }

    /// The uid that owns the segment (and its directory).
    pub(crate) fn owner(&self) -> u32 {
        self.owner
    }

    pub(crate) fn ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn name(&self) -> &SegmentName {
        &self.name
    }

    /// Takes an exclusive open-file-description lock on one byte of the segment, without waiting.
    ///
    /// This is how roles are held: the kernel drops the lock when the holder's descriptor is
    /// closed, which includes being killed with SIGKILL, so a dead holder never needs clean-up and
    /// a live one can never be displaced. Nobody ever waits on these locks.
    pub(crate) fn try_lock_byte(&self, byte: u64) -> Result<bool> {
        let seg = self.name.to_string();
        if !self.writable {
            return Err(Error::ReadOnly { segment: seg });
        }
        // SAFETY: an all-zero flock is a valid value of this plain C struct.
        let mut lock: libc::flock = unsafe { std::mem::zeroed() };
        lock.l_type = libc::F_WRLCK as libc::c_short;
        lock.l_whence = libc::SEEK_SET as libc::c_short;
        lock.l_start = byte as libc::off_t;
        lock.l_len = 1;
        match nix::fcntl::fcntl(self.fd.as_fd(), nix::fcntl::FcntlArg::F_OFD_SETLK(&lock)) {
            Ok(_) => Ok(true),
            Err(Errno::EAGAIN) | Err(Errno::EACCES) => Ok(false),
            Err(e) => Err(Error::os(&seg, "fcntl(F_OFD_SETLK)", e)),
        }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len are exactly what mmap returned, and every reference into the region is
        // tied to a borrow of the owner of this Mapping, so none outlives it.
        let _ = unsafe { munmap(self.ptr.cast(), self.len) };
    }
}

fn io_errno(seg: &str, op: &'static str, e: std::io::Error) -> Error {
    Error::os(seg, op, Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
}

/// Gives the new file its size without allocating its pages (they are allocated, zeroed, on
/// first touch).
fn size_sparse(fd: &OwnedFd, seg: &str, len: usize) -> Result<()> {
    let off_len = libc::off_t::try_from(len).map_err(|_| Error::InvalidParameter {
        reason: format!("segment length {len} is too large"),
    })?;
    nix::unistd::ftruncate(fd, off_len).map_err(|e| Error::os(seg, "ftruncate", e))
}

/// Gives the new file its size with every page allocated (`posix_fallocate`). tmpfs allocates
/// pages of a sparse file on first write, and one it cannot allocate then is a SIGBUS in
/// whichever process touches it; reserved here, a full `/dev/shm` is an error at creation.
fn reserve(fd: &OwnedFd, seg: &str, len: usize) -> Result<()> {
    let off_len = libc::off_t::try_from(len).map_err(|_| Error::InvalidParameter {
        reason: format!("segment length {len} is too large"),
    })?;
    if off_len == 0 {
        return Ok(());
    }
    match nix::fcntl::posix_fallocate(fd.as_fd(), 0, off_len) {
        Ok(()) => Ok(()),
        Err(errno @ (Errno::ENOSPC | Errno::ENOMEM | Errno::EFBIG)) => Err(Error::NoSpace {
            segment: seg.to_owned(),
            bytes: len as u64,
            errno,
        }),
        Err(e) => Err(Error::os(seg, "posix_fallocate", e)),
    }
}
