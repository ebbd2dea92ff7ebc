#!/usr/bin/env bash
# Runs the fuzz targets under fuzz/ (cargo-fuzz, libFuzzer), each for SECONDS.
#   scripts/fuzz.sh [SECONDS] [TARGET...]     default: 30 seconds, every target
# Stable Rust: built with `--sanitizer none` (Rust's own checks still panic on overflow,
# bad indexing and failed assertions, which is what these decoders can get wrong). A crash
# fails the script; its input is left in fuzz/artifacts/TARGET/ for `cargo fuzz run
# --sanitizer none TARGET FILE`. New inputs go to a scratch copy of each corpus: keep the
# interesting ones with `cargo fuzz cmin` (docs/reliability.md). Inputs that once crashed
# (fuzz/regressions/TARGET/) are replayed first, as part of the corpus.
# APIARY_FUZZ_DEV=1 builds without optimizations: for short runs (CI's 30 s), where the build
# is most of the cost; long runs want the default optimized build.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-30}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(manifest cluster_wire llm_stream journal_file memory_files web_request)
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz from crates.io"
    cargo install --locked cargo-fuzz --version 0.13.2
fi
flags=(--sanitizer none)
if [ "${APIARY_FUZZ_DEV:-0}" = 1 ]; then
    flags+=(--dev)
fi
# One build for every target (they share the instrumented dependencies).
cargo fuzz build "${flags[@]}"
for target in "${targets[@]}"; do
    scratch=$(mktemp -d)
    cp -r "fuzz/corpus/$target/." "$scratch/"
    echo "fuzz: $target for ${secs}s"
    log="$scratch.log"
    status=0
    corpora=("$scratch" "fuzz/corpus/$target")
    if [ -d "fuzz/regressions/$target" ]; then
        corpora+=("fuzz/regressions/$target")
    fi
    cargo fuzz run "${flags[@]}" "$target" "${corpora[@]}" -- \
        -max_total_time="$secs" -rss_limit_mb=4096 -print_final_stats=1 >"$log" 2>&1 || status=$?
    grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+ +DONE)" "$log" || true
    if [ "$status" -ne 0 ]; then
        tail -n 60 "$log" | cut -c1-300 >&2
    fi
    rm -f "$log"
    rm -rf "$scratch"
    if [ "$status" -ne 0 ]; then
        echo "fuzz: $target found a crash (input in fuzz/artifacts/$target/)" >&2
        exit 1
    fi
done
