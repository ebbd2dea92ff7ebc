use std::path::{Path, PathBuf};

use thiserror::Error;

/// Why the journal could not do what was asked. Every variant that concerns the file names
/// it, and one about a record names the record.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum JournalError {
    /// The directory or file could not be read or written.
    #[error("journal {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS's error.
        #[source]
        source: std::io::Error,
    },
    /// The database refused an operation or found itself damaged (redb's own checks).
    #[error("journal {path}: {source}")]
    Storage {
        /// The database file.
        path: PathBuf,
        /// redb's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The file was written by another version of the journal.
    #[error("journal {path} has format {found}; this build reads format {expected}")]
    Version {
        /// The database file.
        path: PathBuf,
        /// Its format.
        found: u32,
        /// The format this build writes.
        expected: u32,
    },
    /// The file was written in redb's older on-disk format (by apiary built on redb 2), which
    /// this build does not open; `apiary upgrade <dir>` converts it in place.
    #[error(
        "journal {path} is in redb's file format {found}, which this build no longer opens; \
         convert it with `apiary upgrade {dir}`",
        dir = path.parent().unwrap_or(path.as_path()).display()
    )]
    OldFormat {
        /// The database file.
        path: PathBuf,
        /// redb's file format number found in its header.
        found: u8,
    },
    /// The file belongs to another swarm.
    #[error("journal {path} belongs to swarm `{found}`, not `{expected}`")]
    Foreign {
        /// The database file.
        path: PathBuf,
        /// The swarm it was opened for.
        expected: String,
        /// The swarm that wrote it.
        found: String,
    },
    /// A record did not decode: the file is damaged, or the record's type changed since it was
    /// written. The record is kept, not deleted.
    #[error("journal {path}: {record} does not decode: {reason}")]
    Undecodable {
        /// The database file.
        path: PathBuf,
        /// Which record (`task 17`, `outcome of task 17`, `step 17/fetch#1`).
        record: String,
        /// The decoder's reason.
        reason: String,
    },
    /// A value could not be encoded for the journal.
    #[error("cannot journal {what}: {reason}")]
    Encode {
        /// What was being recorded.
        what: String,
        /// The encoder's reason.
        reason: String,
    },
    /// A task with this idempotency key was recorded but has not ended, and is not running in
    /// this process: resume its agent first.
    #[error("task with key {key:?} is recorded but not finished; resume agent `{agent}` first")]
    Pending {
        /// The key.
        key: String,
        /// Its agent.
        agent: String,
    },
    /// The journal's writer has stopped (the journal was closed, or its thread failed).
    #[error("journal {path} is closed")]
    Closed {
        /// The database file.
        path: PathBuf,
    },
}

impl JournalError {
    /// Opening a database: an old on-disk format gets its own error saying how to convert it.
    pub(crate) fn opening(path: &Path) -> impl FnOnce(redb::DatabaseError) -> Self + '_ {
        move |e| match e {
            redb::DatabaseError::UpgradeRequired(found) => Self::OldFormat {
                path: path.to_owned(),
                found,
            },
            other => Self::storage(path)(other),
        }
    }

    pub(crate) fn storage<E>(path: &Path) -> impl FnOnce(E) -> Self + '_
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        move |e| Self::Storage {
            path: path.to_owned(),
            source: Box::new(e),
        }
    }
}
