#!/usr/bin/env bash
# Fetch the third-party pictures of benchmarks/test_bench_external_overlays.py (evaluation only:
# nothing in cellkit trains on them or is tuned on them). From the npm registry, pinned:
#   emoji-datasource-twitter 16.0.0  Twemoji, (c) Twitter/X, graphics CC BY 4.0: 64 px PNGs
#   emoji-datasource-google  16.0.0  Noto Emoji, (c) Google, Apache 2.0: 64 px PNGs
#   font-awesome 4.7.0              Font Awesome icons, (c) Dave Gandy, SIL OFL 1.1: the TTF + its CSS
# into $CELLKIT_EXTERNAL_OVERLAYS (default: .cache/external-overlays at the repository root):
#   twemoji/*.png  noto/*.png  fontawesome/fontawesome-webfont.ttf  fontawesome/font-awesome.css
# Needs npm and the registry (install time only); nothing is fetched while benchmarks run.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
dest="${CELLKIT_EXTERNAL_OVERLAYS:-$repo/.cache/external-overlays}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent emoji-datasource-twitter@16.0.0 emoji-datasource-google@16.0.0 font-awesome@4.7.0 >/dev/null)
mkdir -p "$work/out/twemoji" "$work/out/noto" "$work/out/fontawesome"
tar xzf "$work/emoji-datasource-twitter-16.0.0.tgz" -C "$work/out/twemoji" --strip-components=4 'package/img/twitter/64'
tar xzf "$work/emoji-datasource-google-16.0.0.tgz" -C "$work/out/noto" --strip-components=4 'package/img/google/64'
tar xzf "$work/font-awesome-4.7.0.tgz" -C "$work/out/fontawesome" --strip-components=2 \
  package/fonts/fontawesome-webfont.ttf package/css/font-awesome.css
# all or nothing: the folder appears complete or not at all
mkdir -p "$(dirname "$dest")"
rm -rf "$dest.partial" && mv "$work/out" "$dest.partial"
rm -rf "$dest" && mv "$dest.partial" "$dest"
echo "external overlays in $dest: $(ls "$dest/twemoji" | wc -l) Twemoji, $(ls "$dest/noto" | wc -l) Noto, Font Awesome 4.7"
