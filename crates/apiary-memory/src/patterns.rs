//! Patterns: what a search returns, and the table of pattern ids, keys and metadata.

use std::collections::{BTreeMap, HashMap};

use foldhash::fast::RandomState;

use serde::{Deserialize, Serialize};

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
#[derive(Debug, Default)]
pub(crate) struct PatternTable {
    // foldhash: every insert hashes a key and an id several times over, and SipHash's
    // resistance to chosen keys buys nothing for keys the memory's own users write.
    pub(crate) by_id: HashMap<u64, PatternInfo, RandomState>,
    pub(crate) by_key: HashMap<String, u64, RandomState>,
    pub(crate) next_id: u64,
}

impl PatternTable {
    /// Room for `more` patterns, so that a batch grows the tables at most once.
    pub(crate) fn reserve(&mut self, more: usize) {
        self.by_key.reserve(more);
        self.by_id.reserve(more);
    }

    pub(crate) fn insert(&mut self, id: u64, info: PatternInfo) {
        self.by_key.insert(info.key.clone(), id);
        self.by_id.insert(id, info);
        self.next_id = self.next_id.max(id + 1);
    }

    /// Removes pattern `id` (and its key, if the key still names it).
    pub(crate) fn remove_id(&mut self, id: u64) {
        if let Some(info) = self.by_id.remove(&id)
            && self.by_key.get(&info.key) == Some(&id)
        {
            self.by_key.remove(&info.key);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }
}
