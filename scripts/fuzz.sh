#!/usr/bin/env bash
# Fuzzes the file readers with cargo-fuzz (libFuzzer): the GGUF header and imatrix parsers, and
# the readers of Hugging Face checkpoints (safetensors header and index, config.json,
# tokenizer.json with its companions, the SentencePiece tokenizer.model).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# SECONDS is how long each target runs (default 60). TARGETs default to every target in
# fuzz/fuzz_targets/ (gguf_header, imatrix, safetensors_header, safetensors_index, hf_config,
# tokenizer_json, sentencepiece). They run one after the other; with FUZZ_PARALLEL=1 they run
# at the same time (each one single-threaded: one process per target).
#
# The seed corpora are made fresh on every run in fuzz/corpus/<target>/ (git-ignored, never
# committed): for the GGUF readers the builder-made files of tests/hostile.rs, every *.gguf and
# *.dat in fixtures/, and the small real imatrix files of the cache if they exist (not the
# models); for the Hugging Face readers, scripts/fuzz_hf_seeds.py writes hand-made files,
# fixtures/*.safetensors, and the files of the checkpoints under the cache's hf/ directory,
# both cut to the input size limit and shrunk to small valid files of the same structure.
# Each target uses the dictionary fuzz/<target>.dict if there is one, else the one of its
# family (gguf.dict, hf_json.dict). Crashes go to fuzz/artifacts/<target>/, logs to
# fuzz/logs/<target>.log. Exits non-zero if a target crashed.
# FUZZ_MAX_LEN sets libFuzzer's -max_len (default 65536).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091 # common.sh only defines paths
source "$REPO_ROOT/scripts/common.sh"
FUZZ_DIR="$REPO_ROOT/fuzz"

