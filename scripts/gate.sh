#!/usr/bin/env bash
# The instruction-count regression gate: runs benches/gate.rs under Callgrind (gungraun) and
# compares every count with the committed baseline, benches/gate/baseline.json.
#   gate.sh            fail if any count grew more than 10% (GATE_LIMIT=percent to change)
#   gate.sh --bless    record this run's counts as the new baseline (after an intended change)
#
# The bench is built in the dev profile with the workspace's features, exactly as the tests
# (`cargo nextest run --workspace --all-features`) built everything else: dependencies at
# opt-level 2, apiary's own crates unoptimised, and only the bench itself left to compile.
# Without `--workspace` cargo resolves features for the one package and rebuilds every
# dependency (5 minutes on a fresh clone).
set -euo pipefail
cd "$(dirname "$0")/.."

bless=()
case "${1:-}" in
"") ;;
--bless) bless=(--bless) ;;
*)
    echo "gate: unknown argument '$1' (--bless or nothing)" >&2
    exit 2
    ;;
esac
for tool in valgrind gungraun-runner python3; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "gate: '$tool' is not installed (bash scripts/setup.sh test installs it)" >&2
        exit 1
    }
done

home=target/gungraun-gate
rm -rf "$home"
GUNGRAUN_HOME="$PWD/$home" cargo bench --workspace --profile dev --locked --all-features --bench gate -- \
    --save-summary=json
python3 scripts/gate.py "$home" benches/gate/baseline.json --limit "${GATE_LIMIT:-10}" "${bless[@]}"
