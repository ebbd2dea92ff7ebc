#!/usr/bin/env bash
# A long run under steady load (not part of CI): examples/soak.rs for MINUTES (default 30),
# its samples in target/soak/samples.csv and a verdict on them (docs/reliability.md).
#   scripts/soak.sh [MINUTES]
set -euo pipefail
cd "$(dirname "$0")/.."
minutes="${1:-30}"
bash scripts/setup.sh demo
cargo build --release --locked --features journal,memory --example soak
mkdir -p target/soak
echo "soak: ${minutes} minutes; samples every 10 s in target/soak/samples.csv"
status=0
target/release/examples/soak "$minutes" target/soak/run | tee target/soak/samples.csv || status=$?
python3 - target/soak/samples.csv <<'PY'
import csv, sys
rows = [r for r in csv.DictReader(l for l in open(sys.argv[1]) if not l.startswith("#"))]
if len(rows) < 4:
    sys.exit("soak: too few samples to judge")
# Warm-up: the first fifth of the run (caches, the trained index, the journal's pages).
warm = rows[len(rows) // 5:]
rss = [int(r["rss_kib"]) for r in warm]
fds = [int(r["open_fds"]) for r in rows]
low, high = min(rss), max(rss)
spread = (high - low) / low
print(f"soak: RSS after warm-up {low} to {high} KiB (spread {spread:.1%}); open files {min(fds)} to {max(fds)}")
print(f"soak: RSS flat within 10%: {'yes' if spread <= 0.10 else 'NO'}")
PY
exit "$status"
