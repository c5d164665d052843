#!/usr/bin/env bash
# What `dass-gguf convert` costs next to copying the file, per input model.
#
#   scripts/bench.sh [INPUT.gguf ...] [--reps N]
#
# INPUT defaults to the Qwen2.5-0.5B F16 copy ($MODELS/qwen2.5/model.f16.gguf) and, when it
# exists, the synthetic 7B ($DASS_CACHE/synth7b/model.f16.gguf, made by
#   cargo run --release --example synth_model -- ~/.cache/dass-gguf/synth7b ).
# Each input needs an imatrix.gguf beside it. N (default 3) repetitions of every row.
#
# Rows, run one after another for each repetition (rep 1 of every row, then rep 2, ...) so that
# noise from other work on the machine hits every row alike:
#   cp              cp IN OUT (the page cache is warmed by reading IN once before rep 1)
#   cp + fsync      cp IN OUT; sync OUT (dass-gguf fsyncs its output before renaming it; cp does not)
#   dass 50%        dass-gguf convert --method dass --sparsity 0.5 --quiet --force
#   dass 2:4        dass-gguf convert --method dass --pattern 2:4 ...
#   wanda 50%       dass-gguf convert --method wanda --sparsity 0.5 ...
#   magnitude 50%   dass-gguf convert --method magnitude --sparsity 0.5 ...
#   keep 0.75       dass-gguf convert --keep-ffn 0.75 (channels removed, uniform width; also
#                   writes the cut imatrix)
#   keep 0.75 2:4   the same, then DaSS 2:4 on the kept channels
#   quantize Q8_0   llama-quantize IN OUT Q8_0
#   hf dry-run      dass-gguf convert CHECKPOINT --outtype f16 --dry-run: reads config.json and
#                   the tokenizer files and builds every metadata value (the vocabulary's cost),
#                   writes nothing. CHECKPOINT is $DASS_CACHE/hf/NAME for an input
#                   $MODELS/NAME/*.gguf; both hf rows are skipped when it does not exist
#   hf f16          dass-gguf convert CHECKPOINT --outtype f16 (the whole safetensors conversion)
#   numpy dass 50%  scripts/bench_numpy_dass.py (gguf-py + NumPy); skipped for inputs over 4 GB:
#                   GGUFWriter holds every pruned tensor until the end (anonymous memory about the
#                   size of the FFN tensors, ~11 GB for a 7B, plus ~1.2 GB of float32 / int64
#                   temporaries), on top of the mapped input it touches
#
# Per row: median wall time, median user+sys CPU time (and the user / sys split), peak resident
# memory (max RSS from /usr/bin/time -v, max over reps), peak anonymous memory (see below), the
# input size divided by the median wall time, and the ratio of the median wall time to cp's and
# to cp + fsync's (cp returns before its data is on the disk; dass-gguf's output is durable).
#
# Peak anonymous memory: max RSS counts the pages of the memory-mapped input that the process
# touched, so for a program that maps a 14 GB model it says little about what it allocates.
# While each command runs, RssAnon of the process that /usr/bin/time started (the tool itself;
# for "cp + fsync" the shell) is read from /proc/PID/status every 50 ms and the largest value
# kept. Sampling can miss a spike shorter than 50 ms; dass-gguf's buffers live for a whole
# tensor, far longer.
#
# Outputs go to a temporary directory under $DASS_CACHE (the same filesystem as the inputs) and
# are deleted after every run. dass-gguf is built (cargo build --release) and copied there first,
# so a rebuild by someone else during the run does not change the binary under test; set
# DASS_GGUF_BIN to use another binary. Load averages (uptime) are printed with every
# repetition. Prints one Markdown table per input. ROWS="cp|cp + fsync|keep 0.75" (labels
# separated by |) runs only those rows.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/common.sh"

reps=3
inputs=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --reps) reps="${2:?--reps needs a number}"; shift 2 ;;
        --reps=*) reps="${1#--reps=}"; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) echo "bench: unknown option $1" >&2; exit 2 ;;
        *) inputs+=("$1"); shift ;;
    esac
