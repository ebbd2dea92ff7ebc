//! The crash-safe store on disk (redb): key/value entries and pattern vectors.
//!
//! Every write is one redb transaction committed with immediate durability (fsync) before the
//! memory acknowledges it. The FAISS index is not stored here: it is derived data, saved
//! beside the database by [`crate::index_file`] and rebuilt from these vectors when needed.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::{kv::Entry, patterns::PatternInfo, MemoryError};

const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
const PATTERNS: TableDefinition<u64, &[u8]> = TableDefinition::new("patterns");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Bumped by every pattern change; the saved index records the generation it reflects.
const GENERATION: &str = "pattern_generation";

/// A pattern as stored: its info and its (normalised) vector.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct StoredPattern {
    pub(crate) info: PatternInfo,
    pub(crate) vector: Vec<f32>,
}

/// What the store held at open.
#[derive(Debug, Default)]
pub(crate) struct Contents {
    pub(crate) kv: Vec<(String, Entry)>,
    pub(crate) patterns: Vec<(u64, PatternInfo)>,
    /// The patterns' ids and vectors (rows concatenated), if asked for.
    pub(crate) vectors: Option<(Vec<u64>, Vec<f32>)>,
    pub(crate) generation: u64,
}

/// One write, applied atomically.
#[derive(Debug)]
pub(crate) enum Write {
    Put(String, Entry),
    Delete(Vec<String>),
    /// Removes `remove`, then adds `add` (a replaced key is both).
    Patterns {
        add: Vec<(u64, StoredPattern)>,
        remove: Vec<u64>,
    },
}

#[derive(Debug)]
pub(crate) struct Store {
    db: Database,
    path: PathBuf,
}

impl Store {
    pub(crate) fn file(dir: &Path) -> PathBuf {
        dir.join("memory.redb")
    }

    /// Opens (or creates) the database in `dir`, caching at most `cache` bytes of its pages,
    /// and reads everything back, pattern vectors only if `with_vectors`.
    pub(crate) fn open(
        dir: &Path,
        cache: usize,
        with_vectors: bool,
    ) -> Result<(Self, Contents), MemoryError> {
        std::fs::create_dir_all(dir).map_err(MemoryError::io(dir))?;
        let path = Self::file(dir);
        let db = Database::builder()
            .set_cache_size(cache)
            .create(&path)
            .map_err(MemoryError::storage(&path))?;
        let store = Self { db, path };
        // Create the tables so that a fresh database reads back empty.
        store.commit(|_| Ok(()))?;
        let contents = store.read_all(with_vectors)?;
        Ok((store, contents))
    }

    fn read_all(&self, with_vectors: bool) -> Result<Contents, MemoryError> {
        let path = &self.path;
        let txn = self.db.begin_read().map_err(MemoryError::storage(path))?;
        let mut contents = Contents::default();
        let kv = txn.open_table(KV).map_err(MemoryError::storage(path))?;
        for row in kv.iter().map_err(MemoryError::storage(path))? {
            let (k, v) = row.map_err(MemoryError::storage(path))?;
            let key = k.value().to_owned();
            let entry =
                postcard::from_bytes(v.value()).map_err(|source| MemoryError::CorruptRecord {
                    path: path.clone(),
                    record: format!("key {key:?}"),
                    source,
                })?;
            contents.kv.push((key, entry));
        }
        let patterns = txn
            .open_table(PATTERNS)
            .map_err(MemoryError::storage(path))?;
        let (mut ids, mut data) = (Vec::new(), Vec::new());
        for row in patterns.iter().map_err(MemoryError::storage(path))? {
            let (id, v) = row.map_err(MemoryError::storage(path))?;
            let id = id.value();
            let StoredPattern { info, vector } = decode_pattern(path, id, v.value())?;
            contents.patterns.push((id, info));
            if with_vectors {
                ids.push(id);
                data.extend_from_slice(&vector);
            }
        }
        contents.vectors = with_vectors.then_some((ids, data));
        let meta = txn.open_table(META).map_err(MemoryError::storage(path))?;
        contents.generation = meta
            .get(GENERATION)
            .map_err(MemoryError::storage(path))?
            .map_or(0, |g| g.value());
        Ok(contents)
    }

