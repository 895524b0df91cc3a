#!/usr/bin/env bash
# Fails when the committed generated protobuf code is not what proto/ generates today.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$root/scripts/gen-proto.sh" "$tmp"
status=0
diff -r "$root/python/softprompt_worker/_proto" "$tmp/python/softprompt_worker/_proto" -x __pycache__ || status=1
diff -r "$root/ts/src/gen/softprompt" "$tmp/ts/src/gen/softprompt" || status=1
if [ $status -ne 0 ]; then echo "generated protobuf code is stale: run 'make proto' and commit" >&2; exit 1; fi
echo "generated protobuf code is current"
