#!/usr/bin/env bash
# Builds the Hugging Face checkpoints under $DASS_CACHE/hf/ (see make-hf-checkpoints.py): the
# three real models rebuilt from their dense GGUF copies, a sharded SmolLM2, and tiny random
# models of ten architectures. Needs scripts/setup.sh --all (models) and scripts/hf-env.sh
# (run here; cached). Idempotent: current checkpoints are kept.
#
#   scripts/make-hf-checkpoints.sh [--only NAME...] [--force] [--list]
#   scripts/make-hf-checkpoints.sh --tf5 [--only NAME...] [--force] [--list]
#
# --tf5: the real models (smollm2, qwen2.5, gemma3) saved again by transformers 5, under
# $DASS_CACHE/hf-tf5/ (run with the venv-hf5 python; the transformers-4 ones are built first).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/common.sh"
bash "$HERE/hf-env.sh"
export DASS_CACHE
if [ "${1:-}" = "--tf5" ]; then
    shift
    # the transformers-4 checkpoints they are saved from: the names after --only, else all three
    base=() in_only=0 list=0
    for a in "$@"; do
        case "$a" in
            --only) in_only=1 ;;
            --list) list=1 ;;
            -*) in_only=0 ;;
            *) [ $in_only = 1 ] && base+=("$a") ;;
        esac
    done
    [ ${#base[@]} -gt 0 ] || base=(smollm2 qwen2.5 gemma3)
    if [ $list = 0 ]; then
        "$DASS_CACHE/venv-hf/bin/python" "$HERE/make-hf-checkpoints.py" --only "${base[@]}"
    fi
    exec "$DASS_CACHE/venv-hf5/bin/python" "$HERE/make-hf-checkpoints.py" "$@"
fi
exec "$DASS_CACHE/venv-hf/bin/python" "$HERE/make-hf-checkpoints.py" "$@"
