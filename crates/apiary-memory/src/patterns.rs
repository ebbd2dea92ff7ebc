//! Patterns: what a search returns, and the table of pattern ids, keys and metadata.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{key_ids::KeyIds, positions::Positions};

/// Free-form string metadata attached to a pattern, filterable in searches.
pub type Metadata = BTreeMap<String, String>;

/// A pattern to store: a key, a vector or a text to embed, and metadata.
///
/// ```
/// use apiary_memory::Pattern;
///
/// let p = Pattern::text("lessons/build-fix", "the linker needs libblas")
///     .meta("agent", "builder");
/// # let _ = p;
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pattern {
    pub(crate) key: String,
    pub(crate) content: Content,
    pub(crate) metadata: Metadata,
}

/// A vector, or a text the memory's embedder turns into one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum Content {
    Vector(Vec<f32>),
    Text(String),
}

impl Pattern {
    /// A pattern with an explicit vector.
    pub fn vector(key: impl Into<String>, vector: Vec<f32>) -> Self {
        Self {
            key: key.into(),
            content: Content::Vector(vector),
            metadata: Metadata::new(),
        }
    }

    /// A pattern whose vector is the embedding of `text`.
    pub fn text(key: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            content: Content::Text(text.into()),
            metadata: Metadata::new(),
        }
    }

    /// The pattern's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Attaches one metadata entry.
    pub fn meta(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(name.into(), value.into());
        self
    }
}

/// A similarity search: a query, how many results, and optional filters.
///
/// ```
/// use apiary_memory::Query;
///
/// let q = Query::text("linker error", 5).namespace("lessons").filter("agent", "builder");
/// # let _ = q;
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Query {
    pub(crate) content: Content,
    pub(crate) k: usize,
    pub(crate) namespace: Option<String>,
    pub(crate) filter: Metadata,
}

impl Query {
    /// The `k` patterns most similar to `vector`.
    pub fn vector(vector: Vec<f32>, k: usize) -> Self {
        Self {
            content: Content::Vector(vector),
            k,
            namespace: None,
            filter: Metadata::new(),
        }
    }

    /// The `k` patterns most similar to the embedding of `text`.
    pub fn text(text: impl Into<String>, k: usize) -> Self {
        Self {
            content: Content::Text(text.into()),
            k,
            namespace: None,
            filter: Metadata::new(),
        }
    }

    /// How many results the query asks for.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Only patterns whose key is in `namespace`.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Only patterns whose metadata has `name = value` (several filters must all hold).
    pub fn filter(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.filter.insert(name.into(), value.into());
        self
    }
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    /// The pattern's key.
    pub key: String,
    /// Cosine similarity to the query (exact in compact mode and for the exact index;
    /// from the quantized codes otherwise).
    pub score: f32,
    /// The pattern's metadata.
    pub metadata: Metadata,
}

/// What the memory keeps about a pattern besides its vector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct PatternInfo {
    pub(crate) key: String,
    pub(crate) metadata: Metadata,
}

impl PatternInfo {
    pub(crate) fn matches(&self, namespace: Option<&str>, filter: &Metadata) -> bool {
        namespace.is_none_or(|ns| self.key.split_once('/').is_some_and(|(n, _)| n == ns))
            && filter.iter().all(|(k, v)| self.metadata.get(k) == Some(v))
    }
}

/// Pattern ids by key and infos by id.
///
/// The infos sit in an array in insertion order (a removal swaps the last one in), found by
/// id through [`Positions`]: a batch's inserts append to it rather than each hashing into a
/// table of every pattern, where an insert and a search's lookup of each hit both missed
/// the cache.
#[derive(Debug, Default)]
pub(crate) struct PatternTable {
    infos: Vec<PatternInfo>,
    /// The id of each entry of `infos`, and each id's entry.
    entries: Positions,
    /// Each key's id; the keys themselves are the infos'.
    by_key: KeyIds,
    pub(crate) next_id: u64,
}

/// The key pattern `id` has in `infos`, found through `entries`.
fn key_of<'a>(entries: &Positions, infos: &'a [PatternInfo], id: u64) -> Option<&'a str> {
    entries.get(id).map(|at| infos[at].key.as_str())
}

