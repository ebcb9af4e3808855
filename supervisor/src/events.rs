//! What the supervisor's loop sleeps on: one `poll(2)` over
//!
//! - the shutdown wake-up pipe (`stage_runtime::Shutdown::wake_pipe`), written by the SIGTERM and
//!   SIGINT handler, so a signal wakes the loop at once, even one that arrives just before `poll`;
//! - the readiness pipe ([`ReadyPipe`]), written by a stage when it becomes ready;
//! - one pidfd per running child ([`pidfd_open`]), readable once the child has exited;
//!
//! with a timeout at the loop's nearest deadline. Nothing here polls on a fixed tick.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout};

/// The pipe that stages write one byte to when they become ready (see
/// `stage_runtime::READY_FD_ENV`). Both ends are close-on-exec and non-blocking; the write end
/// is made inheritable only in a child, between fork and exec (see `spawn`), so nothing else the
/// supervisor might start inherits it.
pub struct ReadyPipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl ReadyPipe {
    /// Creates the pipe.
    pub fn new() -> io::Result<ReadyPipe> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
        Ok(ReadyPipe { read, write })
    }

    /// The number of the write end, for the children.
    pub fn child_end(&self) -> RawFd {
        self.write.as_raw_fd()
    }

    /// The read end, for `poll`.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }
}

/// Reads everything queued in a non-blocking pipe, so that it stops being readable.
pub fn drain(fd: BorrowedFd<'_>) {
    let mut buf = [0u8; 64];
    while let Ok(n) = nix::unistd::read(fd, &mut buf) {
        if n < buf.len() {
            break;
        }
    }
}

/// A pidfd for `pid`: readable once the process has exited (also when it has exited already but
/// is not reaped yet, so there is no race with a child that dies at once). Close-on-exec.
/// Linux 5.3 or later; the caller falls back to its periodic check without one.
pub fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open(2) takes a pid and a flags word and touches no memory of ours. On
    // success it returns a new descriptor that nothing else owns, which OwnedFd then closes.
    unsafe {
        let fd = libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(OwnedFd::from_raw_fd(fd as RawFd))
    }
}

/// What woke a [`wait`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Woken {
    /// The shutdown pipe is readable (drained already).
    pub shutdown: bool,
    /// The readiness pipe is readable (drained already): a stage reports ready.
    pub ready: bool,
    /// Keys of the children whose pidfd is readable: they have exited (reap them).
    pub exited: Vec<usize>,
}

/// Milliseconds for poll(2), rounded up so that a wait never ends just before its deadline (and
/// the loop then spins on zero timeouts), and capped at an hour.
pub fn poll_ms(timeout: Duration) -> u32 {
    let ms = timeout.as_nanos().div_ceil(1_000_000);
    ms.min(3_600_000) as u32
}

/// Sleeps until one of the descriptors is readable or `timeout` passes. `children` pairs a key
/// (the caller's index) with a pidfd. An interrupted wait (EINTR: a signal arrived) returns
/// nothing woken; the caller looks at its flags and deadlines either way.
pub fn wait(
    shutdown: Option<BorrowedFd<'_>>,
    ready: BorrowedFd<'_>,
    children: &[(usize, BorrowedFd<'_>)],
    timeout: Duration,
) -> io::Result<Woken> {
    let input = PollFlags::POLLIN;
    let mut fds = Vec::with_capacity(children.len() + 2);
    fds.push(PollFd::new(ready, input));
    fds.extend(children.iter().map(|(_, fd)| PollFd::new(*fd, input)));
    if let Some(fd) = shutdown {
        fds.push(PollFd::new(fd, input));
    }
    let timeout = PollTimeout::try_from(poll_ms(timeout)).unwrap_or(PollTimeout::MAX);
    match nix::poll::poll(&mut fds, timeout) {
        Ok(_) => {}
        Err(Errno::EINTR) => return Ok(Woken::default()),
        Err(e) => return Err(e.into()),
    }
    // Any event counts: POLLIN, and also POLLERR or POLLHUP, which a reap or read then explains.
    let woke = |fd: &PollFd<'_>| fd.any().unwrap_or(true);
    let mut woken = Woken {
        ready: woke(&fds[0]),
        exited: children
            .iter()
            .zip(&fds[1..])
            .filter(|(_, fd)| woke(fd))
            .map(|((key, _), _)| *key)
            .collect(),
        shutdown: shutdown.is_some() && woke(&fds[fds.len() - 1]),
    };
    if woken.ready {
        drain(ready);
    }
    if let Some(fd) = shutdown.filter(|_| woken.shutdown) {
        drain(fd);
    }
    woken.exited.sort_unstable();
    Ok(woken)
}

/// Waits up to `timeout` for one child's pidfd to become readable (it exited); `false` on
/// timeout or interruption.
pub fn wait_exit(pidfd: BorrowedFd<'_>, timeout: Duration) -> bool {
    let mut fds = [PollFd::new(pidfd, PollFlags::POLLIN)];
    let timeout = PollTimeout::try_from(poll_ms(timeout)).unwrap_or(PollTimeout::MAX);
    matches!(nix::poll::poll(&mut fds, timeout), Ok(n) if n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;
    use std::time::Instant;

    #[test]
    fn timeouts_round_up_to_whole_milliseconds() {
        assert_eq!(poll_ms(Duration::ZERO), 0);
        assert_eq!(poll_ms(Duration::from_micros(1)), 1);
        assert_eq!(poll_ms(Duration::from_millis(250)), 250);
        assert_eq!(poll_ms(Duration::from_micros(250_001)), 251);
        assert_eq!(poll_ms(Duration::from_secs(86_400)), 3_600_000);
    }

    #[test]
    fn a_wait_reports_a_ready_byte_and_an_exited_child() {
        let pipe = ReadyPipe::new().unwrap();
        let mut child = Command::new("true").spawn().unwrap();
        let pidfd = pidfd_open(child.id()).unwrap();
        nix::unistd::write(&pipe.write, b"rr").unwrap();
        // Generous: the only bound is that the child exits at all.
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = Woken::default();
        while (!seen.ready || seen.exited.is_empty()) && Instant::now() < deadline {
            let w = wait(None, pipe.as_fd(), &[(7, pidfd.as_fd())], Duration::from_secs(1)).unwrap();
            seen.ready |= w.ready;
            seen.exited.extend(w.exited);
        }
        assert!(seen.ready);
        assert_eq!(seen.exited.first(), Some(&7));
        assert!(
            child.try_wait().unwrap().is_some(),
            "readable pidfd: the child can be reaped"
        );
        let w = wait(None, pipe.as_fd(), &[], Duration::ZERO).unwrap();
        assert!(!w.ready, "the pipe was drained");
    }

    #[test]
    fn nothing_happening_is_a_timeout() {
        let pipe = ReadyPipe::new().unwrap();
        let (r, _w) = nix::unistd::pipe2(OFlag::O_NONBLOCK).unwrap();
        let w = wait(Some(r.as_fd()), pipe.as_fd(), &[], Duration::from_millis(1)).unwrap();
        assert_eq!(w, Woken::default());
    }
}
