#!/usr/bin/env bash
# Renders an HTML report of dass-gguf (convert --report FILE.html, or dass-gguf report) to a PNG
# with headless Chromium, so that anyone can look at it without a browser at hand.
#
#   scripts/render-report.sh REPORT.html OUT.png [--section ID] [--width PIXELS]
#
# The whole page by default; with --section ID only that section (zeroed, widths, v-down,
# channel-scores, activations or sweep: the ids of the page's <section>s), as used for the
# README's picture. The page is drawn in a tall window and the PNG cropped to what it holds
# (Pillow, in the project's venv).
#
# Installs what it needs when missing: Debian's chromium and fonts-dejavu-core (apt), Pillow
# into $VENV (pip). Nothing here is part of the README's test command.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/common.sh"

section=""
width=960
args=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --section) section="${2:?--section needs an id}"; shift 2 ;;
        --width) width="${2:?--width needs a number}"; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) echo "render-report: unknown option $1" >&2; exit 2 ;;
        *) args+=("$1"); shift ;;
    esac
done
[[ ${#args[@]} -eq 2 ]] || { echo "usage: scripts/render-report.sh REPORT.html OUT.png [--section ID] [--width PIXELS]" >&2; exit 2; }
report="$(realpath "${args[0]}")"
out="${args[1]}"
[[ -f "$report" ]] || { echo "render-report: $report is missing" >&2; exit 1; }
[[ "$width" =~ ^[1-9][0-9]*$ ]] || { echo "render-report: --width must be a positive integer" >&2; exit 2; }

chrome="$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)"
if [[ -z "$chrome" ]]; then
    echo "render-report: installing chromium (apt)" >&2
    apt-get install -y -qq chromium fonts-dejavu-core >/dev/null
    chrome="$(command -v chromium)"
fi
[[ -x "$PY" ]] || { echo "render-report: $PY is missing (run scripts/python-env.sh)" >&2; exit 1; }
if ! "$PY" -c 'import PIL' 2>/dev/null; then
    echo "render-report: installing Pillow into $VENV" >&2
    "$PY" -m pip install -q pillow
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
page="$report"
if [[ -n "$section" ]]; then
    # The page's style and that one section, nothing else.
    page="$work/section.html"
    "$PY" - "$report" "$section" "$page" <<'EOF'
import re
import sys

html = open(sys.argv[1], encoding="utf-8").read()
sid = sys.argv[2]
m = re.search(r'<section id="%s">.*?</section>' % re.escape(sid), html, re.S)
if not m:
    ids = re.findall(r'<section id="([^"]+)">', html)
    sys.exit("render-report: no section '%s' in the report (it has: %s)" % (sid, ", ".join(ids) or "none"))
style = re.search(r"<style>.*?</style>", html, re.S).group(0)
body = re.sub(r"<details>.*?</details>", "", m.group(0), flags=re.S)
open(sys.argv[3], "w", encoding="utf-8").write(
    '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">%s</head><body>%s</body></html>'
    % (style, body))
EOF
fi

# Tall enough for every section of a large model's page; the crop removes the rest.
"$chrome" --headless --no-sandbox --disable-gpu --hide-scrollbars --force-device-scale-factor=1 \
    --window-size="$width,12000" --screenshot="$work/full.png" "file://$page" >"$work/chrome.log" 2>&1 || {
    cat "$work/chrome.log" >&2
    exit 1
}
"$PY" - "$work/full.png" "$out" <<'EOF'
import sys

from PIL import Image, ImageChops

im = Image.open(sys.argv[1]).convert("RGB")
bbox = ImageChops.difference(im, Image.new("RGB", im.size, (255, 255, 255))).getbbox()
if bbox is None:
    sys.exit("render-report: the page rendered blank")
pad = 16
left, top, right, bottom = bbox
im.crop((max(left - pad, 0), max(top - pad, 0), min(right + pad, im.width), min(bottom + pad, im.height))).save(sys.argv[2], optimize=True)
print("%s: %dx%d" % (sys.argv[2], min(right + pad, im.width) - max(left - pad, 0), min(bottom + pad, im.height) - max(top - pad, 0)))
EOF
