#!/usr/bin/env bash
# The main job on a real small model: prune SmolLM2-135M (its F32 copy) with DaSS 2:4 using its
# imatrix, show the plan's summary and the zeros per tensor, and let llama.cpp load the result.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/common.sh"
cd "$REPO_ROOT"
cargo build --release --quiet
BIN=target/release/dass-gguf
M="$MODELS/smollm2"
for f in "$M/model.f32.gguf" "$M/imatrix.gguf"; do
    [ -f "$f" ] || { echo "demo: $f is missing: run scripts/setup.sh first" >&2; exit 1; }
done
OUT="${1:-$DASS_CACHE/demo/smollm2-dass-2of4.gguf}"
mkdir -p "$(dirname "$OUT")"
set -x
"$BIN" convert "$M/model.f32.gguf" -o "$OUT" --imatrix "$M/imatrix.gguf" --pattern 2:4 \
    --report "${OUT%.gguf}.json" --force
"$BIN" inspect --zeros --quiet "$OUT" | grep -m 6 -E "ffn_(gate|up|down)"
"$LLAMA_BIN/llama-perplexity" -m "$OUT" -f "$TEXT/eval.txt" -c 512 --chunks 4 -t 2 -b 512 2>&1 |
    grep "Final estimate"
