#!/usr/bin/env bash
# Creates the Python venv with the oracle packages (gguf-py, numpy, safetensors), once.
set -euo pipefail
. "$(dirname "$0")/common.sh"
STAMP="$VENV/.dass-requirements"
REQS="gguf==0.19.0 numpy==2.4.6 safetensors==0.8.0"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$REQS" ]; then exit 0; fi
mkdir -p "$DASS_CACHE"
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check $REQS
echo "$REQS" > "$STAMP"
echo "python venv ready: $VENV"
