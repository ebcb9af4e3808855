//! Graceful shutdown: SIGTERM or SIGINT sets a flag that the stage's loop checks between
//! batches. The loop then finishes what it holds (ingestd stops consuming; the others drain their
//! input ring) and the process exits 0.
//!
//! A process that sleeps in `poll(2)` rather than in short waits (the supervisor) also asks for a
//! wake-up pipe ([`Shutdown::wake_pipe`]): the handler writes one byte to it after setting the
//! flag, so a signal that lands between the loop's look at the flag and its `poll` still wakes
//! the `poll` (the classic self-pipe).

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use nix::fcntl::OFlag;
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

static REQUESTED: AtomicBool = AtomicBool::new(false);
/// The write end of the wake-up pipe, or -1 before [`Shutdown::wake_pipe`]. Never closed once
/// set: the handler may use it at any moment.
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(_: std::ffi::c_int) {
    // An atomic store and a write(2): both async-signal-safe.
    REQUESTED.store(true, Ordering::SeqCst);
    poke(WAKE_FD.load(Ordering::SeqCst));
}

/// Writes one byte to `fd` (if it is not -1), keeping `errno` as it was: this runs inside a
/// signal handler, where the interrupted code may be about to read `errno`.
fn poke(fd: i32) {
    if fd < 0 {
        return;
    }
    // SAFETY: `__errno_location` returns this thread's errno, valid for the thread's life; the
    // buffer passed to write(2) is a live one-byte array. write(2) on any fd number is memory-safe
    // (a closed one fails with EBADF), and the pipe is non-blocking, so this never waits.
    unsafe {
        let errno = libc::__errno_location();
        let saved = *errno;
        let _ = libc::write(fd, [1u8].as_ptr().cast(), 1);
        *errno = saved;
    }
}

/// The process's shutdown flag.
#[derive(Clone, Copy, Debug)]
pub struct Shutdown(());

impl Shutdown {
    /// Installs the SIGTERM and SIGINT handlers. Without `SA_RESTART`, so a blocking call
    /// (a futex wait, a nap) returns early and the loop sees the flag at once.
    pub fn install() -> std::io::Result<Shutdown> {
        let action = SigAction::new(SigHandler::Handler(on_signal), SaFlags::empty(), SigSet::empty());
        for signal in [Signal::SIGTERM, Signal::SIGINT] {
            // SAFETY: the handler only stores to a static atomic and writes to a pipe, which are
            // async-signal-safe, and it replaces the default action for these two signals alone.
            unsafe { sigaction(signal, &action) }.map_err(std::io::Error::from)?;
        }
        Ok(Shutdown(()))
    }

    /// True once SIGTERM or SIGINT has arrived (or [`Shutdown::request`] was called).
    pub fn requested(&self) -> bool {
        REQUESTED.load(Ordering::SeqCst)
    }

    /// Asks for shutdown from inside the process (for example after a fatal error).
    pub fn request(&self) {
        REQUESTED.store(true, Ordering::SeqCst);
        poke(WAKE_FD.load(Ordering::SeqCst));
    }

    /// A pipe that becomes readable whenever shutdown is requested (after the flag is set): put
    /// it in a `poll` set and drain it when it is readable. Both ends are close-on-exec and
    /// non-blocking. Call it once per process; a second call is an error.
    pub fn wake_pipe(&self) -> std::io::Result<OwnedFd> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
        let fd = write.as_raw_fd();
        if WAKE_FD
            .compare_exchange(-1, fd, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return Err(std::io::Error::other("the shutdown wake-up pipe exists already"));
        }
        // The handler may write to it for the rest of the process's life.
        std::mem::forget(write);
        if self.requested() {
            poke(fd);
        }
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_sets_the_flag_and_wakes_the_pipe() {
        let shutdown = Shutdown(());
        let pipe = shutdown.wake_pipe().unwrap();
        assert!(shutdown.wake_pipe().is_err(), "one per process");
        let mut buf = [0u8; 8];
        assert!(
            nix::unistd::read(&pipe, &mut buf).is_err(),
            "empty (EAGAIN) before a request"
        );
        shutdown.request();
        assert!(shutdown.requested());
        assert_eq!(nix::unistd::read(&pipe, &mut buf).unwrap(), 1);
    }
}