done
[[ "$reps" =~ ^[1-9][0-9]*$ ]] || { echo "bench: --reps must be a positive integer" >&2; exit 2; }
if [[ ${#inputs[@]} -eq 0 ]]; then
    inputs=("$MODELS/qwen2.5/model.f16.gguf")
    [[ -f "$DASS_CACHE/synth7b/model.f16.gguf" ]] && inputs+=("$DASS_CACHE/synth7b/model.f16.gguf")
fi

if [[ ! -x /usr/bin/time ]]; then
    echo "bench: /usr/bin/time is missing; installing Debian's time package" >&2
    apt-get install -y -qq time >/dev/null
fi
QUANTIZE="$LLAMA_BIN/llama-quantize"
[[ -x "$QUANTIZE" ]] || { echo "bench: $QUANTIZE is missing (run scripts/setup.sh)" >&2; exit 1; }
[[ -x "$PY" ]] || { echo "bench: $PY is missing (run scripts/python-env.sh)" >&2; exit 1; }

mkdir -p "$DASS_CACHE"
work="$(mktemp -d "$DASS_CACHE/bench.XXXXXX")"
trap 'rm -rf "$work"' EXIT

if [[ -n "${DASS_GGUF_BIN:-}" ]]; then
    cp "$DASS_GGUF_BIN" "$work/dass-gguf"
else
    tool_copy "$work"
fi
BIN="$work/dass-gguf"
NUMPY_MAX_BYTES=4000000000

# run_timed LABEL CMD...: runs CMD under /usr/bin/time -v, sampling RssAnon; appends a result
# line to $results. Output files are removed afterwards.
run_timed() {
    local label="$1"; shift
    local tfile="$work/time.txt" log="$work/log.txt"
    /usr/bin/time -v -o "$tfile" "$@" >"$log" 2>&1 &
    local tpid=$! child="" peak=0 k v st
    while :; do
        read -r _ _ st _ 2>/dev/null <"/proc/$tpid/stat" || break
        [[ "$st" == Z ]] && break
        if [[ -z "$child" ]]; then
            # (no newline at the end of this file: read fails but still assigns)
            read -r child _ 2>/dev/null <"/proc/$tpid/task/$tpid/children" || true
        fi
        if [[ -n "$child" ]]; then
            { while read -r k v _; do
                [[ "$k" == RssAnon: ]] && ((v > peak)) && peak=$v
            done <"/proc/$child/status"; } 2>/dev/null || true
        fi
        sleep 0.05
    done
    if ! wait "$tpid"; then
        echo "bench: '$label' failed: $*" >&2
        tail -n 30 "$log" >&2
        tail -n 5 "$tfile" >&2 || true
        exit 1
    fi
    local wall user sys rss
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$tfile")
    user=$(awk -F': ' '/User time/ {print $2}' "$tfile")
    sys=$(awk -F': ' '/System time/ {print $2}' "$tfile")
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$tfile")
    # wall is [h:]m:ss.ss
    wall=$(awk -v t="$wall" 'BEGIN { n = split(t, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$wall" "$user" "$sys" "$rss" "$peak" >>"$results"
    rm -f "$work"/out.gguf "$work"/.out.gguf.* "$work"/out.imatrix.gguf
}

echo "# dass-gguf convert vs cp"
echo
echo "- machine: $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)," \
    "$(awk '/MemTotal/ {printf "%.1f GiB RAM", $2 / 1048576}' /proc/meminfo)"
echo "- dass-gguf: $("$BIN" --version 2>/dev/null || echo '?'), $(cd "$REPO_ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')$( cd "$REPO_ROOT" && [[ -n "$(git status --porcelain -- src 2>/dev/null)" ]] && echo ' (src modified)')"
echo "- reps: $reps (rows interleaved); outputs in $work"
echo

for input in "${inputs[@]}"; do
    imatrix="$(dirname "$input")/imatrix.gguf"
    [[ -f "$input" ]] || { echo "bench: $input is missing" >&2; exit 1; }
    [[ -f "$imatrix" ]] || { echo "bench: $imatrix is missing" >&2; exit 1; }
    size=$(stat -c %s "$input")
    free=$(df -B1 --output=avail "$work" | tail -n 1)
    if ((free < size + size / 10 + 1000000000)); then
        echo "bench: skipping $input: $((size / 1000000)) MB needs room for one output, only $((free / 1000000)) MB free" >&2
        continue
    fi
    results="$work/results.tsv"
    : >"$results"
    out="$work/out.gguf"
    rows=("cp" "cp + fsync" "dass 50%" "dass 2:4" "wanda 50%" "magnitude 50%" "keep 0.75"
        "keep 0.75 2:4" "quantize Q8_0" "hf dry-run" "hf f16" "numpy dass 50%")
    if [[ -n "${ROWS:-}" ]]; then
        IFS='|' read -r -a rows <<<"$ROWS"
    fi
    checkpoint=""
    if [[ "$(dirname "$(dirname "$input")")" == "$MODELS" ]]; then
        checkpoint="$DASS_CACHE/hf/$(basename "$(dirname "$input")")"
        [[ -f "$checkpoint/config.json" ]] || checkpoint=""
    fi
    numpy=1
    if ((size > NUMPY_MAX_BYTES)); then
        numpy=0
    fi

    echo "## $input"
    echo
    echo "- $((size / 1000000)) MB; imatrix $imatrix"
    if [[ -n "$checkpoint" ]]; then
        echo "- hf rows: $checkpoint"
    else
        echo "- hf rows: skipped (no checkpoint at \$DASS_CACHE/hf/NAME for this input)"
    fi
    ((numpy)) || echo "- numpy dass 50%: skipped ($((size / 1000000)) MB > $((NUMPY_MAX_BYTES / 1000000)) MB: it keeps every pruned tensor in memory, too much beside the mapped input)"
    echo "- warming the page cache: reading the input once"
    cat "$input" >/dev/null
    echo "- load average before rep 1: $(uptime | sed 's/.*load average: //')"
    for ((rep = 1; rep <= reps; rep++)); do
        for row in "${rows[@]}"; do
            case "$row" in
                "cp") run_timed "$row" cp "$input" "$out" ;;
                "cp + fsync") run_timed "$row" sh -c 'cp "$1" "$2" && sync "$2"' sh "$input" "$out" ;;
                "dass 50%") run_timed "$row" "$BIN" convert "$input" -o "$out" --imatrix "$imatrix" \
                    --method dass --sparsity 0.5 --quiet --force ;;
                "dass 2:4") run_timed "$row" "$BIN" convert "$input" -o "$out" --imatrix "$imatrix" \
                    --method dass --pattern 2:4 --quiet --force ;;
                "wanda 50%") run_timed "$row" "$BIN" convert "$input" -o "$out" --imatrix "$imatrix" \
                    --method wanda --sparsity 0.5 --quiet --force ;;
                "magnitude 50%") run_timed "$row" "$BIN" convert "$input" -o "$out" --imatrix "$imatrix" \
                    --method magnitude --sparsity 0.5 --quiet --force ;;
                "keep 0.75") run_timed "$row" "$BIN" convert "$input" -o "$out" --imatrix "$imatrix" \
                    --keep-ffn 0.75 --quiet --force ;;
                "keep 0.75 2:4") run_timed "$row" "$BIN" convert "$input" -o "$out" --imatrix "$imatrix" \
                    --keep-ffn 0.75 --pattern 2:4 --quiet --force ;;
                "quantize Q8_0") run_timed "$row" "$QUANTIZE" "$input" "$out" Q8_0 ;;
                "hf dry-run")
                    [[ -n "$checkpoint" ]] || continue
                    run_timed "$row" "$BIN" convert "$checkpoint" -o "$out" --outtype f16 --dry-run --quiet ;;
                "hf f16")
                    [[ -n "$checkpoint" ]] || continue
                    run_timed "$row" "$BIN" convert "$checkpoint" -o "$out" --outtype f16 --quiet --force ;;
                "numpy dass 50%")
                    ((numpy)) || continue
                    run_timed "$row" "$PY" "$HERE/bench_numpy_dass.py" "$input" "$imatrix" "$out" ;;
            esac
        done
        echo "- load average after rep $rep: $(uptime | sed 's/.*load average: //')"
    done
    echo
    python3 - "$results" "$size" <<'EOF'