impl PatternTable {
    /// Room for `more` patterns, so that a batch grows the tables at most once.
    pub(crate) fn reserve(&mut self, more: usize) {
        self.by_key.reserve(more);
        self.infos.reserve(more);
        self.entries.reserve(more);
    }

    /// Stores pattern `id` (replacing what `id` held) and points its key at it.
    pub(crate) fn insert(&mut self, id: u64, info: PatternInfo) {
        let Self {
            infos,
            entries,
            by_key,
            ..
        } = self;
        by_key.insert(&info.key, id, |i| key_of(entries, infos, i));
        match entries.get(id) {
            Some(at) => {
                let old = std::mem::replace(&mut infos[at], info);
                if old.key != infos[at].key {
                    // Goes by id: the old key's slot still names `id`, if it does at all.
                    by_key.remove(&old.key, id);
                }
            }
            None => {
                entries.push(id);
                infos.push(info);
            }
        }
        self.next_id = self.next_id.max(id + 1);
    }

    /// Removes pattern `id` (and its key, if the key still names it).
    pub(crate) fn remove_id(&mut self, id: u64) {
        let Some(at) = self.entries.swap_remove(id) else {
            return;
        };
        let info = self.infos.swap_remove(at);
        self.by_key.remove(&info.key, id);
    }

    /// Pattern `id`'s key and metadata.
    pub(crate) fn get(&self, id: u64) -> Option<&PatternInfo> {
        self.entries.get(id).map(|at| &self.infos[at])
    }

    pub(crate) fn contains(&self, id: u64) -> bool {
        self.entries.get(id).is_some()
    }

    /// The id `key` names.
    pub(crate) fn id_of(&self, key: &str) -> Option<u64> {
        self.by_key
            .get(key, |id| key_of(&self.entries, &self.infos, id))
    }

    /// Every pattern, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, &PatternInfo)> {
        self.entries.ids().iter().copied().zip(&self.infos)
    }

    pub(crate) fn len(&self) -> usize {
        self.infos.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(key: &str) -> PatternInfo {
        PatternInfo {
            key: key.to_owned(),
            metadata: Metadata::new(),
        }
    }

    fn keys(t: &PatternTable) -> Vec<(u64, String)> {
        let mut all: Vec<(u64, String)> = t.iter().map(|(id, i)| (id, i.key.clone())).collect();
        all.sort();
        all
    }

    #[test]
    fn removing_swaps_the_last_entry_in_and_keeps_every_other_findable() {
        let mut t = PatternTable::default();
        for (id, key) in [(0, "a/x"), (1, "a/y"), (2, "a/z")] {
            t.insert(id, info(key));
        }
        t.remove_id(0);
        assert_eq!((t.len(), t.contains(0), t.id_of("a/x")), (2, false, None));
        assert_eq!(t.get(2).map(|i| i.key.as_str()), Some("a/z"));
        assert_eq!(t.get(1).map(|i| i.key.as_str()), Some("a/y"));
        assert_eq!(keys(&t), [(1, "a/y".into()), (2, "a/z".into())]);
        // Removing the last entry, and an id that is not there.
        t.remove_id(1);
        t.remove_id(1);
        assert_eq!(keys(&t), [(2, "a/z".into())]);
        assert_eq!(t.next_id, 3);
    }

    #[test]
    fn a_key_given_a_new_id_survives_the_removal_of_its_old_one() {
        let mut t = PatternTable::default();
        t.insert(0, info("a/x"));
        t.insert(1, info("a/x"));
        t.remove_id(0);
        assert_eq!(t.id_of("a/x"), Some(1));
        assert_eq!(t.get(1).map(|i| i.key.as_str()), Some("a/x"));
        // Inserting an id again replaces what it held.
        t.insert(1, info("a/w"));
        assert_eq!(
            (t.len(), t.id_of("a/w"), t.id_of("a/x")),
            (1, Some(1), None)
        );
        assert_eq!(t.get(1).map(|i| i.key.as_str()), Some("a/w"));
    }
}
