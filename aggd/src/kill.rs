//! Simulated kills for the crash tests: [`kill_point!`] marks an instruction where a SIGKILL
//! must leave the windows recoverable. In test builds it is a countdown that panics with
//! [`Killed`] when it reaches the armed point; in every other build it expands to nothing.
//!
//! The crash tests (`crate::reference`) arm a countdown, run the windows until the panic, and
//! reopen the store as a restarted process would.

/// Marks a point where the process may be killed (a no-op outside tests).
macro_rules! kill_point {
    () => {
        #[cfg(test)]
        $crate::kill::point();
    };
}

#[cfg(test)]
pub(crate) use test_hook::*;

#[cfg(test)]
mod test_hook {
    use std::cell::Cell;

    thread_local! {
        static COUNTDOWN: Cell<u64> = const { Cell::new(0) };
    }

    /// The panic payload of a simulated kill.
    pub struct Killed;

    /// Kill at the `n`-th kill point from now (0: never).
    pub fn arm(n: u64) {
        COUNTDOWN.with(|c| c.set(n));
    }

    /// One kill point: panics with [`Killed`] if this is the armed one.
    pub fn point() {
        COUNTDOWN.with(|c| match c.get() {
            0 => {}
            1 => {
                c.set(0);
                std::panic::panic_any(Killed);
            }
            n => c.set(n - 1),
        });
    }
}
