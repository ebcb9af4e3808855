//! Deletion from an open-addressing table with linear probing (the text index in
//! [`crate::strings`]; the key index, which also keeps distances, has its own in
//! [`crate::key_index`]): no tombstones, so lookups never slow down as keys come and go.

/// Empties slot `hole` of `index` (a table of any size probed forward with wrap-around, empty
/// slots equal to `T::default()`), moving later entries of the same probe run back into the
/// hole when their home slot (`home(entry)`, below `index.len()`) does not lie cyclically in
/// (hole, entry].
pub fn remove_at<T: Copy + Default + PartialEq>(index: &mut [T], mut hole: usize, mut home: impl FnMut(T) -> usize) {
    let mut j = hole;
    loop {
        j = if j + 1 == index.len() { 0 } else { j + 1 };
        let e = index[j];
        if e == T::default() {
            break;
        }
        let h = home(e);
        let stays = if hole <= j {
            hole < h && h <= j
        } else {
            hole < h || h <= j
        };
        if !stays {
            index[hole] = e;
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
        let home = |e: u32| (e % 100) as usize;
        let mut index = [106, 107, 0, 0, 0, 0, 6, 206];
        remove_at(&mut index, 6, home);
        assert_eq!(index, [107, 0, 0, 0, 0, 0, 206, 106]);
        remove_at(&mut index, 6, home);
        assert_eq!(index, [0, 0, 0, 0, 0, 0, 106, 107]);
        // Not a power of two: 7 slots, the run 5 = 5, 6 = 105 (home 5), 0 = 106 (home 6).
        let mut index = [106, 0, 0, 0, 0, 5, 105];
        remove_at(&mut index, 5, home);
        assert_eq!(index, [0, 0, 0, 0, 0, 105, 106]);
    }
}
