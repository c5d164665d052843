#!/usr/bin/env bash
# The main job on a real small model, from a fresh machine: set up what it needs (cached, so a
# second run takes seconds), prune SmolLM2-135M (its F32 copy) with DaSS 2:4 using its imatrix,
# and remove a quarter of its feed-forward channels (--keep-ffn 0.75); show the zeros per
# tensor, and put the dense, the pruned and the smaller model side by side: file size and
# perplexity measured by llama.cpp's own llama-perplexity on the same text and chunks.
#
#   scripts/demo.sh [OUT.gguf]
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/common.sh"
cd "$REPO_ROOT"

bash "$HERE/setup.sh" --no-hf --no-calibrate
cargo build --release --quiet
BIN=target/release/dass-gguf
M="$MODELS/smollm2"
DENSE="$M/model.f32.gguf"
OUT="${1:-$DASS_CACHE/demo/smollm2-dass-2of4.gguf}"
mkdir -p "$(dirname "$OUT")"

echo "demo: == prune"
(set -x; "$BIN" convert "$DENSE" -o "$OUT" --imatrix "$M/imatrix.gguf" --pattern 2:4 \
    --report "${OUT%.gguf}.json" --force)
SMALL="${OUT%.gguf}.keep-ffn-0.75.gguf"
echo "demo: == remove a quarter of the feed-forward channels instead (a smaller file)"
(set -x; "$BIN" convert "$DENSE" -o "$SMALL" --imatrix "$M/imatrix.gguf" --keep-ffn 0.75 --force)
echo "demo: == zeros in the first feed-forward tensors"
"$BIN" inspect --zeros --quiet "$OUT" | grep -m 6 -E "ffn_(gate|up|down)"

CHUNKS=4 # ppl (scripts/common.sh) on 4 chunks: a quick look, not a measurement
echo "demo: == dense and pruned side by side (llama-perplexity, eval text, -c 512 --chunks 4)"
printf '%-40s %12s %18s\n' model "size (MiB)" perplexity
for f in "$DENSE" "$OUT" "$SMALL"; do
    p="$(ppl "$f")"
    [ -n "$p" ] || { echo "demo: llama-perplexity failed on $f" >&2; exit 1; }
    mib="$(awk -v b="$(stat -c %s "$f")" 'BEGIN { printf "%.1f", b / 1048576 }')"
    printf '%-40s %12s %18s\n' "$(basename "$f")" "$mib" "$p"
done
echo "demo: the 2:4 file has the dense file's size (ggml stores zeros densely); the channel-removed"
echo "demo: one is smaller in every llama.cpp build (README: \"Make it smaller: remove channels\")."
