//! A census of a source tree by a swarm of three agent kinds, each with its own task and
//! output types.
//!
//! `scanner` walks the tree (a directory in, its files out), four `counter` replicas read and
//! count files in parallel (a file in, a tally out), and `census` fans the files out to the
//! counters through typed references from its context and sums what comes back.
//! A hook counts which replica did what, from the swarm's own events.
//!
//! Run: `cargo run --example census -- [DIR]` (default: the current directory).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use apiary::prelude::*;
use apiary::BoxError;

#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    files: u64,
    lines: u64,
    words: u64,
    bytes: u64,
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, o: Self) {
        self.files += o.files;
        self.lines += o.lines;
        self.words += o.words;
        self.bytes += o.bytes;
    }
}

/// Lists the files under a directory.
struct Scanner;

impl Agent for Scanner {
    type Task = PathBuf;
    type Output = Vec<PathBuf>;
    type Error = std::io::Error;

    async fn handle(&mut self, root: PathBuf, _: &Ctx<Self>) -> std::io::Result<Vec<PathBuf>> {
        let mut files = Vec::new();
        walk(&root, &mut files)?;
        files.sort();
        Ok(files)
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name == "target" || name.to_string_lossy().starts_with('.') {
            continue;
        }
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk(&entry.path(), out)?;
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
    Ok(())
}

/// Counts one file's lines, words and bytes.
struct Counter;

impl Agent for Counter {
    type Task = PathBuf;
    type Output = Tally;
    type Error = std::io::Error;

    async fn handle(&mut self, path: PathBuf, _: &Ctx<Self>) -> std::io::Result<Tally> {
        let bytes = tokio::fs::read(&path).await?;
        let text = String::from_utf8_lossy(&bytes);
        Ok(Tally {
            files: 1,
            lines: text.lines().count() as u64,
            words: text.split_whitespace().count() as u64,
            bytes: bytes.len() as u64,
        })
    }
}

/// Takes the census of a directory: asks the scanner for its files, fans them out to the
/// counters and sums the tallies by extension.
struct Census;

impl Agent for Census {
    type Task = PathBuf;
    type Output = BTreeMap<String, Tally>;
    type Error = BoxError;

    async fn handle(&mut self, root: PathBuf, ctx: &Ctx<Self>) -> Result<Self::Output, BoxError> {
        // Each peer by its own types, checked once here; the compiler checks the rest.
        let scanner = ctx.agent::<PathBuf, Vec<PathBuf>>("scanner")?;
        let counter = ctx.agent::<PathBuf, Tally>("counter")?;
        let files = scanner.submit(root).await?.await?;
        // Fan out: every submit waits for room in the counters' bounded queue.
        let mut pending = Vec::with_capacity(files.len());
        for file in files {
            let ext = file
                .extension()
                .map_or_else(|| "(none)".to_owned(), |e| e.to_string_lossy().into_owned());
            pending.push((ext, counter.submit(file).await?));
        }
        let mut by_ext: BTreeMap<String, Tally> = BTreeMap::new();
        for (ext, handle) in pending {
            *by_ext.entry(ext).or_default() += handle.await?;
        }
        Ok(by_ext)
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let root = std::env::args()
        .nth(1)
        .map_or_else(|| PathBuf::from("."), PathBuf::from);
    let per_replica: Arc<Mutex<BTreeMap<(String, usize), u64>>> = Arc::default();
    let seen = per_replica.clone();

    let started = Instant::now();
    let swarm = Swarm::builder()
        .queue_capacity(32)
        .hook(move |e: &SwarmEvent| match e.kind() {
            EventKind::AgentSpawned {
                agent,
                replica,
                kind,
            } => {
                println!("spawned  {agent}#{replica} ({kind})");
            }
            EventKind::TaskFinished { agent, replica, .. } => {
                *seen
                    .lock()
                    .unwrap()
                    .entry((agent.to_string(), *replica))
                    .or_default() += 1;
            }
            _ => {}
        })
        .agent(AgentSpec::new("scanner").kind("fs-walk"), || Scanner)
        .agent(AgentSpec::new("counter").kind("wc").replicas(4), || Counter)
        .agent(
            AgentSpec::new("census")
                .kind("fan-out")
                .depends_on(["scanner", "counter"]),
            || Census,
        )
        .start()
        .await?;
    println!("swarm up in {:?}\n", started.elapsed());

    let t = Instant::now();
    let census = swarm.agent::<PathBuf, BTreeMap<String, Tally>>("census")?;
    let by_ext = census.submit(root.clone()).await?.await?;
    let elapsed = t.elapsed();
    swarm.shutdown().await;

    let mut rows: Vec<_> = by_ext.into_iter().collect();
    rows.sort_by_key(|(_, t)| std::cmp::Reverse(t.lines));
    println!(
        "{:<12} {:>7} {:>9} {:>10} {:>12}",
        "extension", "files", "lines", "words", "bytes"
    );
    let mut total = Tally::default();
    for (ext, t) in &rows {
        println!(
            "{ext:<12} {:>7} {:>9} {:>10} {:>12}",
            t.files, t.lines, t.words, t.bytes
        );
        total += *t;
    }
    println!(
        "{:<12} {:>7} {:>9} {:>10} {:>12}",
        "total", total.files, total.lines, total.words, total.bytes
    );
    println!("\ncensus of {} took {elapsed:?} (measured)", root.display());
    println!("\ntasks finished per agent replica (from the swarm's events):");
    for ((agent, replica), n) in per_replica.lock().unwrap().iter() {
        println!("  {agent}#{replica}: {n}");
    }
    Ok(())
}
