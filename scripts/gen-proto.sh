#!/usr/bin/env bash
# Generates the protobuf code from proto/*.proto into src/proto/ (git-ignored).
# Never edit the generated files: change the .proto and rebuild.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p src/proto
npx --no-install pbjs -t static-module -w es6 --dependency protobufjs/minimal.js \
  --keep-case --no-beautify --no-delimited --no-verify --no-convert \
  -o src/proto/redfleet.js proto/redfleet.proto
npx --no-install pbts -o src/proto/redfleet.d.ts src/proto/redfleet.js
