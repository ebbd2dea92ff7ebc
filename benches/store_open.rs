//! What verifying every page's checksum at open costs (the journal and the memory open their
//! redb files with `set_check_integrity_on_open`), against a plain open of the same file in the
//! same run: a file the size of a memory store of 100,000 384-d vectors.
//!
//! Run: `cargo bench --bench store_open`

use criterion::{criterion_group, criterion_main, Criterion};
use redb::{Database, TableDefinition};

const PATTERNS: TableDefinition<u64, &[u8]> = TableDefinition::new("patterns");

fn store_open(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory.redb");
    {
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut patterns = txn.open_table(PATTERNS).unwrap();
            let vector = vec![7u8; 384 * 4];
            for id in 0..100_000u64 {
                patterns.insert(id, vector.as_slice()).unwrap();
            }
        }
        txn.commit().unwrap();
    }
    let size = std::fs::metadata(&path).unwrap().len();
    eprintln!("store_open: a {} MB file", size / 1_000_000);
    let mut group = c.benchmark_group("store_open_100k_vectors");
    group.sample_size(10);
    group.bench_function("plain open (baseline)", |b| {
        b.iter(|| Database::create(&path).unwrap())
    });
    group.bench_function("open verifying checksums", |b| {
        b.iter(|| {
            Database::builder()
                .set_check_integrity_on_open(true)
                .create(&path)
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, store_open);
criterion_main!(benches);
