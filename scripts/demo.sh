#!/usr/bin/env bash
# The main demo: sets the machine up, then runs the quality-fleet swarm (examples/quality-fleet.toml):
# real agents format-check, build, lint, test and document the sample crate in
# examples/sample-crate under a hierarchical topology, with a flaky step that shows retries and
# the circuit breaker, results stored in the swarm's memory and Prometheus metrics served on
# 127.0.0.1 while it runs. Extra arguments go to `apiary run` (e.g. --json).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "demo: checking the machine (Debian packages for FAISS: cmake, OpenBLAS; nothing else)"
bash scripts/setup.sh demo
if [ ! -x target/debug/apiary ]; then
    echo "demo: building apiary; the first build compiles FAISS's C++ from source (cmake, about"
    echo "      3 minutes on 2 cores, quiet while 'faiss-sys (build)' runs), later builds take seconds"
fi
cargo build --locked -p apiary-cli
echo "demo: running examples/quality-fleet.toml (add --ui 127.0.0.1:8080 --linger 2m to watch it in a browser)"
exec target/debug/apiary run examples/quality-fleet.toml --metrics "${APIARY_METRICS_ADDR:-127.0.0.1:9464}" "$@"
