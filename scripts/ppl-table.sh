#!/usr/bin/env bash
# Perplexity of a model pruned every way: dense, then magnitude, Wanda and DaSS at 50%, 4:8
# and 2:4 (llama-perplexity -c 512 --chunks 20 on the evaluation text; imatrix from the
# calibration text). Prints a Markdown table.
#
#   scripts/ppl-table.sh smollm2 model.f32.gguf
#   scripts/ppl-table.sh gemma3 model.f16.gguf
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/common.sh"
model="${1:?model name, e.g. smollm2}"
file="${2:?model file, e.g. model.f32.gguf}"
chunks="${CHUNKS:-20}"
src="$MODELS/$model/$file"
imatrix="$MODELS/$model/imatrix.gguf"
cd "$REPO_ROOT"
cargo build --release --quiet
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

ppl() {
    "$LLAMA_BIN/llama-perplexity" -m "$1" -f "$TEXT/eval.txt" -c 512 --chunks "$chunks" -t 2 -b 512 2>&1 |
        sed -n 's/.*Final estimate: PPL = \([0-9.]*\) +\/- \([0-9.]*\).*/\1 ± \2/p'
}

echo "| $model ($file) | 50% | 4:8 | 2:4 |"
echo "|---|---|---|---|"
echo "| dense | $(ppl "$src") | | |"
for method in magnitude wanda dass; do
    row="| $method"
    for pat in "--sparsity 0.5" "--pattern 4:8" "--pattern 2:4"; do
        out="$work/out.gguf"
        # shellcheck disable=SC2086
        target/release/dass-gguf convert "$src" -o "$out" --imatrix "$imatrix" --method "$method" $pat --quiet --force
        row="$row | $(ppl "$out")"
    done
    echo "$row |"
done
