//! The one place this crate calls FAISS's C API itself, for what the `faiss` crate does not
//! offer:
//!
//! - a search through a shared reference. The `faiss` crate's `Index::search` takes
//!   `&mut self`, which would serialise every search behind an exclusive lock. FAISS's CPU
//!   indexes allow concurrent searches (`search` is `const` in C++ and keeps its scratch
//!   space per call), so searches may share the index while nothing writes to it; the read
//!   lock around it guarantees that.
//! - k-means with restarts for an IVF index's lists ([`train_lists`]).
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

/// Trains the lists of an IVF index (its coarse quantizer) with `iterations` of k-means;
/// `Index::train` then finds them trained and trains only the codes. Returns false,
/// untouched, for an index without lists (HNSW, flat).
pub(crate) fn train_lists(
    index: &mut IndexImpl,
    sample: &[f32],
    iterations: i32,
) -> Result<bool, MemoryError> {
    let dim = index.d() as usize;
    let n = sample.len() / dim.max(1);
    let failed = |operation| MemoryError::Faiss {
        operation,
        reason: last_faiss_error(),
    };
    // SAFETY: FFI. `index` is exclusively borrowed and alive throughout; the cast returns null
    // for an index that is not an IVF (nothing is touched then) or a pointer into `index`.
    let ivf = unsafe { faiss_sys::faiss_IndexIVF_cast(index.inner_ptr()) };
    if ivf.is_null() || n == 0 {
        return Ok(false);
    }
    // SAFETY: FFI, as above: the quantizer is owned by the IVF index, alive with it.
    let quantizer = unsafe { faiss_sys::faiss_IndexIVF_quantizer(ivf) };
    // SAFETY: FFI on plain values.
    let nlist = unsafe { faiss_sys::faiss_IndexIVF_nlist(ivf) };
    if quantizer.is_null() || nlist == 0 || n < nlist {
        return Ok(false);
    }
    // SAFETY: FFI. `init` writes FAISS's defaults into the struct it is given.
    let mut params = unsafe {
        let mut params = std::mem::MaybeUninit::<faiss_sys::FaissClusteringParameters>::uninit();
        faiss_sys::faiss_ClusteringParameters_init(params.as_mut_ptr());
        params.assume_init()
    };
    params.niter = iterations;
    // What FAISS sets for an inner-product IVF: unit centroids, as the vectors are.
    params.spherical = 1;
    params.max_points_per_centroid = 256;
    let mut clustering = std::ptr::null_mut();
    // SAFETY: FFI. On success `clustering` points to a new object, freed below.
    let code = unsafe {
        faiss_sys::faiss_Clustering_new_with_params(
            &mut clustering,
            dim as i32,
            nlist as i32,
            &params,
        )
    };
    if code != 0 || clustering.is_null() {
        return Err(failed("create k-means"));
    }
    // SAFETY: FFI. `sample` holds `n * dim` floats; the quantizer is the flat index k-means
    // assigns with, and holds the centroids when `train` returns; `clustering` is freed
    // exactly once.
    let code = unsafe {
        let code = faiss_sys::faiss_Clustering_train(
            clustering,
            n as faiss_sys::idx_t,
            sample.as_ptr(),
            quantizer,
        );
        faiss_sys::faiss_Clustering_free(clustering);
        code
    };
    if code != 0 {
        return Err(failed("k-means"));
    }
    Ok(true)
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
