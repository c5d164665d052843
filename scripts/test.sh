#!/usr/bin/env bash
# The project's test command (README.md names it; .ci/run calls it):
# set-up (cached), formatting, lints, every test, and the real-file checks on SmolLM2.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/common.sh"
cd "$REPO_ROOT"

bash "$HERE/setup.sh"

echo "test: == cargo fmt --check"
cargo fmt --all -- --check

echo "test: == cargo clippy (warnings denied)"
cargo clippy --all-targets --release -- -D warnings

echo "test: == cargo test (SmolLM2 real files required)"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
{
    cargo test --release --doc
    DASS_REQUIRE_REAL_FILES=smollm2 cargo test --release --all-targets
    # The llama.cpp-linked part (feature calibrate), in the target setup.sh built it in.
    echo "test: == calibrate (feature calibrate; target $CALIBRATE_TARGET)"
    CARGO_TARGET_DIR="$CALIBRATE_TARGET" cargo clippy --release --all-targets --features calibrate \
        -- -D warnings
    CARGO_TARGET_DIR="$CALIBRATE_TARGET" DASS_REQUIRE_REAL_FILES=smollm2 \
        cargo test --release --features calibrate --lib --test calibrate
} 2>&1 | tee "$log"
# One closing line over every suite (several targets have no tests of their own).
awk '/^test result:/ { p += $4; f += $6; i += $8 } END { printf "summary: %d passed, %d failed, %d skipped\n", p, f, i }' "$log"
