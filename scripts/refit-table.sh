#!/usr/bin/env bash
# What the statistics of `dass-gguf calibrate` buy, measured: for one model, perplexity
# (llama-perplexity -c 512 --chunks 20 on the evaluation text; the same in every cell) and size of
#   - the dense model, and the dense model quantized to Q4_K_M, Q3_K_M, Q3_K_S, Q2_K with its
#     imatrix (plain quantization, the baseline to beat);
#   - --keep-ffn 0.875 / 0.75 (activation score, uniform widths) as removal only, with the
#     least-squares refit of ffn_down (--stats), and with channels chosen by the least-squares
#     cost (--channel-score lsq, refit); each also quantized (QUANTS, default Q4_K_M and Q3_K_M)
#     with the cut imatrix convert writes;
#   - 50% and 2:4 for wanda, dass and the default (auto), without and with the SparseGPT-style
#     update (--stats).
# Every cell takes its scores from the same llama-imatrix file, so with and without --stats the
# same channels and weights go and only the refit differs (lsq chooses its own channels).
# Needs $MODELS/MODEL/{model.f16.gguf (f32 for smollm2), imatrix.gguf, stats.gguf}
# (scripts/setup.sh --all makes them). Prints Markdown tables.
#
#   scripts/refit-table.sh smollm2
#   KEEPS="0.75" PATTERNS="2:4" METHODS="dass" QUANTS="Q4_K_M" scripts/refit-table.sh qwen2.5
#   SKIP_DENSE=1 VARIANTS="removal only|refit" scripts/refit-table.sh smollm2   (no dense rows, no lsq)
#   DASS_BIN=path/to/dass-gguf scripts/refit-table.sh gemma3     (that binary, not a fresh build)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/common.sh"
model="${1:?model name, e.g. smollm2}"
file="model.f16.gguf"
[ "$model" = smollm2 ] && file="model.f32.gguf"
keeps=(${KEEPS:-0.875 0.75})
patterns=(${PATTERNS:-50% 2:4})
methods=(${METHODS:-wanda dass auto})
quants=(${QUANTS:-Q4_K_M Q3_K_M})
src="$MODELS/$model/$file"
imatrix="$MODELS/$model/imatrix.gguf"
stats="$MODELS/$model/stats.gguf"
for f in "$src" "$imatrix" "$stats"; do
    [ -f "$f" ] || { echo "refit-table: $f is missing; run scripts/setup.sh --all" >&2; exit 1; }
done
cd "$REPO_ROOT"
work="${WORK:-$(mktemp -d)}"
mkdir -p "$work"
[ -n "${WORK:-}" ] || trap 'rm -rf "$work"' EXIT
if [ -n "${DASS_BIN:-}" ]; then
    cp "$DASS_BIN" "$work/dass-gguf"    # a given build (e.g. of a branch being measured)
else
    tool_copy "$work"
fi
BIN="$work/dass-gguf"

convert() { # out args...
    local out="$1"; shift
    "$BIN" convert "$src" -o "$out" --quiet --force "$@" ||
        { echo "refit-table: convert $* failed" >&2; exit 1; }
}

if [ -z "${SKIP_DENSE:-}" ]; then
    echo "### $model ($file): dense and plain quantization"
    echo
    dense_table "$src" "$file" "$imatrix"
fi

echo
echo "### $model: channels removed (uniform width), then quantized with the cut imatrix"
echo
head="| keep | channels | size (MB) | PPL |"
sep="|---|---|---|---|"
for q in "${quants[@]}"; do head="$head → $q (MB) | PPL |"; sep="$sep---|---|"; done
echo "$head"
echo "$sep"
for keep in "${keeps[@]}"; do
    IFS='|' read -r -a variants <<<"${VARIANTS:-removal only|refit|lsq + refit}"
    for variant in "${variants[@]}"; do
        out="$work/k$keep.gguf"
        case "$variant" in
            "removal only") convert "$out" --imatrix "$imatrix" --keep-ffn "$keep" \
                --channel-score activation --imatrix-out "$work/k.imatrix.gguf" ;;
            "refit") convert "$out" --imatrix "$imatrix" --stats "$stats" --keep-ffn "$keep" \
                --channel-score activation --imatrix-out "$work/k.imatrix.gguf" ;;
            "lsq + refit") convert "$out" --imatrix "$imatrix" --stats "$stats" --keep-ffn "$keep" \
                --channel-score lsq --imatrix-out "$work/k.imatrix.gguf" ;;
        esac
        row="| $keep | $variant | $(mb "$out") | $(ppl "$out") |"
        for q in "${quants[@]}"; do
            quant "$out" "$work/k.imatrix.gguf" "$q" "$work/k.$q.gguf"
            row="$row $(mb "$work/k.$q.gguf") | $(ppl "$work/k.$q.gguf") |"
            rm -f "$work/k.$q.gguf"
        done
        rm -f "$out"
        echo "$row"
    done
done

echo
echo "### $model: weights zeroed, without and with the SparseGPT-style update"
echo
echo "| pattern | method | PPL | + update (--stats) |"
echo "|---|---|---|---|"
for p in "${patterns[@]}"; do
    case "$p" in
        *%) sel=(--sparsity "$(awk -v s="${p%\%}" 'BEGIN { print s / 100 }')") ;;
        *) sel=(--pattern "$p") ;;
    esac
    for m in "${methods[@]}"; do
        out="$work/p.gguf"
        convert "$out" --imatrix "$imatrix" --method "$m" "${sel[@]}"
        plain="$(ppl "$out")"
        convert "$out" --imatrix "$imatrix" --stats "$stats" --method "$m" "${sel[@]}"
        echo "| $p | $m | $plain | $(ppl "$out") |"
        rm -f "$out"
    done
done
