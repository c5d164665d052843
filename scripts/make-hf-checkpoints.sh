#!/usr/bin/env bash
# Builds the Hugging Face checkpoints under $DASS_CACHE/hf/ (see make-hf-checkpoints.py): the
# three real models rebuilt from their dense GGUF copies, a sharded SmolLM2, and tiny random
# models of ten architectures. Needs scripts/setup.sh --all (models) and scripts/hf-env.sh
# (run here; cached). Idempotent: current checkpoints are kept.
#
#   scripts/make-hf-checkpoints.sh [--only NAME...] [--force] [--list]
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/common.sh"
bash "$HERE/hf-env.sh"
export DASS_CACHE
exec "$DASS_CACHE/venv-hf/bin/python" "$HERE/make-hf-checkpoints.py" "$@"
