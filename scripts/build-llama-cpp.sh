#!/usr/bin/env bash
# Builds llama-perplexity, llama-imatrix, llama-quantize and llama-bench from the llama.cpp tree that the
# llama-cpp-python sdist vendors, and installs them into $LLAMA_BIN. Cached: does nothing
# when the four binaries already exist. The extracted llama.cpp tree is kept under
# $DASS_CACHE/llama.cpp-$LLAMA_CPP_VERSION/src (convert_hf_to_gguf.py, gguf-py, sources).
set -euo pipefail
. "$(dirname "$0")/common.sh"

die() { echo "build-llama-cpp: ERROR: $*" >&2; exit 1; }
log() { echo "build-llama-cpp: $*"; }

TOOLS="llama-perplexity llama-imatrix llama-quantize llama-bench"
BASE="$DASS_CACHE/llama.cpp-$LLAMA_CPP_VERSION"
SRC="$BASE/src"                       # = vendor/llama.cpp of the sdist
BUILD="$BASE/build"
DL="$DASS_CACHE/downloads"

have_all() { for t in $TOOLS; do [ -x "$LLAMA_BIN/$t" ] || return 1; done; }

if have_all && [ -f "$SRC/CMakeLists.txt" ]; then
    log "cached: $LLAMA_BIN"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt_install() {   # apt_install PKG... (only the missing ones)
    local missing=()
    for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    local SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    log "apt-get install ${missing[*]}"
    $SUDO apt-get update -qq || die "apt-get update failed"
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
}

command -v cmake >/dev/null 2>&1 || apt_install cmake
command -v g++ >/dev/null 2>&1 || apt_install g++
command -v make >/dev/null 2>&1 || apt_install make

# pip lives in the project venv (python-env.sh is idempotent and quick when done).
if [ ! -x "$PY" ] && ! python3 -c 'import ensurepip, venv' 2>/dev/null; then apt_install python3-venv; fi
bash "$(dirname "$0")/python-env.sh"

# 1. The source tree.
if [ ! -f "$SRC/CMakeLists.txt" ]; then
    SDIST="$DL/llama_cpp_python-$LLAMA_CPP_VERSION.tar.gz"
    if [ ! -f "$SDIST" ]; then
        log "downloading llama-cpp-python==$LLAMA_CPP_VERSION sdist"
        mkdir -p "$DL"
        "$VENV/bin/pip" download --quiet --disable-pip-version-check --no-deps \
            -d "$DL" "llama-cpp-python==$LLAMA_CPP_VERSION" \
            || die "pip download llama-cpp-python==$LLAMA_CPP_VERSION failed"
        [ -f "$SDIST" ] || die "expected $SDIST after pip download"
    fi
    log "extracting $(basename "$SDIST")"
    TMPX="$BASE/extract.tmp"
    rm -rf "$TMPX" && mkdir -p "$TMPX"
    tar xzf "$SDIST" -C "$TMPX" || die "cannot extract $SDIST"
    V="$TMPX/llama_cpp_python-$LLAMA_CPP_VERSION/vendor/llama.cpp"
    [ -f "$V/CMakeLists.txt" ] || die "no vendor/llama.cpp in $SDIST"
    rm -rf "$SRC"
    mv "$V" "$SRC"
    rm -rf "$TMPX"
    rm -f "$SDIST"   # the extracted tree is all that is needed
fi

# 2. The build.
if ! have_all; then
    log "configuring (cmake, Release, static, AVX2/FMA/F16C/BMI2)"
    cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
        -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
        -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF \
        -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
        >"$BASE/cmake-configure.log" 2>&1 \
        || { tail -30 "$BASE/cmake-configure.log" >&2; die "cmake configure failed (log: $BASE/cmake-configure.log)"; }
    log "building $TOOLS (-j2, takes ~5 min)"
    # shellcheck disable=SC2086
    cmake --build "$BUILD" -j2 --target $TOOLS >"$BASE/cmake-build.log" 2>&1 \
        || { tail -30 "$BASE/cmake-build.log" >&2; die "build failed (log: $BASE/cmake-build.log)"; }
    mkdir -p "$LLAMA_BIN"
    for t in $TOOLS; do
        [ -x "$BUILD/bin/$t" ] || die "build produced no $BUILD/bin/$t"
        cp "$BUILD/bin/$t" "$LLAMA_BIN/$t.tmp"
        mv "$LLAMA_BIN/$t.tmp" "$LLAMA_BIN/$t"
    done
    rm -rf "$BUILD"
fi

for t in $TOOLS; do "$LLAMA_BIN/$t" --help >/dev/null 2>&1 || [ $? -le 1 ] || die "$t does not run"; done
log "installed $TOOLS into $LLAMA_BIN"
