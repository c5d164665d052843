# Shared paths for the project's scripts. Source it; it defines variables and one helper.
# Everything fetched or built lives under one cache so repeated runs (and CI) stay fast.
DASS_CACHE="${DASS_GGUF_CACHE:-$HOME/.cache/dass-gguf}"
LLAMA_CPP_VERSION="0.3.36"                      # the llama-cpp-python sdist that vendors llama.cpp
LLAMA_BIN="$DASS_CACHE/llama.cpp-$LLAMA_CPP_VERSION/bin"
VENV="$DASS_CACHE/venv"
PY="$VENV/bin/python"
MODELS="$DASS_CACHE/models"
TEXT="$DASS_CACHE/text"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# dass-gguf built with the `calibrate` feature (scripts/build-calibrate.sh), in its own target.
CALIBRATE_TARGET="$DASS_CACHE/target-calibrate"
CALIBRATE_BIN="$CALIBRATE_TARGET/release/dass-gguf"
export DASS_CACHE LLAMA_CPP_VERSION LLAMA_BIN VENV PY MODELS TEXT REPO_ROOT CALIBRATE_TARGET CALIBRATE_BIN

# Builds dass-gguf and copies it to $1/dass-gguf: a long measurement runs that copy, so that
# rebuilding meanwhile does not change the tool under it.
tool_copy() {
    (cd "$REPO_ROOT" && cargo build --release --quiet)
    cp "$REPO_ROOT/target/release/dass-gguf" "$1/dass-gguf"
}

# llama-perplexity of model $1 on the evaluation text, -c 512 and ${CHUNKS:-20} chunks, printed as
# "PPL ± error" (nothing if it failed); the tables of every script use this one measurement.
ppl() {
    "$LLAMA_BIN/llama-perplexity" -m "$1" -f "$TEXT/eval.txt" -c 512 --chunks "${CHUNKS:-20}" -t 2 -b 512 2>&1 |
        sed -n 's/.*Final estimate: PPL = \([0-9.]*\) +\/- \([0-9.]*\).*/\1 ± \2/p'
}

# The models named on a command line (none: smollm2; `all`: every one) into the array `want`.
parse_models() {
    [ $# -gt 0 ] || set -- smollm2
    want=()
    local a
    for a in "$@"; do
        case "$a" in
            smollm2|gemma3|qwen2.5) want+=("$a") ;;
            all) want+=(smollm2 gemma3 qwen2.5) ;;
            *) echo "error: unknown model '$a' (smollm2, gemma3, qwen2.5 or all)" >&2; exit 2 ;;
        esac
    done
}

# Size of file $1 in MB (10^6 bytes), one decimal.
mb() { awk -v b="$(stat -c %s "$1")" 'BEGIN { printf "%.1f", b / 1e6 }'; }

# llama-quantize IN with IMATRIX to TYPE into OUT ($1..$4); its log goes to $work/quantize.log.
quant() {
    "$LLAMA_BIN/llama-quantize" --imatrix "$2" "$1" "$4" "$3" >"$work/quantize.log" 2>&1 ||
        { tail -5 "$work/quantize.log" >&2; echo "error: llama-quantize $3 failed on $1" >&2; exit 1; }
}

# The Markdown table of model $1 (file name $2 for the caption), dense and quantized with
# imatrix $3 to Q4_K_M, Q3_K_M, Q3_K_S and Q2_K: size and perplexity. Uses $work.
dense_table() {
    local src="$1" name="$2" imatrix="$3" q
    echo "| model | size (MB) | PPL |"
    echo "|---|---|---|"
    echo "| dense $name | $(mb "$src") | $(ppl "$src") |"
    for q in Q4_K_M Q3_K_M Q3_K_S Q2_K; do
        quant "$src" "$imatrix" "$q" "$work/dense.$q.gguf"
        echo "| dense → $q | $(mb "$work/dense.$q.gguf") | $(ppl "$work/dense.$q.gguf") |"
        rm -f "$work/dense.$q.gguf"
    done
}
