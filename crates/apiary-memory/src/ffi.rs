//! The one place this crate calls FAISS's C API itself: a search through a shared reference.
//!
//! The `faiss` crate's `Index::search` takes `&mut self`, which would serialise every search
//! behind an exclusive lock. FAISS's CPU indexes allow concurrent searches (`search` is
//! `const` in C++ and keeps its scratch space per call), so searches may share the index
//! while nothing writes to it; the read lock around it guarantees that.
#![allow(unsafe_code)] // FFI only; each block says why it is sound.

use faiss::index::IndexImpl;
use faiss::Index;

use crate::MemoryError;

/// Top `k` by inner product: `(id, score)` best first, without FAISS's `-1` fillers.
///
/// Takes the index by shared reference, so searches can run side by side under a read lock
/// (see [`crate::searchable`]).
pub(crate) fn top(index: &IndexImpl, q: &[f32], k: usize) -> Result<Vec<(u64, f32)>, MemoryError> {
    let k = k.min(index.ntotal() as usize);
    let dim = index.d() as usize;
    if k == 0 || q.len() != dim {
        return Ok(Vec::new());
    }
    let mut distances = vec![0f32; k];
    let mut labels = vec![-1 as faiss_sys::idx_t; k];
    // SAFETY: FFI. The pointer is FAISS's index, alive for the borrow of `index`; the query
    // holds `d` floats (checked above) and both buffers `k` entries, for one query. FAISS's
    // CPU indexes allow concurrent searches: `Index::search` is `const` in C++ and keeps its
    // scratch space per call, and nothing writes to the index while a read lock is held.
    let code = unsafe {
        faiss_sys::faiss_Index_search(
            index.inner_ptr(),
            1,
            q.as_ptr(),
            k as faiss_sys::idx_t,
            distances.as_mut_ptr(),
            labels.as_mut_ptr(),
        )
    };
    if code != 0 {
        return Err(MemoryError::Faiss {
            operation: "search",
            reason: last_faiss_error(),
        });
    }
    Ok(labels
        .iter()
        .zip(&distances)
        .filter_map(|(&l, &d)| u64::try_from(l).ok().map(|id| (id, d)))
        .collect())
}

/// The message of the last FAISS C API failure on this thread.
fn last_faiss_error() -> String {
    // SAFETY: FFI. FAISS returns a thread-local, NUL-terminated message (or null), valid
    // until the next failing call on this thread; it is copied out at once.
    unsafe {
        let message = faiss_sys::faiss_get_last_error();
        if message.is_null() {
            "unknown error".to_owned()
        } else {
            std::ffi::CStr::from_ptr(message)
                .to_string_lossy()
                .into_owned()
        }
    }
}
