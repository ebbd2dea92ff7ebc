#!/usr/bin/env bash
# The instruction-count regression gate: runs benches/gate.rs under Callgrind (gungraun) and
# compares every count with the committed baseline, benches/gate/baseline.json.
#   gate.sh            fail if any count grew more than 10% (GATE_LIMIT=percent to change)
#   gate.sh --bless    record this run's counts as the new baseline (after an intended change)
#
# The bench is built in the dev profile, the build the tests already made (dependencies at
# opt-level 2, apiary's own crates unoptimised), so the gate adds no second build of the tree.
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
GUNGRAUN_HOME="$PWD/$home" cargo bench --profile dev --locked --all-features --bench gate -- \
    --save-summary=json
python3 scripts/gate.py "$home" benches/gate/baseline.json --limit "${GATE_LIMIT:-10}" "${bless[@]}"
