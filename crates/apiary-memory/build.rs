//! Records the C++ flags of this build, so `Memory::open` can tell whether FAISS got SIMD.
//!
//! faiss-sys compiles FAISS from source with cmake, which takes its flags from the same
//! environment variables the `cc` crate reads (`CXXFLAGS`, `CXXFLAGS_<target>`,
//! `TARGET_CXXFLAGS`). Without `-mavx2` and friends, FAISS is built for generic x86-64 and its
//! distance kernels run several times slower. A crate's `.cargo/config.toml` `[env]` table
//! reaches every build script of one cargo run, faiss-sys's and this one alike.

use std::env;

fn main() {
    let target = env::var("TARGET").unwrap_or_default();
    let names = [
        format!("CXXFLAGS_{target}"),
        format!("CXXFLAGS_{}", target.replace('-', "_")),
        "TARGET_CXXFLAGS".to_owned(),
        "CXXFLAGS".to_owned(),
    ];
    let mut flags = Vec::new();
    for name in &names {
        println!("cargo:rerun-if-env-changed={name}");
        if let Ok(value) = env::var(name) {
            flags.push(value);
        }
    }
    let flags = flags.join(" ");
    println!("cargo:rustc-env=APIARY_FAISS_CXXFLAGS={flags}");
    if target.starts_with("x86_64") && !flags_have_simd(&flags) {
        println!(
            "cargo:warning=FAISS is being built for generic x86-64 (no AVX2/FMA/F16C/POPCNT): \
             memory searches run several times slower. Add to your project's \
             .cargo/config.toml: [env] CXXFLAGS = \"-mavx2 -mfma -mf16c -mpopcnt\""
        );
    }
}

include!("src/simd_flags.rs");
