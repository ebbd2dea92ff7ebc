#!/usr/bin/env python3
"""Compares the gate's Callgrind instruction counts with the committed baseline.

Reads every summary.json that gungraun wrote under HOME (`--save-summary=json`), prints one
table row per benchmark (baseline, now, change) and exits 1 when any count grew by more than
--limit percent, or when a benchmark of the baseline was not measured. A benchmark missing from
the baseline is listed as new and does not fail. With --bless, writes this run's counts as the
baseline instead.
"""
import argparse
import json
import sys
from pathlib import Path


def counts(home):
    """{benchmark id: instructions} for every summary under home."""
    found = {}
    for path in sorted(home.rglob("summary.json")):
        summary = json.loads(path.read_text())
        name = f"{summary['module_path']} {summary['id']}"
        for profile in summary.get("profiles", []):
            if profile.get("tool") == "Callgrind":
                found[name] = profile["data"]["total"]["metrics"]["Ir"]["values"]["new"]
                break
        else:
            sys.exit(f"gate: no Callgrind profile in {path}")
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("home", type=Path, help="gungraun's output directory (GUNGRAUN_HOME)")
    parser.add_argument("baseline", type=Path, help="the committed baseline (JSON)")
    parser.add_argument("--limit", type=float, default=10.0, help="allowed growth, percent")
    parser.add_argument("--bless", action="store_true", help="write the baseline")
    args = parser.parse_args()

    now = counts(args.home)
    if not now:
        sys.exit(f"gate: no gungraun summaries under {args.home}")
    if args.bless:
        args.baseline.write_text(json.dumps(dict(sorted(now.items())), indent=2) + "\n")
        print(f"gate: wrote {len(now)} baselines to {args.baseline}")
        return
    try:
        base = json.loads(args.baseline.read_text())
    except (OSError, ValueError) as e:
        sys.exit(f"gate: cannot read the baseline {args.baseline}: {e}")

    failed = []
    width = max(map(len, list(now) + list(base)))
    print(f"{'benchmark':<{width}}  {'baseline':>14}  {'now':>14}  change")
    for name in sorted(set(now) | set(base)):
        old, new = base.get(name), now.get(name)
        if new is None:
            print(f"{name:<{width}}  {old:>14,}  {'-':>14}  not measured")
            failed.append(name)
            continue
        if old is None:
            print(f"{name:<{width}}  {'-':>14}  {new:>14,}  new (bless to keep)")
            continue
        change = (new - old) / old * 100
        mark = ""
        if change > args.limit:
            mark = f"  REGRESSION (over +{args.limit:g}%)"
            failed.append(name)
        print(f"{name:<{width}}  {old:>14,}  {new:>14,}  {change:+6.2f}%{mark}")
    # A benchmark `x_floor` measures what `x` is read against (raw ractor doing the same).
    for name in sorted(now):
        module, _, _ = name.partition(" ")
        if module.endswith("_floor"):
            continue
        floor = [f for f in now if f.partition(" ")[0] == module + "_floor"]
        if floor:
            print(f"{module}: {now[name] / now[floor[0]]:.2f}x its floor ({floor[0]})")
    if failed:
        print(
            f"gate: {len(failed)} benchmark(s) over the limit or not measured: "
            + ", ".join(failed)
            + f"\n(after an intended change: bash scripts/gate.sh --bless, and commit {args.baseline})",
            file=sys.stderr,
        )
        sys.exit(1)
    print(f"gate: {len(now)} benchmarks within +{args.limit:g}% of {args.baseline}")


if __name__ == "__main__":
    main()