    /// Applies `write` in one durable transaction; returns the pattern generation after it.
    pub(crate) fn apply(&self, write: &Write) -> Result<u64, MemoryError> {
        let path = &self.path;
        self.commit(|txn| {
            let mut generation = None;
            match write {
                Write::Put(key, entry) => {
                    let bytes = encode(key, entry)?;
                    let mut t = txn.open_table(KV).map_err(MemoryError::storage(path))?;
                    t.insert(key.as_str(), bytes.as_slice())
                        .map_err(MemoryError::storage(path))?;
                }
                Write::Delete(keys) => {
                    let mut t = txn.open_table(KV).map_err(MemoryError::storage(path))?;
                    for key in keys {
                        t.remove(key.as_str()).map_err(MemoryError::storage(path))?;
                    }
                }
                Write::Patterns { add, remove } => {
                    let mut t = txn
                        .open_table(PATTERNS)
                        .map_err(MemoryError::storage(path))?;
                    for id in remove {
                        t.remove(id).map_err(MemoryError::storage(path))?;
                    }
                    for (id, pattern) in add {
                        let bytes = encode(&pattern.info.key, pattern)?;
                        t.insert(id, bytes.as_slice())
                            .map_err(MemoryError::storage(path))?;
                    }
                    generation = Some(());
                }
            }
            let mut meta = txn.open_table(META).map_err(MemoryError::storage(path))?;
            let current = meta
                .get(GENERATION)
                .map_err(MemoryError::storage(path))?
                .map_or(0, |g| g.value());
            let next = current + u64::from(generation.is_some());
            if next != current {
                meta.insert(GENERATION, next)
                    .map_err(MemoryError::storage(path))?;
            }
            Ok(next)
        })
    }

    /// Calls `f` with the stored vector of each of `ids` that exists, in one read
    /// transaction (compact mode re-ranks from here instead of keeping vectors in RAM).
    pub(crate) fn each_vector(
        &self,
        ids: &[u64],
        mut f: impl FnMut(u64, &[f32]),
    ) -> Result<(), MemoryError> {
        let path = &self.path;
        let txn = self.db.begin_read().map_err(MemoryError::storage(path))?;
        let table = txn
            .open_table(PATTERNS)
            .map_err(MemoryError::storage(path))?;
        for &id in ids {
            if let Some(row) = table.get(id).map_err(MemoryError::storage(path))? {
                f(id, &decode_pattern(path, id, row.value())?.vector);
            }
        }
        Ok(())
    }

    /// A consistent view of the stored patterns as of now, readable later on another
    /// thread: a training started now sees exactly the patterns the actor has applied.
    pub(crate) fn snapshot(&self) -> Result<Snapshot, MemoryError> {
        let txn = self
            .db
            .begin_read()
            .map_err(MemoryError::storage(&self.path))?;
        Ok(Snapshot {
            txn,
            path: self.path.clone(),
        })
    }

    fn commit<R>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<R, MemoryError>,
    ) -> Result<R, MemoryError> {
        let path = &self.path;
        let txn = self.db.begin_write().map_err(MemoryError::storage(path))?;
        {
            // Opening every table makes a fresh database complete after its first commit.
            txn.open_table(KV).map_err(MemoryError::storage(path))?;
            txn.open_table(PATTERNS)
                .map_err(MemoryError::storage(path))?;
            txn.open_table(META).map_err(MemoryError::storage(path))?;
        }
        let out = f(&txn)?;
        // redb's default durability is Immediate: commit returns after fsync.
        txn.commit().map_err(MemoryError::storage(path))?;
        Ok(out)
    }
}

/// The stored patterns as of [`Store::snapshot`].
pub(crate) struct Snapshot {
    txn: redb::ReadTransaction,
    path: PathBuf,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("path", &self.path)
            .finish()
    }
}

impl Snapshot {
    /// Every pattern's id and vector (rows concatenated).
    pub(crate) fn vectors(&self) -> Result<(Vec<u64>, Vec<f32>), MemoryError> {
        let path = &self.path;
        let table = self
            .txn
            .open_table(PATTERNS)
            .map_err(MemoryError::storage(path))?;
        let (mut ids, mut data) = (Vec::new(), Vec::new());
        for row in table.iter().map_err(MemoryError::storage(path))? {
            let (id, v) = row.map_err(MemoryError::storage(path))?;
            let id = id.value();
            ids.push(id);
            data.extend_from_slice(&decode_pattern(path, id, v.value())?.vector);
        }
        Ok((ids, data))
    }
}

fn decode_pattern(path: &Path, id: u64, bytes: &[u8]) -> Result<StoredPattern, MemoryError> {
    postcard::from_bytes(bytes).map_err(|source| MemoryError::CorruptRecord {
        path: path.to_owned(),
        record: format!("pattern #{id}"),
        source,
    })
}

fn encode<T: Serialize>(key: &str, value: &T) -> Result<Vec<u8>, MemoryError> {
    postcard::to_allocvec(value).map_err(|source| MemoryError::Encode {
        key: key.to_owned(),
        source,
    })
}
