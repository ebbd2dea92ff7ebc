//! `apiary upgrade DIR...`: converts the journal (`journal.redb`) and memory store
//! (`memory.redb`) in each directory from the file format of redb 2 (what apiary wrote before it
//! moved to redb 4) to the format this build opens.
//!
//! Opening never converts: a file in the old format is refused with an error naming it, and
//! this command is the one explicit step that rewrites it. The conversion is redb 2.6's own
//! [`upgrade`](redb2::Database::upgrade), which trusts the file: run it on files apiary wrote,
//! not on damaged ones (redb 2 may abort on those; that is why apiary moved to redb 4).

use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// The database files apiary keeps, by the directory option that holds them.
const FILES: [(&str, &str); 2] = [
    ("journal.redb", "run --state"),
    ("memory.redb", "run --memory-dir"),
];

/// What became of one file.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Upgraded {
    /// It was in the old format and now is in the current one.
    Converted,
    /// It was already in the current format; untouched.
    Current,
}

/// Upgrades the apiary files in each of `dirs`, printing one line per file.
pub(crate) fn upgrade(dirs: &[PathBuf]) -> anyhow::Result<bool> {
    for dir in dirs {
        let mut found = false;
        for (name, _) in FILES {
            let path = dir.join(name);
            if !path.exists() {
                continue;
            }
            found = true;
            let result = upgrade_file(&path)?;
            let said = match result {
                Upgraded::Converted => "converted to the current format",
                Upgraded::Current => "already in the current format",
            };
            println!("{}: {said}", path.display());
        }
        anyhow::ensure!(
            found,
            "{}: no journal.redb ({}) or memory.redb ({}) to upgrade",
            dir.display(),
            FILES[0].1,
            FILES[1].1
        );
    }
    Ok(true)
}

/// Converts one redb file if it is in redb 2's format, and checks that this build opens it.
///
/// The conversion works on a copy beside the file and renames it over the file once done, so
/// an interrupted upgrade leaves the original as it was.
pub(crate) fn upgrade_file(path: &Path) -> anyhow::Result<Upgraded> {
    match redb::Database::open(path) {
        Ok(_) => return Ok(Upgraded::Current),
        Err(redb::DatabaseError::UpgradeRequired(_)) => {}
        Err(e) => return Err(e).with_context(|| format!("{}: cannot open", path.display())),
    }
    let mut work = path.as_os_str().to_owned();
    work.push(".upgrading");
    let work = PathBuf::from(work);
    std::fs::copy(path, &work).with_context(|| format!("cannot copy to {}", work.display()))?;
    if let Err(e) = convert(&work) {
        let _ = std::fs::remove_file(&work);
        return Err(e.context(format!(
            "{}: conversion failed; the file is unchanged",
            path.display()
        )));
    }
    std::fs::rename(&work, path)
        .with_context(|| format!("cannot rename {} to {}", work.display(), path.display()))?;
    Ok(Upgraded::Converted)
}

/// The journal's steps table: keyed by a variable-width tuple, whose encoding redb 3 changed,
/// so its rows are read with redb 2 and written again with redb 4. (Every other table of the
/// journal and the memory has fixed-width or non-tuple keys and values, which kept their
/// encoding.) Keep in step with apiary-journal's `STEPS`.
const STEPS: &str = "steps";

fn convert(work: &Path) -> anyhow::Result<()> {
    let steps = {
        let mut old = redb2::Database::open(work)?;
        let steps = old_steps(&old)?;
        old.upgrade()?;
        steps
    };
    let db = redb::Database::open(work)?;
    if let Some(rows) = steps {
        let table: redb::TableDefinition<(u64, &str), &[u8]> = redb::TableDefinition::new(STEPS);
        let txn = db.begin_write()?;
        txn.delete_table(table)?;
        {
            let mut steps = txn.open_table(table)?;
            for (id, name, value) in &rows {
                steps.insert((*id, name.as_str()), value.as_slice())?;
            }
        }
        txn.commit()?;
    }
    // What this build reads: the re-encoded table opens with its type.
    let table: redb::TableDefinition<(u64, &str), &[u8]> = redb::TableDefinition::new(STEPS);
    match redb::ReadableDatabase::begin_read(&db)?.open_table(table) {
        Ok(_) | Err(redb::TableError::TableDoesNotExist(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// A row of the steps table: task number, step name, recorded result.
type StepRow = (u64, String, Vec<u8>);

/// The steps table's rows in redb 2's encoding, if the file has that table.
fn old_steps(old: &redb2::Database) -> anyhow::Result<Option<Vec<StepRow>>> {
    use redb2::ReadableTable as _;
    let table: redb2::TableDefinition<(u64, &str), &[u8]> = redb2::TableDefinition::new(STEPS);
    let txn = old.begin_read()?;
    let steps = match txn.open_table(table) {
        Ok(steps) => steps,
        Err(redb2::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut rows = Vec::new();
    for row in steps.iter()? {
        let (key, value) = row?;
        let (id, name) = key.value();
        rows.push((id, name.to_owned(), value.value().to_vec()));
    }
    Ok(Some(rows))
}
