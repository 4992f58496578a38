#!/usr/bin/env bash
# The README's first command: the main job end to end on the built-in sample.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-out/demo}
PY=${VENV:-.venv}/bin/python
RUNNER=${RUNNER:-ray}
"$PY" -m psi0 sample --out "$OUT/sample"
"$PY" pipelines/egodex_tokenize.py --input "$OUT/sample/egodex" --output "$OUT/egodex" --format both --runner "$RUNNER"
"$PY" pipelines/humanoid_everyday.py --input "$OUT/sample/humanoid_everyday" --output "$OUT/humanoid_everyday" --format both --runner "$RUNNER"
"$PY" -m psi0 inspect "$OUT/egodex" "$OUT/humanoid_everyday"
echo
echo "shards: $OUT/egodex/shards  $OUT/humanoid_everyday/shards   (catalogs: */catalog.json)"
