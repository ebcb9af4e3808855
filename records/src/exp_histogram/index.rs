//! Which bucket a magnitude falls in, at [`MAX_SCALE`]: the one function every histogram here
//! (a window's, a pane's, a merger's) indexes values with, so that the same value lands in the
//! same bucket everywhere.
//!
//! Bucket `i` holds the magnitudes in `(2^(i/64), 2^((i+1)/64)]`. A magnitude `m = 2^e · f`
//! (`1 ≤ f < 2`) is in bucket `64·e + j`, where `j` is the last of the 64 bounds `2^(j/64)`
//! below `f` (and an exact power of two, `f = 1`, is the upper bound of bucket `64·e − 1`).
//! Scaling by a power of two is exact, so comparing `f` with the bounds of one octave is the
//! same as comparing `m` with the bounds of its own: no `log2` rounding can put a value on the
//! wrong side of a bound. A table of 256 entries, one per leading byte of the mantissa, names
//! the last bound below the start of that byte's range; each range holds at most one more bound
//! (the bounds are 1.1 % apart, a range 0.4 % wide), so one comparison finishes the search.

use std::sync::LazyLock;

use super::MAX_SCALE;

/// Buckets per power of two at [`MAX_SCALE`].
const PER_OCTAVE: usize = 1 << MAX_SCALE;

struct Tables {
    /// `bounds[j] = 2^(j/64)`, `j = 0 ..= 64`.
    bounds: [f64; PER_OCTAVE + 1],
    /// `last_below[b]`: the largest `j` with `bounds[j] < 1 + b/256` (0 for `b = 0`).
    last_below: [u8; 256],
}

static TABLES: LazyLock<Tables> = LazyLock::new(|| {
    let bounds: [f64; PER_OCTAVE + 1] = std::array::from_fn(|j| (j as f64 / PER_OCTAVE as f64).exp2());
    let last_below = std::array::from_fn(|b| {
        let start = 1.0 + b as f64 / 256.0;
        (0..PER_OCTAVE).rev().find(|&j| bounds[j] < start).unwrap_or(0) as u8
    });
    Tables { bounds, last_below }
});

/// The bucket of magnitude `m` (positive and finite) at [`MAX_SCALE`].
///
/// ```
/// use records::exp_histogram::index;
/// assert_eq!(index(1.0), -1, "a power of two is the upper bound of its bucket");
/// assert_eq!(index(1.0 + f64::EPSILON), 0);
/// assert_eq!(index(2f64.powf(1.5 / 64.0)), 1);
/// assert_eq!(index(f64::MAX), (1024 << 6) - 1);
/// ```
#[inline]
pub fn index(m: f64) -> i32 {
    debug_assert!(m > 0.0 && m.is_finite(), "{m}");
    let bits = m.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    if exp == 0 {
        // Subnormal: 2⁶⁴·m is normal, and the bucket moves by exactly 64 octaves.
        return index(m * 2f64.powi(64)) - 64 * PER_OCTAVE as i32;
    }
    let mantissa = bits & ((1 << 52) - 1);
    let octave = (exp - 1023) * PER_OCTAVE as i32;
    if mantissa == 0 {
        return octave - 1;
    }
    let t = &*TABLES;
    let f = f64::from_bits(1023 << 52 | mantissa);
    let mut j = usize::from(t.last_below[(mantissa >> 44) as usize]);
    if t.bounds[j + 1] < f {
        j += 1;
    }
    octave + j as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, by a linear search over the bounds of the value's octave.
    fn by_bounds(m: f64) -> i32 {
        let e = (m.to_bits() >> 52) as i32 - 1023;
        let f = m / 2f64.powi(e);
        let j = (0..=PER_OCTAVE as i32)
            .take_while(|&j| (f64::from(j) / PER_OCTAVE as f64).exp2() < f)
            .last()
            .unwrap_or(-1);
        e * PER_OCTAVE as i32 + j
    }

    #[test]
    fn every_byte_range_holds_at_most_one_more_bound() {
        let t = &*TABLES;
        for b in 0..256 {
            let (lo, hi) = (1.0 + b as f64 / 256.0, 1.0 + (b + 1) as f64 / 256.0);
            let inside = t.bounds.iter().filter(|&&x| x >= lo && x < hi).count();
            assert!(inside <= 1, "byte {b}: {inside} bounds");
        }
    }

    #[test]
    fn agrees_with_the_bounds_on_both_sides_of_every_bound() {
        for e in [-1022, -3, 0, 1, 7, 1022] {
            for j in 0..PER_OCTAVE as i32 {
                let b = 2f64.powi(e) * (f64::from(j) / PER_OCTAVE as f64).exp2();
                for m in [b.next_down(), b, b.next_up()] {
                    if m.is_normal() {
                        assert_eq!(index(m), by_bounds(m), "{m:e}");
                    }
                }
            }
        }
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let m = f64::from_bits(x >> 2 | 0x0010_0000_0000_0000);
            if m.is_normal() {
                assert_eq!(index(m), by_bounds(m), "{m:e}");
            }
        }
    }

    #[test]
    fn subnormals_are_64_octaves_below_their_normal_image() {
        let m = f64::MIN_POSITIVE / 4.0;
        assert_eq!(index(m), index(m * 2f64.powi(64)) - 64 * 64);
        assert_eq!(index(f64::from_bits(1)), -1074 * 64 - 1);
    }
}
