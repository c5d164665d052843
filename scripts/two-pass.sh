#!/usr/bin/env bash
# Two-pass statistics (docs/method.md "One shot"): does an imatrix computed on a first pruned
# model prune better than the dense model's? For one model and one setting:
#   pass 1   prune the dense model with its dense imatrix I0                       -> P1
#            llama-imatrix on P1 (calib.txt, -c 512 --chunks 40, as I0 was made)   -> I1
#   pass 2a  prune the dense model with I1                                         -> P2a
#   pass 2b  prune it with I0 and I1 combined (llama-imatrix --in-file I0 --in-file I1:
#            sums and counts added, so the mean squares are averaged)              -> P2b
# and prints the perplexity of each (llama-perplexity -c 512 --chunks 20 on eval.txt) as a
# Markdown row.
#
#   scripts/two-pass.sh smollm2 "--method wanda --sparsity 0.5"
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/common.sh"
model="${1:?model name, e.g. smollm2}"
setting="${2:?convert options, e.g. \"--method wanda --sparsity 0.5\"}"
file="${FILE:-model.f16.gguf}"
src="$MODELS/$model/$file"
i0="$MODELS/$model/imatrix.gguf"
cd "$REPO_ROOT"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
tool_copy "$work"

prune() { # imatrix out
    # shellcheck disable=SC2086
    "$work/dass-gguf" convert "$src" -o "$2" --imatrix "$1" $setting --quiet --force
}
imatrix() { # log, then llama-imatrix arguments
    local log="$work/$1.log"
    shift
    "$LLAMA_BIN/llama-imatrix" "$@" >"$log" 2>&1 || { tail -5 "$log" >&2; exit 1; }
}

prune "$i0" "$work/p1.gguf"
(cd "$TEXT" && imatrix i1 -m "$work/p1.gguf" -f calib.txt -c 512 --chunks 40 -t 2 --no-ppl \
    --output-format gguf -o "$work/i1.gguf")
imatrix i01 -m "$src" --in-file "$i0" --in-file "$work/i1.gguf" -c 512 --output-format gguf \
    -o "$work/i01.gguf"
prune "$work/i1.gguf" "$work/p2a.gguf"
prune "$work/i01.gguf" "$work/p2b.gguf"
echo "| $model | $setting | $(ppl "$work/p1.gguf") | $(ppl "$work/p2a.gguf") | $(ppl "$work/p2b.gguf") |"
