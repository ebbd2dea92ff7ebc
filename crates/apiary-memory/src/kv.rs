//! The key/value table in RAM: ordered for prefix listing, with an expiry queue for TTLs.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// One stored value: postcard bytes and, with a TTL, when it expires (Unix milliseconds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub(crate) value: Vec<u8>,
    pub(crate) expires_at: Option<u64>,
}

impl Entry {
    fn live(&self, now: u64) -> bool {
        self.expires_at.is_none_or(|t| t > now)
    }
}

#[derive(Debug, Default)]
pub(crate) struct KvTable {
    entries: BTreeMap<String, Entry>,
    expiry: BTreeSet<(u64, String)>,
}

impl KvTable {
    pub(crate) fn insert(&mut self, key: String, entry: Entry) {
        if let Some(t) = entry.expires_at {
            self.expiry.insert((t, key.clone()));
        }
        if let Some(old) = self.entries.insert(key.clone(), entry)
            && let Some(t) = old.expires_at
        {
            // A rewrite may keep the same expiry; only drop the old one if it differs.
            if self.entries[&key].expires_at != Some(t) {
                self.expiry.remove(&(t, key));
            }
        }
    }

    /// The live entry under `key`; an expired one is never returned, swept or not.
    pub(crate) fn get(&self, key: &str, now: u64) -> Option<&Entry> {
        self.entries.get(key).filter(|e| e.live(now))
    }

    pub(crate) fn remove(&mut self, key: &str) -> Option<Entry> {
        let old = self.entries.remove(key)?;
        if let Some(t) = old.expires_at {
            self.expiry.remove(&(t, key.to_owned()));
        }
        Some(old)
    }

    /// Removes those of `keys` whose entry has expired at `now`; returns how many.
    pub(crate) fn remove_expired(&mut self, keys: &[String], now: u64) -> usize {
        let mut removed = 0;
        for key in keys {
            if self.entries.get(key).is_some_and(|e| !e.live(now)) {
                self.remove(key);
                removed += 1;
            }
        }
        removed
    }

    pub(crate) fn keys_with_prefix(&self, prefix: &str, now: u64) -> Vec<String> {
        self.entries
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter(|(_, e)| e.live(now))
            .map(|(k, _)| k.clone())
            .collect()
    }

    pub(crate) fn keys_matching(&self, glob: &globset::GlobMatcher, now: u64) -> Vec<String> {
        self.entries
            .iter()
            .filter(|(k, e)| e.live(now) && glob.is_match(k.as_str()))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Keys whose expiry is at or before `now`.
    pub(crate) fn due(&self, now: u64) -> Vec<String> {
        self.expiry
            .iter()
            .take_while(|(t, _)| *t <= now)
            .map(|(_, k)| k.clone())
            .collect()
    }

    pub(crate) fn next_expiry(&self) -> Option<u64> {
        self.expiry.first().map(|(t, _)| *t)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(expires_at: Option<u64>) -> Entry {
        Entry {
            value: vec![1],
            expires_at,
        }
    }

    #[test]
    fn expiry_queue_follows_rewrites() {
        let mut t = KvTable::default();
        t.insert("a/x".into(), entry(Some(10)));
        t.insert("a/x".into(), entry(Some(20)));
        assert_eq!(t.due(15), Vec::<String>::new());
        assert_eq!(t.due(20), vec!["a/x".to_owned()]);
        t.insert("a/x".into(), entry(None));
        assert_eq!(t.next_expiry(), None);
        assert!(t.get("a/x", u64::MAX).is_some());
    }

    #[test]
    fn prefix_stops_at_the_first_non_match() {
        let mut t = KvTable::default();
        for k in ["a/b", "a/b/c", "a/c", "b/a"] {
            t.insert(k.into(), entry(None));
        }
        assert_eq!(t.keys_with_prefix("a/b", 0), vec!["a/b", "a/b/c"]);
    }
}
