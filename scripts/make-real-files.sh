#!/usr/bin/env bash
# Makes the dense copies and imatrices of the real models (needs build-llama-cpp.sh and
# fetch-models.sh). Every step is skipped when its output exists; outputs are written under
# a temporary name and renamed when complete.
#
#   scripts/make-real-files.sh [--no-stats] [smollm2|gemma3|qwen2.5|all]...  (default: smollm2)
#
# Per model, in $MODELS/<model>/:
#   model.f16.gguf   llama-quantize --allow-requantize ORIGINAL F16
#   model.f32.gguf   the same in F32 (smollm2 always; others when it is < 1.2 GB)
#   imatrix.gguf     llama-imatrix on $TEXT/calib.txt, -c 512 --chunks 40, computed on the
#                    dense copy (F32 for smollm2, F16 otherwise)
#   imatrix.dat      the same statistics in the legacy format, converted from imatrix.gguf by
#                    llama-imatrix --in-file (so both carry the values of one run)
#   stats.gguf       dass-gguf calibrate (scripts/build-calibrate.sh) on the same dense copy,
#                    text and chunks: the second moments of docs/stats.md, whose diagonals are
#                    imatrix.gguf's values
set -euo pipefail
. "$(dirname "$0")/common.sh"

die() { echo "make-real-files: ERROR: $*" >&2; exit 1; }
log() { echo "make-real-files: $*"; }

F32_MAX_BYTES=1200000000
QUANTIZE="$LLAMA_BIN/llama-quantize"
IMATRIX="$LLAMA_BIN/llama-imatrix"
LOGDIR="$DASS_CACHE/logs"

original_of() {
    case "$1" in
        smollm2) echo "$MODELS/smollm2/model.q4_1.gguf" ;;
        gemma3) echo "$MODELS/gemma3/model.q4_k_m.gguf" ;;
        qwen2.5) echo "$MODELS/qwen2.5/model.q4_k_m.gguf" ;;
    esac
}

# run LOGNAME CMD...: runs a tool with its chatter in a log file; shows the tail on failure.
run() {
    local logf="$LOGDIR/$1.log"; shift
    mkdir -p "$LOGDIR"
    if ! "$@" </dev/null >"$logf" 2>&1; then
        tail -25 "$logf" >&2
        die "failed: $* (log: $logf)"
    fi
}

# quantize_to M SRC TYPE OUT
quantize_to() {
    local m="$1" src="$2" type="$3" out="$4" t0
    if [ -f "$out" ]; then log "cached: $out"; return; fi
    log "$m: llama-quantize -> $(basename "$out")"
    t0=$SECONDS
    rm -f "$out.tmp"
    run "$m-quantize-$type" "$QUANTIZE" --allow-requantize "$src" "$out.tmp" "$type"
    [ -s "$out.tmp" ] || die "llama-quantize wrote nothing to $out.tmp"
    mv "$out.tmp" "$out"
    log "$m: $(basename "$out") $(du -h "$out" | cut -f1) in $((SECONDS - t0)) s"
}

make_model() {
    local m="$1" dir="$MODELS/$1" orig dense f16_size t0
    orig="$(original_of "$m")"
    [ -f "$orig" ] || die "$orig is missing; run scripts/fetch-models.sh $m first"

    quantize_to "$m" "$orig" F16 "$dir/model.f16.gguf"
    f16_size=$(stat -c %s "$dir/model.f16.gguf")
    if [ "$m" = smollm2 ] || [ $((f16_size * 2)) -lt $F32_MAX_BYTES ]; then
        quantize_to "$m" "$orig" F32 "$dir/model.f32.gguf"
    fi
    dense="$dir/model.f16.gguf"
    [ "$m" = smollm2 ] && dense="$dir/model.f32.gguf"

    if [ -f "$dir/imatrix.gguf" ]; then
        log "cached: $dir/imatrix.gguf"
    else
        log "$m: llama-imatrix on $(basename "$dense") (calib.txt, 40 chunks of 512)"
        t0=$SECONDS
        rm -f "$dir/imatrix.tmp.gguf"
        # Run inside $TEXT with a relative -f so the recorded dataset name is just
        # "calib.txt", the same on every machine.
        (cd "$TEXT" && run "$m-imatrix" "$IMATRIX" -m "$dense" -f calib.txt -c 512 --chunks 40 -t 2 \
            --no-ppl --output-format gguf -o "$dir/imatrix.tmp.gguf")
        [ -s "$dir/imatrix.tmp.gguf" ] || die "llama-imatrix wrote nothing"
        rm -f "$dir/imatrix.dat"    # a .dat must come from this very imatrix.gguf
        mv "$dir/imatrix.tmp.gguf" "$dir/imatrix.gguf"
        log "$m: imatrix.gguf in $((SECONDS - t0)) s"
    fi

    if [ -f "$dir/imatrix.dat" ]; then
        log "cached: $dir/imatrix.dat"
    else
        log "$m: imatrix.gguf -> imatrix.dat (llama-imatrix --in-file, conversion only)"
        rm -f "$dir/imatrix.dat.tmp"
        # No -f: llama-imatrix only loads --in-file and saves it in the other format; it never
        # loads the model, but its argument parser insists on -m. -c 512 sets the chunk size
        # the legacy ncall is computed with (= the run's chunk size).
        run "$m-imatrix-dat" "$IMATRIX" -m "$dense" --in-file "$dir/imatrix.gguf" -c 512 \
            --output-format dat -o "$dir/imatrix.dat.tmp"
        [ -s "$dir/imatrix.dat.tmp" ] || die "llama-imatrix wrote no imatrix.dat"
        mv "$dir/imatrix.dat.tmp" "$dir/imatrix.dat"
    fi

    if [ "$stats" -eq 0 ]; then
        log "$m: no stats.gguf (--no-stats)"
    elif [ -f "$dir/stats.gguf" ]; then
        log "cached: $dir/stats.gguf"
    else
        [ -x "$CALIBRATE_BIN" ] || die "$CALIBRATE_BIN is missing; run scripts/build-calibrate.sh first"
        log "$m: dass-gguf calibrate on $(basename "$dense") (calib.txt, 40 chunks of 512)"
        t0=$SECONDS
        # As for the imatrix: a relative -f, so the recorded dataset is "calib.txt".
        (cd "$TEXT" && run "$m-calibrate" "$CALIBRATE_BIN" calibrate "$dense" -f calib.txt -c 512 \
            --chunks 40 -t 2 --quiet --force -o "$dir/stats.tmp.gguf")
        [ -s "$dir/stats.tmp.gguf" ] || die "calibrate wrote nothing"
        mv "$dir/stats.tmp.gguf" "$dir/stats.gguf"
        log "$m: stats.gguf in $((SECONDS - t0)) s"
    fi
}

stats=1
if [ "${1:-}" = --no-stats ]; then stats=0; shift; fi
parse_models "$@"
for t in llama-quantize llama-imatrix; do
    [ -x "$LLAMA_BIN/$t" ] || die "$LLAMA_BIN/$t is missing; run scripts/build-llama-cpp.sh first"
done
[ -s "$TEXT/calib.txt" ] || die "$TEXT/calib.txt is missing; run scripts/fetch-models.sh first"

for m in "${want[@]}"; do make_model "$m"; done
