#!/usr/bin/env bash
# The oracle for dass-gguf's Hugging Face -> GGUF path: llama.cpp's own convert_hf_to_gguf.py
# (from the vendored tree, run with the venv-hf python) on every checkpoint under
# $DASS_CACHE/hf/ (scripts/make-hf-checkpoints.sh makes them; run here, cached), then checks
# that llama.cpp loads what it wrote.
#
#   scripts/hf-reference.sh [NAME...] [--no-ppl]       (default: every checkpoint)
#   scripts/hf-reference.sh --tf5 [NAME...] [--no-ppl]
#
# --tf5: the same converter run with the venv-hf5 python (transformers 5) on the checkpoints
# that transformers 5 saved (make-hf-checkpoints.sh --tf5: $DASS_CACHE/hf-tf5/), into
# $DASS_CACHE/hf-ref-tf5/ with the same layout (no timing.txt).
# Writes, under $DASS_CACHE/hf-ref/:
#   <name>.<outtype>.gguf     outtype f16, f32, bf16 and auto (the converter's --outtype)
#   logs/<name>.<outtype>.log the converter's --verbose log (chkhsh, tokenizer.ggml.pre, ...)
#   timing.txt                /usr/bin/time -v of the qwen2.5 --outtype f16 conversion
#   summary.tsv               per conversion: status, seconds, vocab model and pre-tokenizer,
#                             file type, tensor count, bytes
#   compare-<real>.<t>.txt    the f16 and f32 outputs of the real models against the GGUF they
#                             were rebuilt from: metadata differences, tensors bit for bit
#   perplexity.tsv            llama-perplexity of every output (real models: -c 512 --chunks 4,
#                             the original GGUFs too; tiny ones: -c 128 --chunks 2 -b 128)
#   logs/ppl-*.log            the llama-perplexity logs
# Every output is written under a temporary name and renamed when complete; an output newer
# than its checkpoint is kept. A conversion that fails is recorded (FAILED, with its log) and
# the others go on; the exit status is then 1.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/common.sh"

die() { echo "hf-reference: ERROR: $*" >&2; exit 1; }
log() { echo "hf-reference: $*"; }

PYHF="$DASS_CACHE/venv-hf/bin/python"
CONVERT="$DASS_CACHE/llama.cpp-$LLAMA_CPP_VERSION/src/convert_hf_to_gguf.py"
HFDIR="$DASS_CACHE/hf"
OUT="$DASS_CACHE/hf-ref"
LOGS="$OUT/logs"
OUTTYPES="f16 f32 bf16 auto"
PPL="$LLAMA_BIN/llama-perplexity"
TIMING_MODEL="qwen2.5"
TIMING_TYPE="f16"

names=()
do_ppl=1
tf5=0
for a in "$@"; do
    case "$a" in
        --no-ppl) do_ppl=0 ;;
        --tf5) tf5=1 ;;
        -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
        -*) die "unknown option '$a'" ;;
        *) names+=("$a") ;;
    esac
done

# /usr/bin/time (Debian's `time`) for the timing record.
if [ ! -x /usr/bin/time ]; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    log "apt-get install time"
    $SUDO apt-get update -qq || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends time >/dev/null \
        || die "apt-get install time failed"
fi

MAKE=(bash "$HERE/make-hf-checkpoints.sh")
if [ $tf5 = 1 ]; then
    PYHF="$DASS_CACHE/venv-hf5/bin/python"
    HFDIR="$DASS_CACHE/hf-tf5"
    OUT="$DASS_CACHE/hf-ref-tf5"
    LOGS="$OUT/logs"
    TIMING_MODEL="-"
    MAKE+=(--tf5)
fi

