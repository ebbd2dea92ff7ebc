//! Everything the memory can refuse or fail at, each naming the thing at fault.

use std::path::PathBuf;

/// A boxed error from a user-supplied part (an [`Embedder`](crate::Embedder)).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a memory operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MemoryError {
    /// A key is not of the form `namespace/name`.
    #[error("invalid key {key:?}: {reason}")]
    InvalidKey {
        /// The key as given.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A query or listing names a namespace nothing was ever stored in (nor declared).
    #[error("unknown namespace {namespace:?}")]
    UnknownNamespace {
        /// The namespace as given.
        namespace: String,
    },
    /// A vector's length differs from the memory's dimension.
    #[error("{what}: vector has {got} dimensions, the memory expects {expected}")]
    Dimension {
        /// Which vector (a pattern key, or "query").
        what: String,
        /// The memory's dimension.
        expected: usize,
        /// The vector's length.
        got: usize,
    },
    /// A vector has a NaN or infinite component.
    #[error("{what}: component {index} is {value} (vectors must be finite)")]
    NotFinite {
        /// Which vector (a pattern key, or "query").
        what: String,
        /// The first bad component.
        index: usize,
        /// Its value.
        value: f32,
    },
    /// A vector is all zeros: it has no direction, so no cosine similarity.
    #[error("{what}: vector is all zeros")]
    ZeroVector {
        /// Which vector (a pattern key, or "query").
        what: String,
    },
    /// A search asked for `k = 0` results.
    #[error("search k must be at least 1")]
    ZeroK,
    /// A glob pattern does not parse.
    #[error("invalid glob {pattern:?}: {source}")]
    InvalidGlob {
        /// The pattern as given.
        pattern: String,
        /// The parser's complaint.
        source: globset::Error,
    },
    /// A value could not be encoded with postcard.
    #[error("cannot encode the value of {key:?}: {source}")]
    Encode {
        /// The key being written.
        key: String,
        /// postcard's complaint.
        source: postcard::Error,
    },
    /// A stored value does not decode as the requested type.
    #[error("the value of {key:?} does not decode as the requested type: {source}")]
    Decode {
        /// The key being read.
        key: String,
        /// postcard's complaint.
        source: postcard::Error,
    },
    /// The embedder could not embed a text.
    #[error("embedding failed: {0}")]
    Embed(#[source] BoxError),
    /// The configuration is invalid.
    #[error("invalid memory config `{field}`: {reason}")]
    Config {
        /// The offending field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// FAISS refused an operation.
    #[error("FAISS {operation}: {source}")]
    Index {
        /// What was being done.
        operation: &'static str,
        /// FAISS's error.
        source: faiss::error::Error,
    },
    /// FAISS failed where the `faiss` crate is bypassed (a search under a shared lock).
    #[error("FAISS {operation}: {reason}")]
    Faiss {
        /// What was being done.
        operation: &'static str,
        /// FAISS's message.
        reason: String,
    },
    /// The on-disk store failed.
    #[error("store {}: {source}", path.display())]
    Storage {
        /// The database file.
        path: PathBuf,
        /// redb's error.
        source: Box<redb::Error>,
    },
    /// The store was written in redb's older on-disk format (by apiary built on redb 2),
    /// which this build does not open; `apiary upgrade <dir>` converts it in place.
    #[error(
        "store {} is in redb's file format {found}, which this build no longer opens; \
         convert it with `apiary upgrade {}`",
        path.display(),
        path.parent().unwrap_or(path.as_path()).display()
    )]
    OldFormat {
        /// The database file.
        path: PathBuf,
        /// redb's file format number found in its header.
        found: u8,
    },
    /// A write was not stored: its transaction failed, or an earlier one did. After a failed
    /// commit the memory takes no more writes (what reached the disk is no longer known);
    /// reads go on, and reopening the memory recovers from the last durable commit.
    #[error("store {}: write not stored: {reason}", path.display())]
    WriteFailed {
        /// The database file.
        path: PathBuf,
        /// The commit's failure.
        reason: String,
    },
    /// A record in the on-disk store does not decode (the file was altered or corrupted).
    #[error("store {}: corrupt record {record}: {source}", path.display())]
    CorruptRecord {
        /// The database file.
        path: PathBuf,
        /// Which record.
        record: String,
        /// postcard's complaint.
        source: postcard::Error,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A background task (training, a store write) panicked.
    #[error("{what} panicked: {reason}")]
    Panicked {
        /// Which task.
        what: &'static str,
        /// The panic.
        reason: String,
    },
    /// [`Memory::retune`](crate::Memory::retune) has nothing to tune or nothing to tune on.
    #[error("cannot re-tune the pattern index: {reason}")]
    CannotRetune {
        /// Why: the index is exact, has no search parameter, or no query was searched yet.
        reason: String,
    },
    /// The memory actor has stopped.
    #[error("the memory actor has stopped")]
    Closed,
}

impl MemoryError {
    pub(crate) fn index(operation: &'static str) -> impl FnOnce(faiss::error::Error) -> Self {
        move |source| MemoryError::Index { operation, source }
    }

    /// Opening a database: an old on-disk format gets its own error saying how to convert it.
    pub(crate) fn opening(path: &std::path::Path) -> impl FnOnce(redb::DatabaseError) -> Self + '_ {
        move |e| match e {
            redb::DatabaseError::UpgradeRequired(found) => MemoryError::OldFormat {
                path: path.to_path_buf(),
                found,
            },
            other => MemoryError::storage(path)(other),
        }
    }

    pub(crate) fn storage<E: Into<redb::Error>>(
        path: &std::path::Path,
    ) -> impl FnOnce(E) -> Self + '_ {
        move |source| MemoryError::Storage {
            path: path.to_path_buf(),
            source: Box::new(source.into()),
        }
    }

    pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| MemoryError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
