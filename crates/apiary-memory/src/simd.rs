//! Whether FAISS was compiled with SIMD, and a warning when it was not but could have been.
//!
//! FAISS is compiled from source by faiss-sys, with whatever C++ flags the build environment
//! gives; by default that is generic x86-64, whose distance kernels are several times slower
//! than AVX2's (measured: 2.79 ms against 0.49 ms per search at p50 on 40k real embeddings).
//! The fix is one line in the `.cargo/config.toml` of the project that builds FAISS:
//!
//! ```toml
//! [env]
//! CXXFLAGS = "-mavx2 -mfma -mf16c -mpopcnt"
//! ```
//!
//! (The binary then needs a CPU with AVX2, as any x86-64 machine since 2013 has.)

use std::sync::Once;

/// The C++ flags this crate's build saw (`build.rs`): FAISS was built in the same cargo run.
const BUILD_CXXFLAGS: &str = env!("APIARY_FAISS_CXXFLAGS");

/// Whether the FAISS linked into this program was compiled with SIMD flags (`-mavx2`, or a
/// `-march=` other than generic x86-64), as far as this build's environment tells.
///
/// # Examples
///
/// ```
/// // In this repository, `.cargo/config.toml` sets the flags.
/// println!("FAISS with SIMD: {}", apiary_memory::faiss_has_simd());
/// ```
pub fn faiss_has_simd() -> bool {
    flags_have_simd(BUILD_CXXFLAGS)
}

include!("simd_flags.rs");

/// Warns once per process, at the first `Memory::open`, if FAISS was built generic on a CPU
/// that has AVX2 and FMA.
pub(crate) fn warn_if_generic() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if faiss_has_simd() || !cpu_has_simd() {
            return;
        }
        tracing::warn!(
            "FAISS was built for generic x86-64 (no AVX2/FMA/F16C/POPCNT) although this CPU has \
             them: memory searches run several times slower. Add to your project's \
             .cargo/config.toml: [env] CXXFLAGS = \"-mavx2 -mfma -mf16c -mpopcnt\" and rebuild \
             (see the apiary-memory docs, \"Speed\")"
        );
    });
}

#[cfg(target_arch = "x86_64")]
fn cpu_has_simd() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

#[cfg(not(target_arch = "x86_64"))]
fn cpu_has_simd() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simd_flags_are_recognised() {
        assert!(flags_have_simd("-mavx2 -mfma -mf16c -mpopcnt"));
        assert!(flags_have_simd("-O2 -march=native"));
        assert!(flags_have_simd("-march=x86-64-v3"));
        assert!(!flags_have_simd(""));
        assert!(!flags_have_simd("-O3 -march=x86-64"));
        assert!(!flags_have_simd("-mavx"));
    }

    #[test]
    fn this_repository_builds_faiss_with_simd() {
        // `.cargo/config.toml` sets CXXFLAGS for every build inside the repository; a build
        // that lost them would run the memory benches on a generic FAISS.
        assert!(faiss_has_simd(), "built with CXXFLAGS={BUILD_CXXFLAGS:?}");
    }
}
