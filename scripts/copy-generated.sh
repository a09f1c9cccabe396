#!/usr/bin/env bash
# tsc does not emit .js sources; put the generated protobuf module beside the compiled code.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p dist/src/proto
cp src/proto/redfleet.js src/proto/redfleet.d.ts dist/src/proto/
chmod +x dist/src/cli/main.js 2>/dev/null || true
# The dashboard's static files (served by src/api/ui-routes.ts from beside its compiled module).
rm -rf dist/src/api/ui
cp -r src/api/ui dist/src/api/ui
