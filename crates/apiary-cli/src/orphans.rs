//! Process groups of shell steps, noted under the state directory while they run, so that a
//! run started after `apiary` was killed first stops what the killed run left running.
//!
//! A SIGKILL'd parent does not take its children with it: the `sh -c` of the step in flight
//! (and whatever it started) runs on, and a resumed run would start the same step beside its
//! own orphan. Each shell step writes `running/<step>.<pgid>` (holding the group leader's start
//! time) when it starts and removes it when it ends; the next run with the same `--state`
//! kills the groups still named there. The start time guards against a recycled pid. The
//! command itself waits for the note (its `sh` reads a line apiary writes after it), so no
//! kill, however timed, leaves a group running that is not noted.

use std::path::{Path, PathBuf};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// The `running/` directory of a state directory.
#[derive(Debug, Clone)]
pub(crate) struct Orphans {
    dir: PathBuf,
}

/// A group noted as running; the note is removed when this is dropped.
#[derive(Debug)]
pub(crate) struct Noted(PathBuf);

impl Drop for Noted {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Orphans {
    pub(crate) fn new(state: &Path) -> Self {
        Self {
            dir: state.join("running"),
        }
    }

    /// Notes that `step` runs as process group `pgid`.
    pub(crate) fn note(&self, step: &str, pgid: i32) -> std::io::Result<Noted> {
        std::fs::create_dir_all(&self.dir)?;
        let path = self.dir.join(format!("{step}.{pgid}"));
        let started = start_time(pgid).unwrap_or_default();
        std::fs::write(&path, started)?;
        Ok(Noted(path))
    }

    /// Kills every group a killed run left noted; returns `(step, pgid)` of each.
    pub(crate) fn reap(&self) -> Vec<(String, i32)> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut killed = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some((step, pgid)) = name
                .rsplit_once('.')
                .and_then(|(s, p)| Some((s.to_owned(), p.parse::<i32>().ok()?)))
            else {
                continue;
            };
            let noted = std::fs::read_to_string(&path).unwrap_or_default();
            // A leader still alive with another start time is a recycled pid: not ours. A
            // leader gone while members remain keeps its pgid reserved, so killpg is safe.
            let recycled = start_time(pgid).is_some_and(|now| now != noted);
            if !recycled && killpg(Pid::from_raw(pgid), Signal::SIGKILL).is_ok() {
                killed.push((step, pgid));
            }
            let _ = std::fs::remove_file(&path);
        }
        killed
    }
}

/// Field 22 of `/proc/<pid>/stat`: when the process started, in clock ticks since boot.
fn start_time(pid: i32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19).map(str::to_owned)
}
