#!/usr/bin/env bash
# The whole test suite, as CI runs it: setup, formatting, lints, dependency policy, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# A one-shot build gains nothing from incremental caches, which here weighed as much as the
# binaries themselves; CI machines' disks are not large.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
df -h . | sed 's/^/disk: /'
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== FAISS built with SIMD (.cargo/config.toml CXXFLAGS reached its CMakeCache)"
for cache in target/debug/build/faiss-sys-*/out/build/CMakeCache.txt; do
    grep -q '^CMAKE_CXX_FLAGS:STRING=.*-mavx2.*-mpopcnt' "$cache" || {
        echo "FAISS was configured without AVX2/POPCNT: $cache" >&2
        exit 1
    }
done
echo "== cargo deny"
cargo deny --log-level error check bans licenses sources
echo "== doc tests"
cargo test --workspace --doc --locked
echo "== rustdoc (broken links are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked
echo "== loom models (--cfg apiary_loom)"
# A target dir of its own: the cfg changes every crate's build.
RUSTFLAGS="--cfg apiary_loom" LOOM_MAX_PREEMPTIONS=3 CARGO_TARGET_DIR=target/loom \
    cargo test --locked --release -p apiary-supervisor --lib -- loom_
echo "== tests (nextest)"
cargo nextest run --workspace --locked --no-fail-fast
du -sh target 2>/dev/null | sed 's/^/build output: /'
