//! A cache prefetch hint, the one CPU-specific line in aggd.

/// Asks the CPU to start loading the cache line holding `x`. Only a hint: it never faults and
/// changes nothing observable; a no-op on CPUs without the instruction.
#[inline(always)]
pub fn line<T>(x: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: PREFETCHT0 is a hint that never faults, whatever the address; `x` is a live
        // reference anyway. SSE, which it needs, is part of the x86_64 baseline.
        unsafe { _mm_prefetch::<_MM_HINT_T0>((x as *const T).cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = x;
}
