//! apiary's memory: one ractor actor holding a namespaced key/value store with TTLs and a
//! FAISS index of *patterns* (vector + key + metadata), optionally crash-safe on disk.
//!
//! - Keys are `namespace/name` paths; values are serde types encoded with postcard.
//! - Patterns are searched by cosine similarity. The index is exact (FAISS `Flat`) while the
//!   collection is small; past a threshold a quantized index (default `IVF{√n},PQ{d/2}x4fs`,
//!   fast-scan codes re-scored exactly; any `index_factory` string accepted) is trained on a
//!   blocking thread and swapped in, with its `nprobe` (or `efSearch`) tuned to the smallest
//!   value reaching a target recall measured against exact search. A compact mode keeps
//!   only PQ codes in the index and re-ranks exactly (from the store on disk when there is
//!   one, so RAM holds only the codes).
//! - Searches do not queue at the actor: they read the index under a shared lock on the
//!   caller's thread, side by side; the actor only takes the lock to write.
//! - With a directory, keys and vectors live in a redb database (a write is acknowledged only
//!   once committed to disk; writes that arrive together share one commit and its fsync)
//!   and the trained index is saved beside it with a checksum.
//! - Texts (in [`Pattern::text`] and [`Query::text`]) are embedded by the configured
//!   [`Embedder`], never inside the actor: in batches on tokio's blocking pool, or on the
//!   caller's task for a cheap one. The built-in [`HashingEmbedder`] needs no model and sees
//!   only shared words; with the `minilm` feature, `MiniLmEmbedder` runs all-MiniLM-L6-v2
//!   (sentence embeddings by meaning) in pure Rust from a local model directory.
//!
//! See [`Memory`] for an example.
//!
//! # Speed: build FAISS with SIMD
//!
//! FAISS is compiled from source (by faiss-sys, with cmake) with the C++ flags of your build.
//! By default those are generic x86-64, and searches run about 5x slower than with AVX2
//! (2.79 ms against 0.49 ms per search at p50, 40k real embeddings, default settings). Add
//! one line to the `.cargo/config.toml` of the project you build:
//!
//! ```toml
//! [env]
//! CXXFLAGS = "-mavx2 -mfma -mf16c -mpopcnt"
//! ```
//!
//! The build prints a warning when FAISS is built without them, `Memory::open` logs one
//! (through `tracing`) when the CPU could have used them, and [`faiss_has_simd`] tells.
//!
//! # Speed: inserts and glibc's per-thread heaps
//!
//! Each batch added to an IVF index makes FAISS allocate a 16 MiB block for its BLAS
//! results. On glibc, a thread other than the main one (the memory's actor runs on a runtime
//! worker) takes it from a heap of its own, which may give the block back after every add:
//! the next add touches fresh pages again. On the machine of `docs/benchmarks.md` that cost
//! up to 1.6 page faults per vector added in some runs, and none in others. If inserts
//! dominate and you see it (minor faults rising with every batch), `MALLOC_ARENA_MAX=1` in
//! the environment puts every thread on the main heap: in a test harness the faults of a
//! 1,000-vector add fell from about 2,000 to 20-33, and the add from 7.4 to 4.9 ms. It also
//! makes threads that allocate at once share one heap, so measure your own workload.
#![deny(missing_docs)]

mod actor;
mod clock;
mod config;
mod embedder;
mod error;
mod ffi;
mod index;
mod index_file;
mod key;
mod key_ids;
mod kv;
mod memory;
#[cfg(feature = "minilm")]
mod minilm;
mod patterns;
mod positions;
mod query_ring;
mod searchable;
mod simd;
mod stats;
mod store;
mod stored_vectors;
mod train;
mod vectors;
mod writer;

pub use config::{IndexConfig, MemoryConfig};
pub use embedder::{Embedder, HashingEmbedder};
pub use error::{BoxError, MemoryError};
pub use key::namespace_of;
pub use memory::Memory;
#[cfg(feature = "minilm")]
pub use minilm::{MiniLmEmbedder, ModelError};
pub use patterns::{Hit, Metadata, Pattern, Query};
pub use simd::faiss_has_simd;
pub use stats::{IndexOrigin, IndexStats, MemoryStats, TunedOn};