bash "$HERE/hf-env.sh"
if [ ${#names[@]} -gt 0 ]; then
    "${MAKE[@]}" --only "${names[@]}"
else
    "${MAKE[@]}"
    for d in "$HFDIR"/*/; do
        [ -f "$d/config.json" ] && names+=("$(basename "$d")")
    done
fi
[ -f "$CONVERT" ] || die "no $CONVERT (scripts/build-llama-cpp.sh keeps the llama.cpp tree)"
[ -x "$PPL" ] || die "no $PPL; run scripts/build-llama-cpp.sh"
[ -s "$TEXT/eval.txt" ] || die "no $TEXT/eval.txt; run scripts/fetch-models.sh"
mkdir -p "$OUT" "$LOGS"

# gguf_facts FILE: "model<TAB>pre<TAB>file_type<TAB>n_tensors" from the written GGUF.
gguf_facts() {
    "$PYHF" - "$1" <<'EOF'
import sys, gguf
r = gguf.GGUFReader(sys.argv[1])
def get(k):
    f = r.fields.get(k)
    return "-" if f is None else f.contents()
ft = get("general.file_type")
ft = gguf.LlamaFileType(ft).name if ft != "-" else "-"
print(f"{get('tokenizer.ggml.model')}\t{get('tokenizer.ggml.pre')}\t{ft}\t{len(r.tensors)}")
EOF
}

# ---- 1. conversions -------------------------------------------------------------------------
failed=0
SUMMARY="$OUT/summary.tsv"
summary_tmp="$OUT/.summary.tsv.tmp"
# keep the rows of checkpoints not converted in this run
if [ -f "$SUMMARY" ]; then
    awk -F'\t' -v keep="$(printf '%s\n' "${names[@]}")" 'BEGIN{split(keep,k,"\n"); for(i in k) skip[k[i]]=1}
        NR>1 && !($1 in skip)' "$SUMMARY" >"$summary_tmp.rows" || true
else
    : >"$summary_tmp.rows"
fi

for name in "${names[@]}"; do
    ckpt="$HFDIR/$name"
    [ -f "$ckpt/config.json" ] || die "no checkpoint $ckpt"
    stamp="$ckpt/.dass-source.json"
    for t in $OUTTYPES; do
        out="$OUT/$name.$t.gguf"
        logf="$LOGS/$name.$t.log"
        timed=0
        [ "$name" = "$TIMING_MODEL" ] && [ "$t" = "$TIMING_TYPE" ] && timed=1
        if [ -f "$out" ] && [ "$out" -nt "$stamp" ] && { [ $timed = 0 ] || [ -s "$OUT/timing.txt" ]; }; then
            log "cached: $out"
            # Reuse the summary row of a cached output (reading the file again takes seconds).
            row="$(awk -F'\t' -v n="$name" -v t="$t" '$1 == n && $2 == t { print; exit }' "$SUMMARY" 2>/dev/null || true)"
            if [ -n "$row" ]; then
                printf '%s\n' "$row" >>"$summary_tmp.rows"
                continue
            fi
            secs="$(sed -n 's/^# seconds: //p' "$logf" 2>/dev/null || true)"
            printf '%s\t%s\tok\t%s\t%s\t%s\n' "$name" "$t" "${secs:--}" "$(gguf_facts "$out")" \
                "$(stat -c %s "$out")" >>"$summary_tmp.rows"
            continue
        fi
        tmp="$OUT/.tmp-$name.$t.gguf"
        rm -f "$tmp" "$logf.tmp"
        cmd=("$PYHF" "$CONVERT" "$ckpt" --outtype "$t" --outfile "$tmp" --verbose)
        t0=$(date +%s%N)
        if [ $timed = 1 ]; then
            cmd=(/usr/bin/time -v -o "$OUT/.timing.tmp" "${cmd[@]}")
        fi
        if "${cmd[@]}" </dev/null >"$logf.tmp" 2>&1 && [ -s "$tmp" ]; then
            secs=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
            printf '# seconds: %.1f\n' "$secs" >>"$logf.tmp"
            mv "$logf.tmp" "$logf"
            mv "$tmp" "$out"
            if [ $timed = 1 ]; then
                { echo "# $(date -u +%FT%TZ) convert_hf_to_gguf.py $name --outtype $t (llama.cpp of llama-cpp-python $LLAMA_CPP_VERSION, $(nproc) cores)"
                  echo "# ${cmd[*]}"
                  cat "$OUT/.timing.tmp"; } >"$OUT/.timing.txt.tmp"
                mv "$OUT/.timing.txt.tmp" "$OUT/timing.txt"
                rm -f "$OUT/.timing.tmp"
                log "timing: $(grep -E 'Elapsed|Maximum resident' "$OUT/timing.txt" | sed 's/^\s*//' | tr '\n' ';')"
            fi
            facts="$(gguf_facts "$out")"
            printf '%s\t%s\tok\t%.1f\t%s\t%s\n' "$name" "$t" "$secs" "$facts" "$(stat -c %s "$out")" >>"$summary_tmp.rows"
            log "$name.$t.gguf: $(printf '%.1f' "$secs") s, vocab/pre/type/tensors: $(echo "$facts" | tr '\t' ' ')"
        else
            mv "$logf.tmp" "$logf"
            rm -f "$tmp" "$OUT/.timing.tmp"
            failed=1
            printf '%s\t%s\tFAILED\t-\t-\t-\t-\t-\t-\n' "$name" "$t" >>"$summary_tmp.rows"
            log "FAILED: $name --outtype $t; last lines of $logf:"
            tail -5 "$logf" | sed 's/^/    /' >&2
        fi
    done
done
{ printf 'name\touttype\tstatus\tseconds\tvocab\tpre\tfile_type\ttensors\tbytes\n'
  sort -u "$summary_tmp.rows"; } >"$summary_tmp"
mv "$summary_tmp" "$SUMMARY"
rm -f "$summary_tmp.rows"

# ---- 2. real models against the GGUF they came from ------------------------------------------
compare() {   # compare REF ORIG OUTFILE
    "$PYHF" - "$1" "$2" >"$3.tmp" <<'EOF'
import sys
import numpy as np, gguf
ref, orig = gguf.GGUFReader(sys.argv[1]), gguf.GGUFReader(sys.argv[2])
print(f"ref  {sys.argv[1]}\norig {sys.argv[2]}")
fr = {k: f for k, f in ref.fields.items() if not k.startswith("GGUF.")}
fo = {k: f for k, f in orig.fields.items() if not k.startswith("GGUF.")}
for k in sorted(set(fr) | set(fo)):
    if k not in fr:
        print(f"metadata only in orig: {k} = {repr(fo[k].contents())[:80]}")
    elif k not in fo:
        print(f"metadata only in ref:  {k} = {repr(fr[k].contents())[:80]}")
    elif fr[k].contents() != fo[k].contents():
        a, b = fr[k].contents(), fo[k].contents()
        if isinstance(a, list):
            n = sum(x != y for x, y in zip(a, b)) + abs(len(a) - len(b))
            print(f"metadata differs: {k}: {n} of {len(a)}/{len(b)} entries")
        else:
            print(f"metadata differs: {k}: ref {a!r:.80} orig {b!r:.80}")
tok = [k for k in fo if k.startswith("tokenizer.ggml.")]
same_tok = all(k in fr and fr[k].contents() == fo[k].contents() for k in tok)
print(f"tokenizer.ggml.* ({len(tok)} keys): {'identical' if same_tok else 'DIFFERENT'}")
tr, to = {t.name: t for t in ref.tensors}, {t.name: t for t in orig.tensors}
if set(tr) != set(to):
    print(f"tensors only in ref: {sorted(set(tr) - set(to))}; only in orig: {sorted(set(to) - set(tr))}")
same, worst, shown = 0, 0.0, 0
for n in sorted(set(tr) & set(to)):
    a, b = tr[n], to[n]
    if list(a.shape) != list(b.shape):
        print(f"tensor {n}: shape {list(a.shape)} vs {list(b.shape)}")
        continue
    if a.tensor_type == b.tensor_type and bytes(a.data) == bytes(b.data):
        same += 1
        continue
    d = float(np.abs(np.asarray(a.data, dtype=np.float32) - np.asarray(b.data, dtype=np.float32)).max())
    worst = max(worst, d)
    shown += 1
    if shown <= 12:
        print(f"tensor {n}: {a.tensor_type.name} vs {b.tensor_type.name}, max |diff| {d:.3g}")
if shown > 12:
    print(f"... and {shown - 12} more tensors that differ")
print(f"tensors bit-identical: {same} of {len(to)}; largest |diff| of the others: {worst:.3g}")
EOF
    mv "$3.tmp" "$3"
}
for name in "${names[@]}"; do
    case "$name" in smollm2|gemma3|qwen2.5) ;; *) continue ;; esac
    for t in f16 f32; do
        ref="$OUT/$name.$t.gguf" orig="$MODELS/$name/model.$t.gguf" res="$OUT/compare-$name.$t.txt"
        [ -f "$ref" ] && [ -f "$orig" ] || continue
        if [ -f "$res" ] && [ "$res" -nt "$ref" ]; then continue; fi
        compare "$ref" "$orig" "$res"
        log "compare $name.$t: $(grep -E '^tokenizer|^tensors bit' "$res" | tr '\n' ' ')"
    done
