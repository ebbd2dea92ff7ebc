//! The memory opened on damaged files. The first byte picks what is damaged: even, the
//! store - a valid one (fuzz/seeds/memory.redb, written by the real code) with each 5 bytes
//! of the rest setting one byte of it (4 for the offset, 1 for the value); odd, the saved
//! index's metadata (`patterns.faiss.meta`, the rest as it is, beside an index file of the
//! same bytes). Then the memory is opened, read and written. An error naming the file is
//! fine; a panic that escapes is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;

const SEED: &[u8] = include_bytes!("../seeds/memory.redb");

/// See `journal_file`: caught panics are printed, not turned into aborts.
fn report_panics_without_aborting() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| std::panic::set_hook(Box::new(|info| eprintln!("panic: {info}"))));
}

fuzz_target!(|data: &[u8]| {
    report_panics_without_aborting();
    let Some((&head, rest)) = data.split_first() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    if head & 1 == 0 {
        let mut file = SEED.to_vec();
        for edit in rest.chunks_exact(5) {
            let at = u32::from_le_bytes([edit[0], edit[1], edit[2], edit[3]]) as usize % file.len();
            file[at] = edit[4];
        }
        std::fs::write(dir.path().join("memory.redb"), file).expect("write");
    } else {
        std::fs::write(dir.path().join("patterns.faiss.meta"), rest).expect("write");
        std::fs::write(dir.path().join("patterns.faiss"), rest).expect("write");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let config = apiary_memory::MemoryConfig::new(8).persist_to(dir.path());
        if let Ok(memory) = apiary_memory::Memory::open(config).await {
            let _ = memory.list("").await;
            let _ = memory.get::<String>("lessons/linker").await;
            let _ = memory.put("lessons/new", "x").await;
            let _ = memory.pattern_count().await;
            memory.close().await;
        }
    });
});