import statistics
import sys

path, size = sys.argv[1], int(sys.argv[2])
runs = {}
for line in open(path):
    label, wall, user, sys_, rss, anon = line.rstrip("\n").split("\t")
    runs.setdefault(label, []).append(
        (float(wall), float(user), float(sys_), int(rss), int(anon)))
# ROWS may leave out either baseline: its ratio column then says n/a.
cp_wall = statistics.median(r[0] for r in runs["cp"]) if "cp" in runs else 0
sync_wall = statistics.median(r[0] for r in runs["cp + fsync"]) if "cp + fsync" in runs else 0
print("| command | wall s (median) | CPU s user+sys (median) | user / sys s | peak RSS MB | peak anon MB | MB/s | x cp | x cp + fsync |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for label, rs in runs.items():
    wall = statistics.median(r[0] for r in rs)
    cpu = statistics.median(r[1] + r[2] for r in rs)
    user = statistics.median(r[1] for r in rs)
    sys_ = statistics.median(r[2] for r in rs)
    rss = max(r[3] for r in rs) / 1024
    anon = max(r[4] for r in rs) / 1024
    rate = size / 1e6 / wall if wall > 0 else float("inf")
    ratio = f"{wall / cp_wall:.2f}" if cp_wall > 0 else "n/a"
    durable = f"{wall / sync_wall:.2f}" if sync_wall > 0 else "n/a"
    print(f"| {label} | {wall:.2f} | {cpu:.2f} | {user:.2f} / {sys_:.2f} | {rss:.0f} | {anon:.0f} "
          f"| {rate:.0f} | {ratio} | {durable} |")
print()
print(f"All walls (s), in rep order: " + "; ".join(
    f"{label} " + " ".join(f"{r[0]:.2f}" for r in rs) for label, rs in runs.items()))
EOF
    echo
done
