//! Time in panes: the window's arithmetic.
//!
//! Time is cut into panes of `emit_every_ms` (E), aligned to multiples of E of the wall clock
//! since the Unix epoch: pane `p` is `[p·E, (p+1)·E)`. A window is `panes` (P) consecutive panes,
//! `window_ms` = P·E long. The *boundary* `b` is the instant `b·E`; the aggregate emitted at
//! boundary `b` covers the window `[b·E − P·E, b·E)`, that is panes `b−P ..= b−1`.
//!
//! Everything here is plain integer arithmetic on pane indices; the policy that decides which
//! pane a reading goes to lives in [`crate::fold`].

/// The shape of the windows: pane length and panes per window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Panes {
    /// Pane length in ms (`aggd.emit_every_ms`), at least 1.
    pub emit_every_ms: u64,
    /// Panes per window (`aggd.window_ms / aggd.emit_every_ms`), 1 to 64.
    pub panes: u64,
}

/// Most panes a window may have (the configuration enforces the same bound).
pub const MAX_PANES: u64 = 64;

impl Panes {
    /// The panes of a window of `window_ms`, emitted every `emit_every_ms`. `None` unless
    /// `window_ms` is a multiple of `emit_every_ms` of 1 to [`MAX_PANES`] panes.
    pub fn new(window_ms: u64, emit_every_ms: u64) -> Option<Panes> {
        if emit_every_ms == 0 || !window_ms.is_multiple_of(emit_every_ms) {
            return None;
        }
        let panes = window_ms / emit_every_ms;
        (1..=MAX_PANES)
            .contains(&panes)
            .then_some(Panes { emit_every_ms, panes })
    }

    /// The window length in ms.
    pub fn window_ms(&self) -> u64 {
        self.emit_every_ms * self.panes
    }

    /// The pane that contains the instant `ms`.
    #[inline]
    pub fn pane_of(&self, ms: u64) -> u64 {
        ms / self.emit_every_ms
    }

    /// The instant of boundary `b` (the start of pane `b`).
    #[inline]
    pub fn boundary_ms(&self, b: u64) -> u64 {
        b.saturating_mul(self.emit_every_ms)
    }

    /// The window emitted at boundary `b`, as `(start_ms, end_ms)`: start inclusive, end
    /// exclusive.
    pub fn window_at(&self, b: u64) -> (u64, u64) {
        let end = self.boundary_ms(b);
        (end.saturating_sub(self.window_ms()), end)
    }

    /// The ring slot of pane `p` in a row (panes are kept in a ring of P slots).
    #[inline]
    pub fn slot_of(&self, p: u64) -> usize {
        (p % self.panes) as usize
    }

    /// Boundaries a key may go without a sample before it is forgotten: the smallest `n` with
    /// `n·E ≥ idle_ttl_ms`. With `idle_ttl_ms ≥ window_ms` this is at least P, so a forgotten key
    /// never has a sample in the window.
    pub fn idle_panes(&self, idle_ttl_ms: u64) -> u64 {
        idle_ttl_ms.div_ceil(self.emit_every_ms).max(self.panes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panes_are_aligned_to_the_wall_clock() {
        let p = Panes::new(60_000, 5_000).unwrap();
        assert_eq!(p.panes, 12);
        assert_eq!(p.pane_of(1_700_000_004_999), 340_000_000);
        assert_eq!(p.pane_of(1_700_000_005_000), 340_000_001);
        assert_eq!(p.window_at(340_000_001), (1_699_999_945_000, 1_700_000_005_000));
        assert_eq!(p.slot_of(340_000_001), (340_000_001 % 12) as usize);
        assert_eq!(p.window_at(3), (0, 15_000));
    }

    #[test]
    fn bad_shapes_are_refused() {
        assert!(Panes::new(1000, 300).is_none());
        assert!(Panes::new(1000, 0).is_none());
        assert!(Panes::new(65 * 10, 10).is_none());
        assert!(Panes::new(64 * 10, 10).is_some());
        assert!(Panes::new(0, 10).is_none());
    }

    #[test]
    fn idle_panes_round_up_and_cover_the_window() {
        let p = Panes::new(1000, 100).unwrap();
        assert_eq!(p.idle_panes(1000), 10);
        assert_eq!(p.idle_panes(1001), 11);
        assert_eq!(p.idle_panes(10), 10);
    }
}
