//! Linear probing's shared steps for the open-addressing tables (the key index in
//! [`crate::key_index`] and the text index in [`crate::strings`]): the next slot, the distance
//! between slots, and deletion without tombstones, so lookups never slow down as keys come and
//! go.

/// The slot after `i` in a table of `len` slots.
#[inline]
pub fn next(i: usize, len: usize) -> usize {
    if i + 1 == len {
        0
    } else {
        i + 1
    }
}

/// Slots from `from` forward to `to` in a table of `len` slots, cyclically.
#[inline]
pub fn distance(from: usize, to: usize, len: usize) -> usize {
    if to >= from {
        to - from
    } else {
        to + len - from
    }
}

/// Empties slot `hole` of `index` (any size, probed forward with wrap-around, empty slots equal
/// to `T::default()`) and closes the gap: each later entry of the probe run moves back into the
/// hole unless its home slot lies cyclically in (hole, its slot]. `dist(e, j)` is the distance
/// of entry `e`, found at slot `j`, from its home slot; `moved(e, d)` is `e` as stored `d`
/// slots from its home (for tables whose entries carry their distance; else `e`).
pub fn remove_at<T: Copy + Default + PartialEq>(
    index: &mut [T],
    mut hole: usize,
    mut dist: impl FnMut(T, usize) -> usize,
    moved: impl Fn(T, usize) -> T,
) {
    let len = index.len();
    let mut j = hole;
    loop {
        j = next(j, len);
        let e = index[j];
        if e == T::default() {
            break;
        }
        let (d, gap) = (dist(e, j), distance(hole, j, len));
        if d >= gap {
            index[hole] = moved(e, d - gap);
            hole = j;
        }
    }
    index[hole] = T::default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removed_entry_leaves_its_run_findable() {
        // An entry's home slot is its value mod 100; 0 is empty. One probe run wraps around an
        // 8-slot table: slot 6 = 6, 7 = 206 (home 6), 0 = 106 (home 6), 1 = 107 (home 7).
        let dist = |len| move |e: u32, j| distance((e % 100) as usize, j, len);
        let same = |e, _| e;
        let mut index = [106, 107, 0, 0, 0, 0, 6, 206];
        remove_at(&mut index, 6, dist(8), same);
        assert_eq!(index, [107, 0, 0, 0, 0, 0, 206, 106]);
        remove_at(&mut index, 6, dist(8), same);
        assert_eq!(index, [0, 0, 0, 0, 0, 0, 106, 107]);
        // Not a power of two: 7 slots, the run 5 = 5, 6 = 105 (home 5), 0 = 106 (home 6).
        let mut index = [106, 0, 0, 0, 0, 5, 105];
        remove_at(&mut index, 5, dist(7), same);
        assert_eq!(index, [0, 0, 0, 0, 0, 105, 106]);
    }

    #[test]
    fn a_moved_entry_is_stored_with_its_new_distance() {
        // Entries carry their distance in the tens: 10·d + home. 5 slots, the run
        // 1 = 1 (home 1, d 0), 2 = 11 (home 1, d 1), 3 = 21 (home 1, d 2), 4 = 4 (home 4, d 0).
        let dist = |e: u32, _| (e / 10) as usize;
        let moved = |e: u32, d: usize| e % 10 + 10 * d as u32;
        let mut index = [0, 1, 11, 21, 4];
        remove_at(&mut index, 1, dist, moved);
        assert_eq!(index, [0, 1, 11, 0, 4]);
    }
}