SECS="${1:-60}"
if [[ $# -gt 0 ]]; then shift; fi
if ! [[ "$SECS" =~ ^[0-9]+$ ]]; then
    echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]" >&2
    exit 2
fi
if [[ $# -gt 0 ]]; then
    TARGETS=("$@")
else
    TARGETS=()
    for f in "$FUZZ_DIR"/fuzz_targets/*.rs; do TARGETS+=("$(basename "$f" .rs)"); done
fi
# Seeds larger than this are skipped (libFuzzer would cut them to its 1 MiB maximum anyway).
SEED_MAX_BYTES="${FUZZ_SEED_MAX_BYTES:-4194304}"
# libFuzzer's -max_len. Real files are mostly tensor data and slow every execution down by 10x
# when inputs may be as long as they are, so inputs are cut at 64 KiB unless FUZZ_MAX_LEN says
# otherwise (0: libFuzzer's choice, the largest seed up to 1 MiB).
MAX_LEN="${FUZZ_MAX_LEN:-65536}"

# cargo-fuzz needs a nightly compiler; fall back to stable in bootstrap mode without one.
if rustup run nightly rustc --version >/dev/null 2>&1; then
    CARGO=(cargo +nightly)
else
    echo "fuzz.sh: no nightly toolchain; using stable with RUSTC_BOOTSTRAP=1" >&2
    export RUSTC_BOOTSTRAP=1
    CARGO=(cargo)
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

# --- seeds -----------------------------------------------------------------------------------
CORPUS="$FUZZ_DIR/corpus"
mkdir -p "$CORPUS"
echo "fuzz.sh: writing builder seeds (tests/hostile.rs write_fuzz_seeds)" >&2
(cd "$REPO_ROOT" && DASS_FUZZ_SEED_DIR="$CORPUS" \
    cargo test --quiet --test hostile -- --ignored --exact write_fuzz_seeds >/dev/null)

add_seed() { # add_seed FILE TARGET PREFIX
    local f="$1" target="$2" prefix="$3" size
    [[ -f "$f" ]] || return 0
    size=$(stat -c %s "$f")
    if ((size > SEED_MAX_BYTES)); then
        echo "fuzz.sh: skipping seed $f ($size bytes)" >&2
        return 0
    fi
    mkdir -p "$CORPUS/$target"
    cp "$f" "$CORPUS/$target/$prefix-$(basename "$f")"
}
shopt -s nullglob
for f in "$REPO_ROOT"/fixtures/*.gguf "$REPO_ROOT"/fixtures/**/*.gguf; do
    add_seed "$f" gguf_header fixture
    add_seed "$f" imatrix fixture
done
for f in "$REPO_ROOT"/fixtures/*.dat "$REPO_ROOT"/fixtures/**/*.dat; do
    add_seed "$f" imatrix fixture
done
for model_dir in "$MODELS"/*/; do
    add_seed "$model_dir/imatrix.gguf" imatrix "real-$(basename "$model_dir")"
    add_seed "$model_dir/imatrix.gguf" gguf_header "real-$(basename "$model_dir")"
    add_seed "$model_dir/imatrix.dat" imatrix "real-$(basename "$model_dir")"
done
shopt -u nullglob
hf_targets=0
for t in "${TARGETS[@]}"; do [[ "$t" == gguf_header || "$t" == imatrix ]] || hf_targets=1; done
if ((hf_targets == 0)); then
    : # only the GGUF readers: their seeds are written above
elif command -v python3 >/dev/null; then
    echo "fuzz.sh: writing Hugging Face reader seeds (scripts/fuzz_hf_seeds.py)" >&2
    seed_len="$MAX_LEN"
    if ((seed_len == 0)); then seed_len=1048576; fi
    python3 "$REPO_ROOT/scripts/fuzz_hf_seeds.py" "$CORPUS" "$seed_len" "$REPO_ROOT/fixtures" "$DASS_CACHE/hf"
else
    echo "fuzz.sh: no python3; the Hugging Face readers start from an empty corpus" >&2
fi
for t in "${TARGETS[@]}"; do
    echo "fuzz.sh: $t: $(find "$CORPUS/$t" -type f 2>/dev/null | wc -l) files in corpus" >&2
done

# --- build once, then run ----------------------------------------------------------------------
cd "$REPO_ROOT"
for t in "${TARGETS[@]}"; do "${CARGO[@]}" fuzz build --fuzz-dir "$FUZZ_DIR" "$t" >&2; done

LOGS="$FUZZ_DIR/logs"
mkdir -p "$LOGS"
dict_for() { # the libFuzzer dictionary of target $1
    if [[ -f "$FUZZ_DIR/$1.dict" ]]; then
        echo "$FUZZ_DIR/$1.dict"
    elif [[ "$1" == gguf_header || "$1" == imatrix ]]; then
        echo "$FUZZ_DIR/gguf.dict"
    else
        echo "$FUZZ_DIR/hf_json.dict"
    fi
}
run_target() {
    local t="$1"
    mkdir -p "$FUZZ_DIR/artifacts/$t"
    touch "$LOGS/$t.start"
    # --jobs 1: one single-threaded libFuzzer process. -timeout flags slow inputs, and
    # -rss_limit_mb (also the malloc limit) flags absurd allocations as crashes.
    "${CARGO[@]}" fuzz run --fuzz-dir "$FUZZ_DIR" --jobs 1 "$t" "$CORPUS/$t" -- \
        -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 \
        -dict="$(dict_for "$t")" -print_final_stats=1 -max_len="$MAX_LEN" \
        >"$LOGS/$t.log" 2>&1
}

declare -A STATUS=()
if [[ "${FUZZ_PARALLEL:-0}" == 1 ]]; then
    declare -A PIDS=()
    for t in "${TARGETS[@]}"; do
        run_target "$t" &
        PIDS[$t]=$!
        echo "fuzz.sh: $t running for ${SECS}s (pid ${PIDS[$t]}, log $LOGS/$t.log)" >&2
    done
    for t in "${TARGETS[@]}"; do
        if wait "${PIDS[$t]}"; then STATUS[$t]=0; else STATUS[$t]=$?; fi
    done
else
    for t in "${TARGETS[@]}"; do
        echo "fuzz.sh: $t running for ${SECS}s (log $LOGS/$t.log)" >&2
        if run_target "$t"; then STATUS[$t]=0; else STATUS[$t]=$?; fi
    done
fi

# --- summary -----------------------------------------------------------------------------------
failed=0
for t in "${TARGETS[@]}"; do
    log="$LOGS/$t.log"
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true)
    crashes=$(find "$FUZZ_DIR/artifacts/$t" -type f \( -name 'crash-*' -o -name 'oom-*' \
        -o -name 'timeout-*' -o -name 'leak-*' \) -newer "$LOGS/$t.start" 2>/dev/null | wc -l || true)
    echo "$t: exit ${STATUS[$t]}, executions ${execs:-?}, new crash/oom/timeout artifacts ${crashes}"
    if [[ -n "$done_line" ]]; then echo "  $done_line"; fi
    if [[ "${STATUS[$t]}" != 0 ]]; then
        failed=1
        { grep -E 'panicked|ERROR: libFuzzer|SUMMARY|Test unit written' "$log" || true; } |
            head -5 | sed 's/^/  /'
    fi
done
exit "$failed"
