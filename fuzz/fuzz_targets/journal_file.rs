//! A journal opened on a damaged file: a valid journal (fuzz/seeds/journal.redb, written by
//! the real code) with the input's damage applied - each 5 bytes set one byte of the file
//! (4 for the offset, 1 for the value), and a first byte of 0xFF truncates it at the first
//! offset - then inspected and opened as `apiary journal` and `apiary run --resume` would.
//! An error naming the file is fine; a panic that escapes is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;

const SEED: &[u8] = include_bytes!("../seeds/journal.redb");

/// redb asserts (panics) on some damaged files, and the store catches that and reports the
/// file as damaged. libFuzzer's hook would abort at the panic itself, caught or not; this one
/// only prints it, and a panic that is not caught still aborts at the target's boundary.
fn report_panics_without_aborting() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| std::panic::set_hook(Box::new(|info| eprintln!("panic: {info}"))));
}

/// The seed with `damage` applied.
fn damaged(seed: &[u8], damage: &[u8]) -> Vec<u8> {
    let mut file = seed.to_vec();
    let (truncate, edits) = match damage.split_first() {
        Some((0xFF, rest)) => (true, rest),
        _ => (false, damage),
    };
    for edit in edits.chunks_exact(5) {
        let at = u32::from_le_bytes([edit[0], edit[1], edit[2], edit[3]]) as usize % file.len();
        if truncate {
            file.truncate(at);
            break;
        }
        file[at] = edit[4];
    }
    file
}

fuzz_target!(|data: &[u8]| {
    report_panics_without_aborting();
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("journal.redb"), damaged(SEED, data)).expect("write");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let _ = apiary_journal::Journal::inspect(dir.path()).await;
        let config = apiary_journal::JournalConfig::new(dir.path(), "seed");
        if let Ok(journal) = apiary_journal::Journal::open(config).await {
            for task in journal.tasks().unwrap_or_default() {
                let _ = journal.outcome::<u64>(task.id);
                let _ = journal.steps(task.id);
            }
            let _ = journal.outcome_by_key::<u64>("job-3");
            let _ = journal.tally("runs/last-started");
            let _ = journal.add_to_tally("runs/last-started", 1).await;
        }
    });
});
