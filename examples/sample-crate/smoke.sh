#!/bin/sh
# Smoke test of the built binary. It also stands in for a flaky network test: its first two
# attempts in a run fail on purpose (APIARY_ATTEMPT is set by apiary's shell agent), so the
# demo shows a step being retried, its circuit breaker opening, and the half-open trial
# that closes it again.
set -eu
if [ "${APIARY_ATTEMPT:-1}" -lt 3 ]; then
    echo "smoke: simulated flake (attempt ${APIARY_ATTEMPT:-1})" >&2
    exit 1
fi
out=$(./target/debug/wordfreq "the cat and the hat")
first=$(echo "$out" | head -n 1)
[ "$first" = "the 2" ] || { echo "smoke: expected 'the 2', got '$first'" >&2; exit 1; }
echo "smoke: ok ($first)"
