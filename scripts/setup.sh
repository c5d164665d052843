#!/usr/bin/env bash
# One-stop set-up of everything the real-file checks need, cached under
# ${DASS_GGUF_CACHE:-~/.cache/dass-gguf}: the Python oracle venv, llama.cpp tools, the real
# models, calibration/evaluation text, dense copies and imatrices, and for the Hugging Face path
# a second venv with PyTorch and transformers, checkpoints rebuilt from the models, and what
# llama.cpp's own convert_hf_to_gguf.py makes of them (the oracle); and the same for the
# checkpoints saved again by transformers 5, converted by the converter running on transformers 5
# (a venv-hf5 with transformers 5 over venv-hf's torch).
#
#   scripts/setup.sh          SmolLM2-135M only (enough for CI); its checkpoint, a sharded copy,
#                             and tiny Llama/Mistral/Mixtral/Phi-3 checkpoints with its tokenizer,
#                             and its transformers-5 checkpoint
#   scripts/setup.sh --all    also Gemma 3 270M and Qwen2.5-Coder-0.5B, and every checkpoint
#   scripts/setup.sh --no-hf  without the Hugging Face oracle (no PyTorch venv, checkpoints or
#                             converter outputs)
#   scripts/setup.sh --no-calibrate   without the llama.cpp-linked build of dass-gguf and the
#                             statistics files it makes (with --no-hf: what scripts/demo.sh needs)
#
# Idempotent: a second run only checks the cache and takes seconds.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/common.sh"

models=(smollm2)
hf=1
calibrate=1
for a in "$@"; do
    case "$a" in
        --all) models=(smollm2 gemma3 qwen2.5) ;;
        --no-hf) hf=0 ;;
        --no-calibrate) calibrate=0 ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "setup: ERROR: unknown argument '$a' (--all, --no-hf, --no-calibrate)" >&2; exit 2 ;;
    esac
done

export DEBIAN_FRONTEND=noninteractive
step() { echo "setup: == $1"; }
t0=$SECONDS

step "python venv"
if [ ! -x "$PY" ] && ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    echo "setup: apt-get install python3-venv"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends python3-venv >/dev/null \
        || { echo "setup: ERROR: cannot install python3-venv" >&2; exit 1; }
fi
bash "$HERE/python-env.sh"

step "llama.cpp tools"
bash "$HERE/build-llama-cpp.sh"

stats_flag=()
if [ "$calibrate" -eq 1 ]; then
    step "dass-gguf with llama.cpp linked (calibrate)"
    bash "$HERE/build-calibrate.sh" >/dev/null
else
    stats_flag=(--no-stats)
fi

step "models and text (${models[*]})"
bash "$HERE/fetch-models.sh" "${models[@]}"

step "dense copies, imatrices and calibrate statistics (${models[*]})"
bash "$HERE/make-real-files.sh" "${stats_flag[@]}" "${models[@]}"

if [ "$hf" -eq 0 ]; then
    echo "setup: done in $((SECONDS - t0)) s (Hugging Face oracle skipped); cache: $DASS_CACHE"
    exit 0
fi
if [ "${#models[@]}" -gt 1 ]; then
    checkpoints=()   # all of them
else
    checkpoints=(smollm2 smollm2-sharded tiny-llama tiny-mistral tiny-mixtral tiny-phi3)
fi
step "Hugging Face checkpoints (${checkpoints[*]:-all})"
if [ "${#checkpoints[@]}" -gt 0 ]; then
    bash "$HERE/make-hf-checkpoints.sh" --only "${checkpoints[@]}"
else
    bash "$HERE/make-hf-checkpoints.sh"
fi

step "convert_hf_to_gguf.py references (${checkpoints[*]:-all})"
bash "$HERE/hf-reference.sh" --no-ppl "${checkpoints[@]}"

step "transformers 5: checkpoints and convert_hf_to_gguf.py references (${models[*]})"
bash "$HERE/hf-reference.sh" --tf5 --no-ppl "${models[@]}"

echo "setup: done in $((SECONDS - t0)) s; cache: $DASS_CACHE"
