// Shared by `build.rs` and `simd.rs` through `include!`: one rule for what counts as SIMD.

/// Whether C++ flags give FAISS SIMD: `-mavx2`, or a `-march=` other than generic x86-64.
fn flags_have_simd(flags: &str) -> bool {
    flags
        .split_whitespace()
        .any(|f| f == "-mavx2" || f.starts_with("-march=") && f != "-march=x86-64")
}
