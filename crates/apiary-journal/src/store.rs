//! The journal on disk: one redb database of tasks, outcomes, idempotency keys and step
//! results. Records are postcard-encoded; a record that no longer decodes is reported with
//! its name and kept.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::record::{OutcomeRecord, TaskRecord};
use crate::JournalError;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const TASKS: TableDefinition<u64, &[u8]> = TableDefinition::new("tasks");
const OUTCOMES: TableDefinition<u64, &[u8]> = TableDefinition::new("outcomes");
const KEYS: TableDefinition<&str, u64> = TableDefinition::new("keys");
// `apiary upgrade` (apiary-cli's upgrade.rs) re-encodes this table from redb 2's tuple format.
const STEPS: TableDefinition<(u64, &str), &[u8]> = TableDefinition::new("steps");
const TALLIES: TableDefinition<&str, u64> = TableDefinition::new("tallies");

/// The format this build writes and reads.
pub(crate) const FORMAT: u32 = 1;

/// One record to write; a batch of them is one durable transaction.
#[derive(Debug)]
pub(crate) enum Write {
    /// A task as submitted (and its idempotency key).
    Task {
        id: u64,
        record: Vec<u8>,
        key: Option<String>,
    },
    /// How a task ended; the first one recorded for a task wins.
    Outcome { id: u64, record: Vec<u8> },
    /// A step's result; the first one recorded wins.
    Step {
        id: u64,
        name: String,
        result: Vec<u8>,
    },
    /// An amount added to a named running total (saturating); never removed by retention.
    Tally { name: String, add: u64 },
}

/// A task recorded with no outcome when the journal was opened.
pub(crate) type Pending = (u64, Result<TaskRecord, JournalError>);

/// What the file held at open.
pub(crate) struct Opened {
    pub(crate) next_id: u64,
    pub(crate) pending: Vec<Pending>,
}

/// One task in the journal, for listings.
pub(crate) struct Listed {
    pub(crate) id: u64,
    pub(crate) task: Result<TaskRecord, JournalError>,
    pub(crate) outcome: Option<Result<OutcomeRecord, JournalError>>,
}

#[derive(Debug)]
pub(crate) struct Store {
    db: Database,
    pub(crate) path: PathBuf,
}

impl Store {
    pub(crate) fn file(dir: &Path) -> PathBuf {
        dir.join("journal.redb")
    }

    /// Opens an existing journal in `dir` whatever its swarm, to read it; returns the swarm's
    /// name.
    pub(crate) fn open_existing(dir: &Path) -> Result<(Self, String), JournalError> {
        let path = Self::file(dir);
        if !path.exists() {
            return Err(JournalError::Io {
                path,
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no journal here"),
            });
        }
        guard_damaged(&path, || {
            let store = Self {
                db: Self::database(&path, false)?,
                path: path.clone(),
            };
            let swarm = {
                let txn = store
                    .db
                    .begin_read()
                    .map_err(JournalError::storage(&path))?;
                let meta = txn.open_table(META).map_err(JournalError::storage(&path))?;
                let name = meta.get("swarm").map_err(JournalError::storage(&path))?;
                name.map(|v| String::from_utf8_lossy(v.value()).into_owned())
                    .unwrap_or_default()
            };
            store.check_or_stamp(&swarm)?;
            store.read_open()?;
            Ok((store, swarm))
        })
    }

