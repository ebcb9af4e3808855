//! Waking the supervisor when a stage becomes ready.
//!
//! The supervisor sleeps in `poll(2)` instead of polling the stats page, so a stage that reports
//! `Running` also writes one byte to a pipe the supervisor watches. The supervisor passes the
//! pipe's write end to every stage it spawns and names it in [`READY_FD_ENV`]. A stage started
//! by hand (tests, debugging) has no such variable and writes nothing; the state in the stats
//! page is the truth either way, and the byte only says "look now".

use std::os::fd::RawFd;

/// The environment variable with the number of the inherited readiness pipe's write end.
pub const READY_FD_ENV: &str = "TELEMETRY_READY_FD";

/// The readiness pipe named by [`READY_FD_ENV`], if the variable names a descriptor that is
/// really a non-blocking pipe (so that a stale or wrong number is never written to, and a write
/// never blocks the stage).
pub(crate) fn from_env() -> Option<RawFd> {
    let value = std::env::var(READY_FD_ENV).ok()?;
    let fd = match value.parse::<RawFd>() {
        Ok(fd) if fd >= 0 => fd,
        _ => {
            tracing::warn!(variable = READY_FD_ENV, value, "not a descriptor number; ignored");
            return None;
        }
    };
    if !is_nonblocking_pipe(fd) {
        tracing::warn!(
            variable = READY_FD_ENV,
            fd,
            "not an open non-blocking pipe; the supervisor will notice readiness on its next check"
        );
        return None;
    }
    Some(fd)
}

fn is_nonblocking_pipe(fd: RawFd) -> bool {
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat(2) and fcntl(F_GETFL) on any descriptor number are memory-safe (an unknown
    // one fails with EBADF); fstat writes at most one `struct stat` into the buffer, which is
    // read only after it succeeded.
    let (is_fifo, flags) = unsafe {
        if libc::fstat(fd, stat.as_mut_ptr()) != 0 {
            return false;
        }
        let is_fifo = stat.assume_init().st_mode & libc::S_IFMT == libc::S_IFIFO;
        (is_fifo, libc::fcntl(fd, libc::F_GETFL))
    };
    is_fifo && flags >= 0 && flags & libc::O_NONBLOCK != 0
}

/// Writes one byte to the readiness pipe. Errors are ignored: `EAGAIN` means the pipe already
/// holds wake-ups the supervisor has not read, `EPIPE` that the supervisor is gone (Rust
/// ignores SIGPIPE, so that is only an error code).
pub(crate) fn wake(fd: RawFd) {
    // SAFETY: the buffer is a live one-byte array; write(2) on any descriptor number is
    // memory-safe, and this one was checked to be a non-blocking pipe, so it never waits.
    let _ = unsafe { libc::write(fd, [1u8].as_ptr().cast(), 1) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::fcntl::OFlag;
    use std::os::fd::AsRawFd;

    #[test]
    fn only_a_non_blocking_pipe_is_accepted_and_woken() {
        let (r, w) = nix::unistd::pipe2(OFlag::O_NONBLOCK).unwrap();
        assert!(is_nonblocking_pipe(w.as_raw_fd()));
        wake(w.as_raw_fd());
        let mut buf = [0u8; 4];
        assert_eq!(nix::unistd::read(&r, &mut buf).unwrap(), 1);
        let (_r2, blocking) = nix::unistd::pipe().unwrap();
        assert!(
            !is_nonblocking_pipe(blocking.as_raw_fd()),
            "a blocking pipe could stall the stage"
        );
        let file = std::fs::File::open("/proc/self/stat").unwrap();
        assert!(!is_nonblocking_pipe(file.as_raw_fd()), "not a pipe");
        assert!(!is_nonblocking_pipe(1 << 20), "not open");
    }
}
