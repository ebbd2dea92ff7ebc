#!/usr/bin/env python3
"""Cuts the small slice of the minilm384 set that the tests read (tests/data/).

The full set (../shared/data, 100k base + 1k queries, all-MiniLM-L6-v2, 384-d, float16) is too
large to commit. The slice keeps the first BASE base rows and the first QUERIES queries, and
recomputes the exact top-100 neighbours by inner product *within the slice* (float32 from the
float16 values as stored, ties to the smaller row id), in the layout of the full set.

    python3 scripts/make-data-slice.py ../shared/data tests/data
"""
import sys
import numpy as np

BASE, QUERIES, K, DIM = 5_000, 100, 100, 384

src, dst = sys.argv[1], sys.argv[2]
base16 = np.fromfile(f"{src}/minilm384_base.f16", dtype="<f2").reshape(-1, DIM)[:BASE]
query16 = np.fromfile(f"{src}/minilm384_query.f16", dtype="<f2").reshape(-1, DIM)[:QUERIES]
base, query = base16.astype(np.float32), query16.astype(np.float32)
scores = query @ base.T
# Stable sort of negated scores: best first, ties to the smaller row id.
gt = np.argsort(-scores, axis=1, kind="stable")[:, :K].astype("<u4")
base16.tofile(f"{dst}/minilm384_base.f16")
query16.tofile(f"{dst}/minilm384_query.f16")
gt.tofile(f"{dst}/minilm384_gt.u32")
print(f"slice: {BASE} base, {QUERIES} queries, top-{K} ground truth -> {dst}")
