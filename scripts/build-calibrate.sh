#!/usr/bin/env bash
# Builds dass-gguf with the `calibrate` feature (llama.cpp linked as a library through
# llama-cpp-sys-2, which builds the llama.cpp copy inside that crate with cmake and generates
# its bindings with libclang) into its own target directory under the cache, so the default
# build stays free of llama.cpp and a second run only checks that nothing changed (seconds).
#
#   scripts/build-calibrate.sh      prints the binary's path on its last line
#
# The first build takes ~10 minutes on 2 cores (llama.cpp itself); later ones rebuild only
# what changed in this repository. The CPU features llama.cpp is built for are set in
# .cargo/config.toml ([env]): those of scripts/build-llama-cpp.sh.
set -euo pipefail
. "$(dirname "$0")/common.sh"

die() { echo "build-calibrate: ERROR: $*" >&2; exit 1; }
log() { echo "build-calibrate: $*" >&2; }

export DEBIAN_FRONTEND=noninteractive
missing=()
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v g++ >/dev/null 2>&1 || missing+=(g++)
# bindgen needs libclang.
ls /usr/lib/llvm-*/lib/libclang.so* >/dev/null 2>&1 || missing+=(libclang-dev)
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    log "apt-get install ${missing[*]}"
    $SUDO apt-get update -qq || die "apt-get update failed"
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
fi

export CARGO_TARGET_DIR="$CALIBRATE_TARGET"
t0=$SECONDS
log "cargo build --release --features calibrate (target: $CARGO_TARGET_DIR)"
(cd "$REPO_ROOT" && cargo build --release --quiet --features calibrate) \
    || die "the calibrate build failed"
[ -x "$CALIBRATE_BIN" ] || die "expected $CALIBRATE_BIN after the build"
log "ready in $((SECONDS - t0)) s"
echo "$CALIBRATE_BIN"
