//! Pattern ids in insertion order, and where each sits: the order of the rows of the vector
//! slab and of the entries of the pattern table, which keep their own values in arrays in the
//! same order.
//!
//! Pattern ids count up from 0, so most are looked up in a dense array indexed by id: one
//! read, sequential when a batch is inserted, in a table of four bytes an id that stays in
//! cache where a hash map's probe missed it on every lookup. Ids far above the number of
//! entries (a memory restored with a few large ids) go to a map instead, so that they
//! cannot make the array huge. A removal swaps the last id into the removed one's place, as
//! [`Vec::swap_remove`] does, and the owner moves its value the same way.

use std::collections::HashMap;

/// Ids in insertion order, and each one's position: a dense array for the ids near the
/// count, a map for the rest.
#[derive(Debug, Default)]
pub(crate) struct Positions {
    ids: Vec<u64>,
    dense: Vec<u32>,
    sparse: HashMap<u64, usize>,
}

impl Positions {
    const NONE: u32 = u32::MAX;

    /// The positions of `ids`, in order (each id once).
    pub(crate) fn from_ids(ids: Vec<u64>) -> Self {
        let mut positions = Self::default();
        for (at, &id) in ids.iter().enumerate() {
            positions.set(id, at, ids.len());
        }
        positions.ids = ids;
        positions
    }

    /// Where `id` sits.
    pub(crate) fn get(&self, id: u64) -> Option<usize> {
        match self.dense.get(usize::try_from(id).ok()?) {
            Some(&at) if at != Self::NONE => Some(at as usize),
            Some(_) => None,
            None => self.sparse.get(&id).copied(),
        }
    }

    /// Every id, in position order.
    pub(crate) fn ids(&self) -> &[u64] {
        &self.ids
    }

    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    /// Bytes of the ids and the lookups: 8 an id, 4 a slot of the dense array, and a map
    /// entry's key and value for each sparse id (lengths, not capacities).
    pub(crate) fn bytes(&self) -> usize {
        self.ids.len() * 8 + self.dense.len() * 4 + self.sparse.len() * 16
    }

    pub(crate) fn reserve(&mut self, more: usize) {
        self.ids.reserve(more);
    }

    /// Appends `id`, which must not be here yet, and returns its position (the old length).
    pub(crate) fn push(&mut self, id: u64) -> usize {
        debug_assert!(self.get(id).is_none(), "id {id} pushed twice");
        let at = self.ids.len();
        self.ids.push(id);
        self.set(id, at, at + 1);
        at
    }

    /// Removes `id` and returns where it was: the last id now sits there (unless `id` was
    /// the last), so the owner's `values.swap_remove(at)` keeps its values in step.
    pub(crate) fn swap_remove(&mut self, id: u64) -> Option<usize> {
        let at = self.get(id)?;
        match self.dense.get_mut(id as usize) {
            Some(slot) => *slot = Self::NONE,
            None => {
                self.sparse.remove(&id);
            }
        }
        self.ids.swap_remove(at);
        if let Some(&moved) = self.ids.get(at) {
            self.set(moved, at, self.ids.len());
        }
        Some(at)
    }

    /// Sets `id`'s position; `len` (the number of ids) bounds how far the dense array may
    /// grow.
    fn set(&mut self, id: u64, at: usize, len: usize) {
        let limit = (len * 8).max(1 << 20);
        debug_assert!(at < Self::NONE as usize);
        match usize::try_from(id) {
            Ok(i) if i < self.dense.len() => self.dense[i] = at as u32,
            Ok(i) if i < limit => {
                self.dense.resize(i + 1, Self::NONE);
                // Ids the array now covers move in from the map (rarely any; `id` itself
                // among them if it was there, its new position written last).
                let dense = &mut self.dense;
                self.sparse
                    .retain(|&id, &mut at| match dense.get_mut(id as usize) {
                        Some(slot) => {
                            *slot = at as u32;
                            false
                        }
                        None => true,
                    });
                self.dense[i] = at as u32;
            }
            _ => {
                self.sparse.insert(id, at);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_by_id_dense_and_sparse() {
        let mut r = Positions::default();
        assert_eq!(r.push(3), 0);
        assert_eq!(r.push(u64::MAX), 1);
        assert_eq!(r.push(5_000_000), 2);
        assert_eq!(r.dense.len(), 4, "large ids stay out of the array");
        assert_eq!(
            (r.get(3), r.get(u64::MAX), r.get(5_000_000)),
            (Some(0), Some(1), Some(2))
        );
        assert_eq!((r.get(4), r.get(2)), (None, None));
        // The array grows past a sparse id: the id moves in, still found.
        r.set(6_000_000, 3, 1_000_000);
        assert_eq!((r.get(5_000_000), r.get(6_000_000)), (Some(2), Some(3)));
        assert!(r.sparse.len() == 1);
    }

    #[test]
    fn an_id_the_array_grows_over_keeps_the_position_it_is_given() {
        // In the map at 0; then given position 1 in the call that grows the array over it:
        // the map's stale 0 moves in first, and must not win.
        let mut r = Positions::default();
        r.push(5_000_000);
        r.set(5_000_000, 1, 1_000_000);
        assert_eq!(r.get(5_000_000), Some(1));
        assert!(r.sparse.is_empty());
    }

    #[test]
    fn removing_moves_the_last_id_into_the_gap_as_swap_remove_does() {
        let mut r = Positions::from_ids(vec![10, 11, u64::MAX, 13]);
        let mut values = vec!["a", "b", "c", "d"];
        let at = r.swap_remove(11).unwrap();
        values.swap_remove(at);
        assert_eq!(r.ids(), [10, 13, u64::MAX]);
        assert_eq!(values, ["a", "d", "c"]);
        for (i, &id) in r.ids().iter().enumerate() {
            assert_eq!(r.get(id), Some(i), "id {id}");
        }
        assert_eq!((r.swap_remove(11), r.get(11)), (None, None));
        // The last id, sparse: nothing moves.
        assert_eq!(r.swap_remove(u64::MAX), Some(2));
        assert_eq!((r.ids(), r.get(u64::MAX)), (&[10, 13][..], None));
    }
}
