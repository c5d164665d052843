#!/usr/bin/env bash
# Where removing feed-forward channels pays, measured: for one model, the F16 size and the
# perplexity (llama-perplexity -c 512 --chunks 20 on the evaluation text) of
#   - the dense model, and the dense model quantized to Q4_K_M, Q3_K_M, Q3_K_S and Q2_K with its
#     imatrix (plain quantization, the baseline to beat);
#   - --keep-ffn 0.875 / 0.75 / 0.625 (uniform widths) with every channel score, and the
#     default score's output quantized to Q4_K_M with the cut imatrix dass-gguf writes.
# Prints Markdown tables. Every cell uses the same text, context and chunks.
#
#   scripts/channels-table.sh smollm2 [model.f16.gguf]
#   SCORES="energy activation" KEEPS="0.75" scripts/channels-table.sh qwen2.5
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/common.sh"
model="${1:?model name, e.g. smollm2}"
file="${2:-model.f16.gguf}"
keeps=(${KEEPS:-0.875 0.75 0.625})
scores=(${SCORES:-energy activation dass weight random})
default_score="${DEFAULT_SCORE:-energy}"
src="$MODELS/$model/$file"
imatrix="$MODELS/$model/imatrix.gguf"
cd "$REPO_ROOT"
work="${WORK:-$(mktemp -d)}"
mkdir -p "$work"
[ -n "${WORK:-}" ] || trap 'rm -rf "$work"' EXIT
tool_copy "$work"
BIN="$work/dass-gguf"

echo "### $model ($file): dense and plain quantization"
echo
dense_table "$src" "$file" "$imatrix"
echo
echo "### $model: channels removed (uniform width), perplexity by channel score"
echo
head="| keep | width | size (MB) |"
sep="|---|---|---|"
for s in "${scores[@]}"; do head="$head $s |"; sep="$sep---|"; done
echo "$head $default_score → Q4_K_M (MB) | $default_score → Q4_K_M PPL |"
echo "$sep---|---|"
for keep in "${keeps[@]}"; do
    row=""
    width=""
    size=""
    for s in "${scores[@]}"; do
        out="$work/k$keep.$s.gguf"
        "$BIN" convert "$src" -o "$out" --imatrix "$imatrix" --keep-ffn "$keep" \
            --channel-score "$s" --quiet --force --imatrix-out "$work/k$keep.$s.imatrix.gguf"
        width="$("$BIN" inspect --json "$out" | "$PY" -c '
import json, sys
d = json.load(sys.stdin)
print(next(v for k, v in d["hyperparameters"].items() if k.endswith(".feed_forward_length")))')"
        size="$(mb "$out")"
        row="$row $(ppl "$out") |"
        if [ "$s" = "$default_score" ]; then
            quant "$out" "$work/k$keep.$s.imatrix.gguf" Q4_K_M "$work/k$keep.q4km.gguf"
            q4="$(mb "$work/k$keep.q4km.gguf") | $(ppl "$work/k$keep.q4km.gguf")"
            rm -f "$work/k$keep.q4km.gguf"
        fi
        rm -f "$out"
    done
    echo "| $keep | $width | $size |$row ${q4:-} |"
done
