#!/usr/bin/env bash
# The main demo: sets the machine up, then runs a swarm that takes a census of this repository.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo run --locked --example census -- .
