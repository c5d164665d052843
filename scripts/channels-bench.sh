#!/usr/bin/env bash
# Speed of a model with feed-forward channels removed, against the dense model, measured side
# by side (the machine is noisy): REPS rounds, each one llama-bench run of every model once in
# turn, so that drift hits all models alike; the median of the rounds is reported. Prompt
# processing (pp512) and
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
reps="${REPS:-5}"
src="$MODELS/$model/$file"
imatrix="$MODELS/$model/imatrix.gguf"
cd "$REPO_ROOT"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
tool_copy "$work"
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
for round in $(seq "$reps"); do
    "$LLAMA_BIN/llama-bench" "${args[@]}" -p 512 -n 128 -t 2 -r 1 -o json >"$work/bench.$round.json" 2>"$work/bench.err" ||
        { tail -20 "$work/bench.err" >&2; exit 1; }
done
"$PY" - "$src" "$work"/bench.*.json <<'EOF'
import json, os, statistics, sys
dense = sys.argv[1]
def name(p):
    b = os.path.basename(p)
    return "dense" + (" Q4_K_M" if "q4km" in b else " F16") if b.startswith("dense") or p == dense else b.replace(".gguf", "")
by = {}
for f in sys.argv[2:]:
    for r in json.load(open(f)):
        kind = "pp" if r["n_prompt"] > 0 else "tg"
        m = by.setdefault(r["model_filename"], {"pp": [], "tg": []})
        m[kind].append(r["avg_ts"])
        m["size"] = r["model_size"]
med = {f: {k: statistics.median(v[k]) for k in ("pp", "tg")} | {"size": v["size"],
           "spread": max((max(v[k]) - min(v[k])) / statistics.median(v[k]) for k in ("pp", "tg"))}
       for f, v in by.items()}
base = {}
for f, v in med.items():
    if name(f).startswith("dense"):
        base["q4km" in f] = v
rounds = len(sys.argv) - 2
print(f"Medians of {rounds} interleaved rounds; 'spread' is the largest (max - min) / median of a model's rounds.")
print()
print("| model | size (MB) | pp512 t/s | tg128 t/s | pp512 × dense | tg128 × dense | spread |")
print("|---|---|---|---|---|---|---|")
for f, v in med.items():
    b = base["q4km" in f]
    print(f"| {name(f)} | {v['size'] / 1e6:.1f} | {v['pp']:.1f} | {v['tg']:.1f} | {v['pp'] / b['pp']:.3f} | {v['tg'] / b['tg']:.3f} | {v['spread']:.0%} |")
EOF
