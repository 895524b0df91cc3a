#!/usr/bin/env bash
# Fails when the committed schemas (proto/schema/*.json, ts/src/gen/schema/*.ts) are not what the worker's
# spec dataclasses generate today (scripts/gen-schema.py, docs/schema.md). SCHEMA_CHECK_TREE checks another tree.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tree=${SCHEMA_CHECK_TREE:-$root}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$root/.venv/bin/python" "$root/scripts/gen-schema.py" "$tmp"
status=0
diff -r "$tree/proto/schema" "$tmp/proto/schema" || status=1
diff -r "$tree/ts/src/gen/schema" "$tmp/ts/src/gen/schema" || status=1
if [ $status -ne 0 ]; then echo "generated schemas are stale: run 'make schema' and commit" >&2; exit 1; fi
echo "generated schemas are current"
