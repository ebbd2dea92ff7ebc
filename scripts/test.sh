#!/usr/bin/env bash
# The whole test suite, as CI runs it: setup, formatting, lints, dependency policy, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# A one-shot build gains nothing from incremental caches, which here weighed as much as the
# binaries themselves; CI machines' disks are not large.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
df -h . | sed 's/^/disk: /'
# FAISS's vendored C++ (faiss-sys, through cmake) is compiled with the same flags for every
# target dir: ccache turns the second and later builds (the fuzz targets' own, ~7 min here)
# into cache hits. CMake reads these variables from the environment.
if command -v ccache >/dev/null 2>&1; then
    export CMAKE_C_COMPILER_LAUNCHER=ccache CMAKE_CXX_COMPILER_LAUNCHER=ccache
fi
# Each stage says when it starts (minutes:seconds into the run): CI must stay under 45 min.
started=$SECONDS
stage() {
    local t=$((SECONDS - started))
    printf '== [%d:%02d] %s\n' $((t / 60)) $((t % 60)) "$*"
}
stage "cargo fmt --check"
cargo fmt --all -- --check
stage "modules layered without import cycles (apiary-core, the binary)"
python3 scripts/module-cycles.py crates/apiary-core/src crates/apiary-cli/src
stage "cargo clippy (every feature)"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
stage "the facade builds with no features (benches, tests, examples too), and with clustering but no memory"
cargo check -p apiary --all-targets --locked
cargo check -p apiary --lib --locked --features cluster
stage "apiary-core stands alone: no FAISS, redb, HTTP server, nor ractor's cluster feature"
core_tree=$(cargo tree -p apiary-core -e normal --locked)
if grep -E "faiss|redb|hyper|metrics-exporter-prometheus" <<<"$core_tree"; then
    echo "apiary-core depends on a heavy part (above)" >&2
    exit 1
fi
if cargo tree -p apiary-core -e features --locked | grep -F 'ractor feature "cluster"'; then
    echo "apiary-core turns ractor's cluster feature on" >&2
    exit 1
fi
stage "a third-party topology crate (examples/external-topology) builds and passes without cmake"
# Its Cargo.lock is its own: after changing apiary-core's dependencies, refresh it with
# `cargo update -p apiary-core --manifest-path examples/external-topology/Cargo.toml`.
no_cmake=$(mktemp -d)
printf '#!/bin/sh\necho "cmake is not available on this machine" >&2\nexit 127\n' >"$no_cmake/cmake"
chmod +x "$no_cmake/cmake"
(
    cd examples/external-topology
    if cargo tree -e normal --locked | grep -E "faiss|cmake"; then
        echo "the external topology crate pulls in a C++ build (above)" >&2
        exit 1
    fi
    PATH="$no_cmake:$PATH" CMAKE="$no_cmake/cmake" CARGO_TARGET_DIR=../../target/external-topology \
        cargo test --locked
)
rm -rf "$no_cmake"
stage "FAISS built with SIMD (.cargo/config.toml CXXFLAGS reached its CMakeCache)"
for cache in target/debug/build/faiss-sys-*/out/build/CMakeCache.txt; do
    grep -q '^CMAKE_CXX_FLAGS:STRING=.*-mavx2.*-mpopcnt' "$cache" || {
        echo "FAISS was configured without AVX2/POPCNT: $cache" >&2
        exit 1
    }
done
stage "cargo deny"
cargo deny --log-level error check bans licenses sources
stage "doc tests"
cargo test --workspace --doc --all-features --locked
stage "rustdoc (broken links are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --all-features --no-deps --locked
stage "loom models (--cfg apiary_loom)"
# A target dir of its own: the cfg changes every crate's build.
RUSTFLAGS="--cfg apiary_loom" LOOM_MAX_PREEMPTIONS=3 CARGO_TARGET_DIR=target/loom \
    cargo test --locked --release -p apiary-supervisor -p apiary-core -p apiary-llm --lib -- loom_
stage "fuzz targets, 15 s each (scripts/fuzz.sh; longer runs in docs/reliability.md)"
# An unoptimized build: for runs this short the optimized one costs more than it gains.
# 15 s each keeps the whole run under 45 minutes since candle (the MiniLM embedder) joined
# the build; the corpora and regressions are replayed in full either way.
APIARY_FUZZ_DEV=1 bash scripts/fuzz.sh 15
stage "tests (nextest)"
cargo nextest run --workspace --all-features --locked --no-fail-fast
stage "regression gate: instruction counts against benches/gate/baseline.json (scripts/gate.sh)"
# After the tests: it reuses their build, and only the gate bench itself is compiled.
bash scripts/gate.sh
du -sh target 2>/dev/null | sed 's/^/build output: /'
stage "done"
