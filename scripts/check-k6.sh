#!/usr/bin/env bash
# k6 is not installable here: check that every k6 script parses as an ES
# module (node --check on a .mjs copy; imports are not resolved).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
n=0
for f in tests/k6/*.js; do
  cp "$f" "$tmp/$(basename "$f" .js).mjs"
  node --check "$tmp/$(basename "$f" .js).mjs"
  n=$((n + 1))
done
[ "$n" -gt 0 ] || { echo "k6: no scripts found"; exit 1; }
echo "k6: $n scripts parse"
