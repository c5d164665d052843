#!/usr/bin/env bash
# Speed of a model with feed-forward channels removed, against the dense model, in one
# llama-bench run (the machine is noisy: compare within a run): prompt processing (pp512) and
# generation (tg128) tokens/s for the dense F16 model and --keep-ffn 0.875 / 0.75 / 0.625
# (uniform, and global for llama models), each also after llama-quantize Q4_K_M with the cut
# imatrix. Prints llama-bench's Markdown table and the ratios to the dense model of the same type.
#
#   scripts/channels-bench.sh smollm2 [model.f16.gguf]
#   KEEPS="0.75" REPS=3 scripts/channels-bench.sh qwen2.5
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/common.sh"
model="${1:?model name, e.g. smollm2}"
file="${2:-model.f16.gguf}"
keeps=(${KEEPS:-0.875 0.75 0.625})
reps="${REPS:-3}"
src="$MODELS/$model/$file"
imatrix="$MODELS/$model/imatrix.gguf"
cd "$REPO_ROOT"
cargo build --release --quiet
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp target/release/dass-gguf "$work/dass-gguf"
arch="$("$work/dass-gguf" inspect --json "$src" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["architecture"])')"

quant() { "$LLAMA_BIN/llama-quantize" --imatrix "$2" "$1" "$3" Q4_K_M >"$work/q.log" 2>&1 ||
    { tail -5 "$work/q.log" >&2; exit 1; }; }

models=("$src")
quant "$src" "$imatrix" "$work/dense.q4km.gguf"
models+=("$work/dense.q4km.gguf")
allocs=(uniform)
[ "$arch" = llama ] && allocs+=(global)
for keep in "${keeps[@]}"; do
    for a in "${allocs[@]}"; do
        out="$work/k$keep.$a.gguf"
        "$work/dass-gguf" convert "$src" -o "$out" --imatrix "$imatrix" --keep-ffn "$keep" \
            --allocate "$a" --quiet
        quant "$out" "$work/k$keep.$a.imatrix.gguf" "$work/k$keep.$a.q4km.gguf"
        models+=("$out" "$work/k$keep.$a.q4km.gguf")
    done
done
args=()
for m in "${models[@]}"; do args+=(-m "$m"); done
"$LLAMA_BIN/llama-bench" "${args[@]}" -p 512 -n 128 -t 2 -r "$reps" -o json >"$work/bench.json" 2>"$work/bench.err" ||
    { tail -20 "$work/bench.err" >&2; exit 1; }
"$PY" - "$work/bench.json" "$src" <<'EOF'
import json, os, sys
rows = json.load(open(sys.argv[1]))
dense = sys.argv[2]
def name(p):
    b = os.path.basename(p)
    return "dense" + (" Q4_K_M" if "q4km" in b else " F16") if b.startswith("dense") or p == dense else b.replace(".gguf", "")
by = {}
for r in rows:
    kind = "pp" if r["n_prompt"] > 0 else "tg"
    by.setdefault(r["model_filename"], {})[kind] = r["avg_ts"]
    by[r["model_filename"]]["size"] = r["model_size"]
base = {}
for f, v in by.items():
    if name(f).startswith("dense"):
        base["q4km" in f] = v
print("| model | size (MB) | pp512 t/s | tg128 t/s | pp512 × dense | tg128 × dense |")
print("|---|---|---|---|---|---|")
for f, v in by.items():
    b = base["q4km" in f]
    print(f"| {name(f)} | {v['size'] / 1e6:.1f} | {v['pp']:.1f} | {v['tg']:.1f} | {v['pp'] / b['pp']:.3f} | {v['tg'] / b['tg']:.3f} |")
EOF