    /// Opens (or creates) the journal of `swarm` in `dir`.
    pub(crate) fn open(dir: &Path, swarm: &str) -> Result<(Self, Opened), JournalError> {
        std::fs::create_dir_all(dir).map_err(|source| JournalError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let path = Self::file(dir);
        guard_damaged(&path, || {
            let store = Self {
                db: Self::database(&path, true)?,
                path: path.clone(),
            };
            store.check_or_stamp(swarm)?;
            let opened = store.read_open()?;
            Ok((store, opened))
        })
    }

    /// Opens the database file, verifying every page's checksum: without that, redb trusts a
    /// damaged page and may panic on it (the `journal_file` fuzz target found dozens of ways).
    fn database(path: &Path, create: bool) -> Result<Database, JournalError> {
        let mut builder = Database::builder();
        builder.set_check_integrity_on_open(true);
        if create {
            builder.create(path)
        } else {
            builder.open(path)
        }
        .map_err(JournalError::opening(path))
    }

    /// A new file gets this build's format and the swarm's name; an existing one must have
    /// both.
    fn check_or_stamp(&self, swarm: &str) -> Result<(), JournalError> {
        let path = &self.path;
        let txn = self.db.begin_write().map_err(JournalError::storage(path))?;
        {
            let mut meta = txn.open_table(META).map_err(JournalError::storage(path))?;
            let format = meta
                .get("format")
                .map_err(JournalError::storage(path))?
                .map(|v| v.value().to_vec());
            match format {
                None => {
                    meta.insert("format", FORMAT.to_le_bytes().as_slice())
                        .map_err(JournalError::storage(path))?;
                    meta.insert("swarm", swarm.as_bytes())
                        .map_err(JournalError::storage(path))?;
                }
                Some(bytes) => {
                    let found = <[u8; 4]>::try_from(bytes.as_slice())
                        .map(u32::from_le_bytes)
                        .map_err(|_| JournalError::Undecodable {
                            path: path.clone(),
                            record: "format stamp".into(),
                            reason: format!("{} bytes, not 4", bytes.len()),
                        })?;
                    if found != FORMAT {
                        return Err(JournalError::Version {
                            path: path.clone(),
                            found,
                            expected: FORMAT,
                        });
                    }
                    let owner = meta
                        .get("swarm")
                        .map_err(JournalError::storage(path))?
                        .map(|v| String::from_utf8_lossy(v.value()).into_owned())
                        .unwrap_or_default();
                    if owner != swarm {
                        return Err(JournalError::Foreign {
                            path: path.clone(),
                            expected: swarm.to_owned(),
                            found: owner,
                        });
                    }
                }
            }
            // Create the other tables so a fresh journal reads back empty.
            txn.open_table(TASKS).map_err(JournalError::storage(path))?;
            txn.open_table(OUTCOMES)
                .map_err(JournalError::storage(path))?;
            txn.open_table(KEYS).map_err(JournalError::storage(path))?;
            txn.open_table(STEPS).map_err(JournalError::storage(path))?;
            txn.open_table(TALLIES)
                .map_err(JournalError::storage(path))?;
        }
        txn.commit().map_err(JournalError::storage(path))
    }

    fn read_open(&self) -> Result<Opened, JournalError> {
        let path = &self.path;
        let txn = self.db.begin_read().map_err(JournalError::storage(path))?;
        let tasks = txn.open_table(TASKS).map_err(JournalError::storage(path))?;
        let outcomes = txn
            .open_table(OUTCOMES)
            .map_err(JournalError::storage(path))?;
        let next_id = match tasks.last().map_err(JournalError::storage(path))? {
            None => 1,
            Some((id, _)) => {
                id.value()
                    .checked_add(1)
                    .ok_or_else(|| JournalError::Undecodable {
                        path: path.clone(),
                        record: "the task numbers".to_owned(),
                        reason: "the last task is numbered u64::MAX: no number is left".to_owned(),
                    })?
            }
        };
        let mut pending = Vec::new();
        for row in tasks.iter().map_err(JournalError::storage(path))? {
            let (id, bytes) = row.map_err(JournalError::storage(path))?;
            let id = id.value();
            if outcomes
                .get(id)
                .map_err(JournalError::storage(path))?
                .is_none()
            {
                pending.push((id, decode(path, &format!("task {id}"), bytes.value())));
            }
        }
        Ok(Opened { next_id, pending })
    }

    /// Applies a batch of writes in one transaction, durable (fsync) before it returns.
    pub(crate) fn commit(&self, writes: &[Write]) -> Result<(), JournalError> {
        let path = &self.path;
        let txn = self.db.begin_write().map_err(JournalError::storage(path))?;
        {
            let mut tasks = txn.open_table(TASKS).map_err(JournalError::storage(path))?;
            let mut outcomes = txn
                .open_table(OUTCOMES)
                .map_err(JournalError::storage(path))?;
            let mut keys = txn.open_table(KEYS).map_err(JournalError::storage(path))?;
            let mut steps = txn.open_table(STEPS).map_err(JournalError::storage(path))?;
            let mut tallies = txn
                .open_table(TALLIES)
                .map_err(JournalError::storage(path))?;
            for write in writes {
                match write {
                    Write::Task { id, record, key } => {
                        tasks
                            .insert(*id, record.as_slice())
                            .map_err(JournalError::storage(path))?;
                        if let Some(key) = key {
                            keys.insert(key.as_str(), *id)
                                .map_err(JournalError::storage(path))?;
                        }
                    }
                    Write::Outcome { id, record } => {
                        let known = outcomes
                            .get(*id)
                            .map_err(JournalError::storage(path))?
                            .is_some();
                        if !known {
                            outcomes
                                .insert(*id, record.as_slice())
                                .map_err(JournalError::storage(path))?;
                        }
                    }
                    Write::Step { id, name, result } => {
                        let known = steps
                            .get((*id, name.as_str()))
                            .map_err(JournalError::storage(path))?
                            .is_some();
                        if !known {
                            steps
                                .insert((*id, name.as_str()), result.as_slice())
                                .map_err(JournalError::storage(path))?;
                        }
                    }
                    Write::Tally { name, add } => {
                        let now = tallies
                            .get(name.as_str())
                            .map_err(JournalError::storage(path))?
                            .map_or(0, |v| v.value());
                        tallies
                            .insert(name.as_str(), now.saturating_add(*add))
                            .map_err(JournalError::storage(path))?;
                    }
                }
            }
        }
        txn.commit().map_err(JournalError::storage(path))
    }

    /// How task `id` ended, if it has.
    pub(crate) fn outcome(&self, id: u64) -> Result<Option<OutcomeRecord>, JournalError> {
        let path = &self.path;
        let txn = self.db.begin_read().map_err(JournalError::storage(path))?;
        let outcomes = txn
            .open_table(OUTCOMES)
            .map_err(JournalError::storage(path))?;
        let found = outcomes.get(id).map_err(JournalError::storage(path))?;
        found
            .map(|v| decode(path, &format!("outcome of task {id}"), v.value()))
            .transpose()
    }

    /// The task recorded under an idempotency key, if any.
    pub(crate) fn key(&self, key: &str) -> Result<Option<u64>, JournalError> {
        let path = &self.path;
        let txn = self.db.begin_read().map_err(JournalError::storage(path))?;
        let keys = txn.open_table(KEYS).map_err(JournalError::storage(path))?;
        let found = keys.get(key).map_err(JournalError::storage(path))?;
        Ok(found.map(|v| v.value()))
    }

    /// A recorded step result.
    pub(crate) fn step(&self, id: u64, name: &str) -> Result<Option<Vec<u8>>, JournalError> {
        let path = &self.path;
        let txn = self.db.begin_read().map_err(JournalError::storage(path))?;
        let steps = txn.open_table(STEPS).map_err(JournalError::storage(path))?;
        let found = steps.get((id, name)).map_err(JournalError::storage(path))?;
        Ok(found.map(|v| v.value().to_vec()))
    }

    /// The running total `name` (0 if nothing was ever added).
    pub(crate) fn tally(&self, name: &str) -> Result<u64, JournalError> {
        let path = &self.path;
        let txn = self.db.begin_read().map_err(JournalError::storage(path))?;
        let tallies = match txn.open_table(TALLIES) {
            Ok(t) => t,
            // A journal written before tallies existed has none.
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
            Err(e) => return Err(JournalError::storage(path)(e)),
        };
        let found = tallies.get(name).map_err(JournalError::storage(path))?;
        Ok(found.map_or(0, |v| v.value()))
    }

    /// The names of the steps recorded for task `id`.
    pub(crate) fn steps(&self, id: u64) -> Result<Vec<String>, JournalError> {
        let path = &self.path;
        let txn = self.db.begin_read().map_err(JournalError::storage(path))?;
        let steps = txn.open_table(STEPS).map_err(JournalError::storage(path))?;
        let range = steps
            .range((id, "")..(id + 1, ""))
            .map_err(JournalError::storage(path))?;
        let mut names = Vec::new();
        for row in range {
            let (k, _) = row.map_err(JournalError::storage(path))?;
            names.push(k.value().1.to_owned());
        }
        Ok(names)
    }

    /// Every task in the journal, in submission order, with its outcome if it has one.
    pub(crate) fn list(&self) -> Result<Vec<Listed>, JournalError> {
        let path = &self.path;
        let txn = self.db.begin_read().map_err(JournalError::storage(path))?;
        let tasks = txn.open_table(TASKS).map_err(JournalError::storage(path))?;
        let outcomes = txn
            .open_table(OUTCOMES)
            .map_err(JournalError::storage(path))?;
        let mut listed = Vec::new();
        for row in tasks.iter().map_err(JournalError::storage(path))? {
            let (id, bytes) = row.map_err(JournalError::storage(path))?;
            let id = id.value();
            let outcome = outcomes
                .get(id)
                .map_err(JournalError::storage(path))?
                .map(|v| decode(path, &format!("outcome of task {id}"), v.value()));
            listed.push(Listed {
                id,
                task: decode(path, &format!("task {id}"), bytes.value()),
                outcome,
            });
        }
        Ok(listed)
    }

    /// Removes finished tasks (their task, outcome, key and steps), oldest first, beyond the
    /// newest `keep`, and any that ended before `ended_before_ms`. Returns how many went.
    pub(crate) fn compact(
        &self,
        keep: Option<usize>,
        ended_before_ms: Option<u64>,
    ) -> Result<usize, JournalError> {
        let path = &self.path;
        let txn = self.db.begin_write().map_err(JournalError::storage(path))?;
        let mut removed = 0;
        {
            let mut tasks = txn.open_table(TASKS).map_err(JournalError::storage(path))?;
            let mut outcomes = txn
                .open_table(OUTCOMES)
                .map_err(JournalError::storage(path))?;
            let mut keys = txn.open_table(KEYS).map_err(JournalError::storage(path))?;
            let mut steps = txn.open_table(STEPS).map_err(JournalError::storage(path))?;
            let finished = outcomes.len().map_err(JournalError::storage(path))? as usize;
            let mut over = keep.map_or(0, |k| finished.saturating_sub(k));
            let mut doomed = Vec::new();
            for row in outcomes.iter().map_err(JournalError::storage(path))? {
                let (id, bytes) = row.map_err(JournalError::storage(path))?;
                let old = ended_before_ms.is_some_and(|before| {
                    postcard::from_bytes::<OutcomeRecord>(bytes.value())
                        .is_ok_and(|o| o.ended_ms < before)
                });
                if over == 0 && !old {
                    if ended_before_ms.is_none() {
                        break;
                    }
                    continue;
                }
                over = over.saturating_sub(1);
                doomed.push(id.value());
            }
            for id in doomed {
                outcomes.remove(id).map_err(JournalError::storage(path))?;
                let task = tasks.remove(id).map_err(JournalError::storage(path))?;
                if let Some(key) = task
                    .and_then(|t| postcard::from_bytes::<TaskRecord>(t.value()).ok())
                    .and_then(|t| t.key)
                {
                    keys.remove(key.as_str())
                        .map_err(JournalError::storage(path))?;
                }
                let names: Vec<String> = steps
                    .range((id, "")..(id + 1, ""))
                    .map_err(JournalError::storage(path))?
                    .filter_map(Result::ok)
                    .map(|(k, _)| k.value().1.to_owned())
                    .collect();
                for name in names {
                    steps
                        .remove((id, name.as_str()))
                        .map_err(JournalError::storage(path))?;
                }
                removed += 1;
            }
        }
        txn.commit().map_err(JournalError::storage(path))?;
        Ok(removed)
    }
}

fn decode<T: serde::de::DeserializeOwned>(
    path: &Path,
    record: &str,
    bytes: &[u8],
) -> Result<T, JournalError> {
    postcard::from_bytes(bytes).map_err(|e| JournalError::Undecodable {
        path: path.to_owned(),
        record: record.to_owned(),
        reason: e.to_string(),
    })
}

/// Runs `open` on the journal file at `path`, turning a panic into an error naming the file.
/// The open verifies every page's checksum (`set_check_integrity_on_open`), so damage is
/// redb's error; without that check redb panics on damaged pages (the `journal_file` fuzz
/// target found dozens of ways), and this guard stays for whatever slips past it.
fn guard_damaged<R>(
    path: &Path,
    open: impl FnOnce() -> Result<R, JournalError>,
) -> Result<R, JournalError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(open)).unwrap_or_else(|panic| {
        let reason = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".to_owned());
        Err(JournalError::Storage {
            path: path.to_owned(),
            source: format!("the file is damaged (redb: {reason})").into(),
        })
    })
}