done

# ---- 3. llama.cpp loads them: perplexity -----------------------------------------------------
[ $do_ppl = 1 ] || { [ $failed = 0 ] || exit 1; exit 0; }
PPLTSV="$OUT/perplexity.tsv"
ppl_rows="$OUT/.perplexity.rows"
: >"$ppl_rows"
# ppl LABEL GGUF ARGS...: one llama-perplexity run (cached by its log), appends a row.
ppl() {
    local label="$1" model="$2"; shift 2
    local logf="$LOGS/ppl-$label.log" val
    for _ in 1 2; do
        if [ -f "$logf" ] && [ "$logf" -nt "$model" ] && grep -q 'Final estimate' "$logf"; then break; fi
        if ! "$PPL" -m "$model" -f "$TEXT/eval.txt" "$@" -t 2 </dev/null >"$logf.tmp" 2>&1; then
            mv "$logf.tmp" "$logf"
            failed=1
            printf '%s\t%s\tFAILED\t%s\n' "$label" "$model" "$*" >>"$ppl_rows"
            log "perplexity FAILED: $label (log: $logf)"
            return
        fi
        mv "$logf.tmp" "$logf"
        # Seen once under load: exit status 0 but the log ends before "Final estimate" (llama.cpp
        # logs from a thread of its own). Such a run is repeated once.
    done
    val="$(sed -n 's/.*Final estimate: PPL = \([^ ]*\) +\/- \([^ ]*\).*/\1 +- \2/p' "$logf")"
    if [ -z "$val" ]; then
        failed=1
        val="FAILED (no Final estimate)"
    fi
    printf '%s\t%s\t%s\t%s\n' "$label" "$model" "$val" "$*" >>"$ppl_rows"
    log "perplexity $label: $val"
}
for name in "${names[@]}"; do
    case "$name" in
        smollm2|gemma3|qwen2.5) args=(-c 512 --chunks 4) ;;
        smollm2-sharded) args=(-c 512 --chunks 4) ;;
        *) args=(-c 128 --chunks 2 -b 128) ;;
    esac
    case "$name" in
        smollm2|gemma3|qwen2.5)
            for f in "$MODELS/$name"/model.f32.gguf "$MODELS/$name"/model.f16.gguf; do
                if [ -f "$f" ]; then ppl "orig-$name.$(basename "$f" .gguf | sed 's/^model\.//')" "$f" "${args[@]}"; fi
            done ;;
    esac
    for t in $OUTTYPES; do
        if [ -f "$OUT/$name.$t.gguf" ]; then ppl "$name.$t" "$OUT/$name.$t.gguf" "${args[@]}"; fi
    done
done
if [ -f "$PPLTSV" ]; then   # keep rows of models not run now
    awk -F'\t' -v keep="$(cut -f1 "$ppl_rows")" 'BEGIN{split(keep,k,"\n"); for(i in k) skip[k[i]]=1}
        NR>1 && !($1 in skip)' "$PPLTSV" >>"$ppl_rows" || true
fi
{ printf 'label\tgguf\tppl\targs\n'; sort -u "$ppl_rows"; } >"$PPLTSV.tmp"
mv "$PPLTSV.tmp" "$PPLTSV"
rm -f "$ppl_rows"
cut -f1,3 "$PPLTSV" | sed 's/\t/  /' 
[ $failed = 0 ] || { log "some conversions or perplexity runs failed (see $SUMMARY, $PPLTSV)"; exit 1; }
log "done: $OUT"
