//! Where each pattern id sits in an array kept in insertion order (the rows of the vector
//! slab, the entries of the pattern table).
//!
//! Pattern ids count up from 0, so most are looked up in a dense array indexed by id: one
//! read, sequential when a batch is inserted, in a table of four bytes an id that stays in
//! cache where a hash map's probe missed it on every lookup. Ids far above the number of
//! entries (a memory restored with a few large ids) go to a map instead, so that they
//! cannot make the array huge.

use std::collections::HashMap;

/// Position by id: a dense array for the ids near the count, a map for the rest.
#[derive(Debug, Default)]
pub(crate) struct Positions {
    dense: Vec<u32>,
    sparse: HashMap<u64, usize>,
}

impl Positions {
    const NONE: u32 = u32::MAX;

    pub(crate) fn get(&self, id: u64) -> Option<usize> {
        match self.dense.get(usize::try_from(id).ok()?) {
            Some(&at) if at != Self::NONE => Some(at as usize),
            Some(_) => None,
            None => self.sparse.get(&id).copied(),
        }
    }

    /// Sets `id`'s position; `len` (the array's size) bounds how far the dense array may
    /// grow.
    pub(crate) fn insert(&mut self, id: u64, position: usize, len: usize) {
        let limit = (len * 8).max(1 << 20);
        debug_assert!(position < Self::NONE as usize);
        match usize::try_from(id) {
            Ok(at) if at < self.dense.len() => self.dense[at] = position as u32,
            Ok(at) if at < limit => {
                self.dense.resize(at + 1, Self::NONE);
                self.dense[at] = position as u32;
                // Ids the array now covers move in from the map (rarely any).
                let dense = &mut self.dense;
                self.sparse
                    .retain(|&id, &mut at| match dense.get_mut(id as usize) {
                        Some(slot) => {
                            *slot = at as u32;
                            false
                        }
                        None => true,
                    });
            }
            _ => {
                self.sparse.insert(id, position);
            }
        }
    }

    pub(crate) fn remove(&mut self, id: u64) -> Option<usize> {
        let at = self.get(id)?;
        match self.dense.get_mut(id as usize) {
            Some(slot) => *slot = Self::NONE,
            None => {
                self.sparse.remove(&id);
            }
        }
        Some(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_by_id_dense_and_sparse() {
        let mut r = Positions::default();
        r.insert(3, 0, 1);
        r.insert(u64::MAX, 1, 2);
        r.insert(5_000_000, 2, 3);
        assert_eq!(r.dense.len(), 4, "large ids stay out of the array");
        assert_eq!(
            (r.get(3), r.get(u64::MAX), r.get(5_000_000)),
            (Some(0), Some(1), Some(2))
        );
        assert_eq!((r.get(4), r.get(2)), (None, None));
        // The array grows past a sparse id (the slab grew): the id moves in, still found.
        r.insert(6_000_000, 3, 1_000_000);
        assert_eq!((r.get(5_000_000), r.get(6_000_000)), (Some(2), Some(3)));
        assert!(r.sparse.len() == 1);
        assert_eq!(r.remove(5_000_000), Some(2));
        assert_eq!((r.remove(5_000_000), r.get(5_000_000)), (None, None));
        assert_eq!(r.remove(u64::MAX), Some(1));
        assert_eq!(r.get(u64::MAX), None);
    }
}
