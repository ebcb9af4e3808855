//! Graceful shutdown: SIGTERM or SIGINT sets a flag that the stage's loop checks between
//! batches. The loop then finishes what it holds (ingestd stops consuming; the others drain their
//! input ring) and the process exits 0.

use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

static REQUESTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: std::ffi::c_int) {
    // Only an atomic store: async-signal-safe.
    REQUESTED.store(true, Ordering::SeqCst);
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
            // SAFETY: the handler only stores to a static atomic, which is async-signal-safe, and
            // it replaces the default action for these two signals alone.
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
    }
}
