#!/usr/bin/env bash
# The main job on a real small model. Until `convert` exists this is `inspect` of SmolLM2
# (its quantized original, the F32 copy with the zero count, and its imatrix in both formats).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/common.sh"
cd "$REPO_ROOT"
cargo build --release --quiet
BIN=target/release/dass-gguf
M="$MODELS/smollm2"
for f in "$M/model.q4_1.gguf" "$M/imatrix.gguf"; do
    [ -f "$f" ] || { echo "demo: $f is missing: run scripts/setup.sh first" >&2; exit 1; }
done
set -x
"$BIN" inspect "$M/model.q4_1.gguf"
"$BIN" inspect --zeros "$M/model.f32.gguf" | sed -n '/Tensors/,$p'
"$BIN" inspect "$M/imatrix.gguf"
"$BIN" inspect "$M/imatrix.dat" | head -12
