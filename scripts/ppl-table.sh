#!/usr/bin/env bash
# Perplexity of a model pruned every way: dense, then each method at 50%, 4:8 and 2:4
# (llama-perplexity -c 512 --chunks 20 on the evaluation text; imatrix from the calibration
# text). Prints a Markdown table; the best cell of the row set is marked in bold by the reader.
#
#   scripts/ppl-table.sh smollm2 model.f32.gguf
#   METHODS="wanda hybrid" PATTERNS="--sparsity 0.5" EXTRA="--scope all" scripts/ppl-table.sh qwen2.5 model.f16.gguf
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/common.sh"
model="${1:?model name, e.g. smollm2}"
file="${2:?model file, e.g. model.f32.gguf}"
methods=(${METHODS:-magnitude wanda dass ria hybrid})
IFS=, read -r -a patterns <<<"${PATTERNS:---sparsity 0.5,--pattern 4:8,--pattern 2:4}"
extra="${EXTRA:-}"
src="$MODELS/$model/$file"
imatrix="$MODELS/$model/imatrix.gguf"
cd "$REPO_ROOT"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
tool_copy "$work"


head="| $model ($file${extra:+, $extra})"
sep="|---"
for pat in "${patterns[@]}"; do
    head="$head | ${pat#--* }"
    sep="$sep|---"
done
echo "$head |"
echo "$sep|"
echo "| dense | $(ppl "$src") |"
for method in "${methods[@]}"; do
    row="| $method"
    for pat in "${patterns[@]}"; do
        if [ "$method" = hybrid ] && [[ "$pat" == --pattern* ]]; then
            row="$row | (no N:M form)"
            continue
        fi
        out="$work/out.gguf"
        # shellcheck disable=SC2086
        "$work/dass-gguf" convert "$src" -o "$out" --imatrix "$imatrix" --method "$method" $pat $extra --quiet --force
        row="$row | $(ppl "$out")"
        rm -f "$out"
    done
    echo "$row |"
done
