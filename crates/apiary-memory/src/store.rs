//! The crash-safe store on disk (redb): key/value entries and pattern vectors.
//!
//! Writes are committed with immediate durability (fsync) before the memory acknowledges them;
//! writes queued together share one transaction ([`crate::writer`]). The FAISS index is not stored here: it is derived data, saved
//! beside the database by [`crate::index_file`] and rebuilt from these vectors when needed.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
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

/// One write as it goes to disk, already encoded (so that a value that cannot be encoded
/// fails alone, before it reaches a shared transaction).
#[derive(Debug)]
pub(crate) enum Write {
    Put {
        key: String,
        bytes: Vec<u8>,
    },
    Delete(String),
    /// Removes those of `keys` whose stored entry has expired at `now` (Unix ms): a key
    /// written again since the sweep chose it stays.
    Expire {
        keys: Vec<String>,
        now: u64,
    },
    /// Removes `remove`, then adds `add` (a replaced key is both).
    Patterns {
        add: Vec<(u64, Vec<u8>)>,
        remove: Vec<u64>,
    },
}

impl Write {
    /// The bytes a pattern is stored as.
    /// The bytes a pattern is stored as: a [`StoredPattern`], encoded from borrowed parts.
    pub(crate) fn encode_pattern(
        info: &PatternInfo,
        vector: &[f32],
    ) -> Result<Vec<u8>, MemoryError> {
        encode(&info.key, &(info, vector))
    }

    /// The bytes an entry is stored as.
    pub(crate) fn encode_entry(key: &str, entry: &Entry) -> Result<Vec<u8>, MemoryError> {
        encode(key, entry)
    }
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

    /// The database file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
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
        // The open verifies every page's checksum (a damaged page would otherwise make redb
        // panic, as the `memory_files` fuzz target showed); a panic that slips past is still a
        // damaged store to report, not a crash.
        let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let db = Database::builder()
                .set_cache_size(cache)
                .set_check_integrity_on_open(true)
                .create(&path)
                .map_err(MemoryError::opening(&path))?;
            let store = Self {
                db,
                path: path.clone(),
            };
            // Create the tables so that a fresh database reads back empty.
            store.commit(|_| Ok(()))?;
            let contents = store.read_all(with_vectors)?;
            Ok((store, contents))
        }));
        opened.unwrap_or_else(|panic| {
            let reason = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown".to_owned());
            Err(MemoryError::storage(&path)(redb::Error::Corrupted(
                format!("the file is damaged (redb: {reason})"),
            )))
        })
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

    /// Applies `writes` in order in one durable transaction (one fsync for them all);
    /// returns the pattern generation after each.
    pub(crate) fn apply_batch<'a>(
        &self,
        writes: impl Iterator<Item = &'a Write>,
    ) -> Result<Vec<u64>, MemoryError> {
        let path = &self.path;
        self.commit(|txn| {
            let mut kv = txn.open_table(KV).map_err(MemoryError::storage(path))?;
            let mut patterns = txn
                .open_table(PATTERNS)
                .map_err(MemoryError::storage(path))?;
            let mut meta = txn.open_table(META).map_err(MemoryError::storage(path))?;
            let start = meta
                .get(GENERATION)
                .map_err(MemoryError::storage(path))?
                .map_or(0, |g| g.value());
            let mut generation = start;
            let mut after = Vec::new();
            for write in writes {
                match write {
                    Write::Put { key, bytes } => {
                        kv.insert(key.as_str(), bytes.as_slice())
                            .map_err(MemoryError::storage(path))?;
                    }
                    Write::Delete(key) => {
                        kv.remove(key.as_str())
                            .map_err(MemoryError::storage(path))?;
                    }
                    Write::Expire { keys, now } => {
                        for key in keys {
                            let expired = kv
                                .get(key.as_str())
                                .map_err(MemoryError::storage(path))?
                                .is_some_and(|stored| {
                                    // An entry that does not decode is kept: corruption is
                                    // reported at the next open, not deleted here.
                                    postcard::from_bytes::<Entry>(stored.value())
                                        .ok()
                                        .and_then(|e| e.expires_at)
                                        .is_some_and(|t| t <= *now)
                                });
                            if expired {
                                kv.remove(key.as_str())
                                    .map_err(MemoryError::storage(path))?;
                            }
                        }
                    }
                    Write::Patterns { add, remove } => {
                        for id in remove {
                            patterns.remove(id).map_err(MemoryError::storage(path))?;
                        }
                        for (id, bytes) in add {
                            patterns
                                .insert(id, bytes.as_slice())
                                .map_err(MemoryError::storage(path))?;
                        }
                        generation += 1;
                    }
                }
                after.push(generation);
            }
            if generation != start {
                meta.insert(GENERATION, generation)
                    .map_err(MemoryError::storage(path))?;
            }
            Ok(after)
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
        let path = &self.path;
        let txn = self.db.begin_read().map_err(MemoryError::storage(path))?;
        let generation = txn
            .open_table(META)
            .map_err(MemoryError::storage(path))?
            .get(GENERATION)
            .map_err(MemoryError::storage(path))?
            .map_or(0, |g| g.value());
        Ok(Snapshot {
            txn,
            path: path.clone(),
            generation,
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
    generation: u64,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("path", &self.path)
            .finish()
    }
}

impl Snapshot {
    /// The pattern generation the snapshot shows.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_encoded_from_parts_decode_as_stored_patterns() {
        let info = PatternInfo {
            key: "lessons/a".into(),
            metadata: [("agent".to_owned(), "coder".to_owned())].into(),
        };
        let vector = [0.6f32, 0.8];
        let bytes = Write::encode_pattern(&info, &vector).unwrap();
        let whole = StoredPattern {
            info: info.clone(),
            vector: vector.to_vec(),
        };
        assert_eq!(bytes, postcard::to_allocvec(&whole).unwrap());
        let back = decode_pattern(Path::new("t"), 1, &bytes).unwrap();
        assert_eq!((back.info, back.vector), (info, vector.to_vec()));
    }
}
