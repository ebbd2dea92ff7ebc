//! Pattern ids by key, without a second copy of the keys.
//!
//! The pattern table already keeps every key, in its infos. A `HashMap<String, u64>` beside
//! them copied each key (an allocation per insert) and kept 32 bytes a bucket plus the copy;
//! growing it re-read every copied key to hash it again, which in the insert bench cost the
//! one batch that crossed 114,688 keys 6.7 ms (2.35 ms with this table). This table keeps
//! each key's hash and id, 16 bytes, and finds the key itself through the caller's `key_of`
//! only to confirm a match: two keys meet there only when their 64-bit hashes are equal.

use std::hash::BuildHasher;

use foldhash::fast::RandomState;
use hashbrown::hash_table::{Entry, HashTable};

/// One key's hash and the id it names.
#[derive(Debug, Clone, Copy)]
struct Slot {
    hash: u64,
    id: u64,
}

/// Which id each key names; the keys themselves stay with the caller, found by id.
#[derive(Debug, Default)]
pub(crate) struct KeyIds {
    table: HashTable<Slot>,
    // foldhash: every insert hashes a key, and SipHash's resistance to chosen keys buys
    // nothing for keys the memory's own users write.
    hasher: RandomState,
}

impl KeyIds {
    fn hash(&self, key: &str) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Room for `more` keys, so that a batch grows the table at most once.
    pub(crate) fn reserve(&mut self, more: usize) {
        self.table.reserve(more, |s| s.hash);
    }

    /// The id `key` names. `key_of` gives the key an id stands for.
    pub(crate) fn get<'a>(
        &self,
        key: &str,
        key_of: impl Fn(u64) -> Option<&'a str>,
    ) -> Option<u64> {
        let hash = self.hash(key);
        self.table
            .find(hash, |s| s.hash == hash && key_of(s.id) == Some(key))
            .map(|s| s.id)
    }

    /// Points `key` at `id`, and returns the id it named before. `key_of` gives the key an
    /// id already in the table stands for.
    pub(crate) fn insert<'a>(
        &mut self,
        key: &str,
        id: u64,
        key_of: impl Fn(u64) -> Option<&'a str>,
    ) -> Option<u64> {
        let hash = self.hash(key);
        let eq = |s: &Slot| s.hash == hash && key_of(s.id) == Some(key);
        match self.table.entry(hash, eq, |s| s.hash) {
            Entry::Occupied(mut e) => Some(std::mem::replace(&mut e.get_mut().id, id)),
            Entry::Vacant(e) => {
                e.insert(Slot { hash, id });
                None
            }
        }
    }

    /// Forgets `key` if it names `id`. Needs no `key_of`: the id tells the slot apart, so
    /// this works after the key's owner has already given `id` another key.
    pub(crate) fn remove(&mut self, key: &str, id: u64) -> bool {
        let hash = self.hash(key);
        match self
            .table
            .find_entry(hash, |s| s.hash == hash && s.id == id)
        {
            Ok(e) => {
                e.remove();
                true
            }
            Err(_) => false,
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.table.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_inserts_replaces_and_removes_through_the_owners_keys() {
        let mut keys: Vec<&str> = vec!["a/x", "a/y", "a/z"];
        let mut t = KeyIds::default();
        let key_of = |keys: &[&'static str], id: u64| keys.get(id as usize).copied();
        for (id, key) in keys.iter().enumerate() {
            assert_eq!(t.insert(key, id as u64, |i| key_of(&keys, i)), None);
        }
        assert_eq!(t.get("a/y", |i| key_of(&keys, i)), Some(1));
        assert_eq!(t.get("a/w", |i| key_of(&keys, i)), None);
        // A key pointed at another id returns the one it named.
        keys.push("a/y");
        assert_eq!(t.insert("a/y", 3, |i| key_of(&keys, i)), Some(1));
        assert_eq!((t.get("a/y", |i| key_of(&keys, i)), t.len()), (Some(3), 3));
        // Removing needs the id the key names now.
        assert!(!t.remove("a/y", 1));
        assert!(t.remove("a/y", 3));
        assert_eq!(t.get("a/y", |i| key_of(&keys, i)), None);
        // Id 0 given another key by its owner: the old key's slot still goes by id.
        keys[0] = "b/q";
        assert_eq!(t.get("a/x", |i| key_of(&keys, i)), None);
        assert!(t.remove("a/x", 0));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn finds_every_key_after_growing() {
        let keys: Vec<String> = (0..10_000).map(|i| format!("n/{i}")).collect();
        let mut t = KeyIds::default();
        for (id, key) in keys.iter().enumerate() {
            t.insert(key, id as u64, |i| keys.get(i as usize).map(String::as_str));
        }
        for (id, key) in keys.iter().enumerate().step_by(97) {
            assert_eq!(
                t.get(key, |i| keys.get(i as usize).map(String::as_str)),
                Some(id as u64)
            );
        }
    }
}
